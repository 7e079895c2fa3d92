"""`cws-workload emulator ...`: run the instance API emulator as an HTTP server."""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_PORT = 8080


@click.group("emulator")
def emulator_group() -> None:
    """Run the CWS instance API emulator."""


@emulator_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on; 0 picks a free port.",
)
@click.option(
    "--db",
    "db_path",
    default=Path(".cws/emulator.db"),
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file of the requests and instances, created with its folders when missing.",
)
@click.option(
    "--profile",
    default="fast",
    show_default=True,
    metavar="NAME|FILE",
    help="Latency and fault profile: fast, tutorial, or the path to a YAML profile.",
)
@click.option("--seed", type=int, help="Seed of the latency and fault draws, for reproducible runs.")
@click.option(
    "--admin-key",
    envvar="CWS_EMULATOR_ADMIN_KEY",
    metavar="KEY",
    help="Secret that opens /admin/faults and /admin/stats to callers sending it in X-CWS-Admin-Key; "
    "without it those paths answer 404. Prefer the env variable CWS_EMULATOR_ADMIN_KEY, "
    "since flags show in process lists.",
)
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Catalog YAML to use in place of the shipped one.",
)
def serve_command(
    host: str,
    port: int,
    db_path: Path,
    profile: str,
    seed: int | None,
    admin_key: str | None,
    catalog_path: Path | None,
) -> None:
    """Serve the emulator over HTTP until SIGINT or SIGTERM.

    Prints the URL once listening. Requests and instances persist in the
    SQLite file, so a restart on the same --db continues where it stopped.
    """
    from orchestrator.emulator import DEMO_API_KEY, DEMO_API_SECRET, EmulatorError, serve

    def announce(url: str) -> None:
        click.echo(f"Emulator listening on {url}")
        click.echo(f"Demo credentials: API key {DEMO_API_KEY}, secret key {DEMO_API_SECRET}", nl=True)
        click.get_text_stream("stdout").flush()

    try:
        serve(
            host=host,
            port=port,
            db_path=db_path,
            profile=profile,
            seed=seed,
            admin_key=admin_key,
            on_ready=announce,
            catalog_path=catalog_path,
        )
    except EmulatorError as error:
        raise click.UsageError(str(error)) from error
    click.echo("Emulator stopped", err=True)
