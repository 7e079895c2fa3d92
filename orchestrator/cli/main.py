"""The `cws-workload` commands. Errors become one or two lines and an exit code here, nowhere else.

Exit codes: 0 success (for `plan --detailed-exitcode`, no changes), 1 an operation
failed, 2 bad input or usage (and, with `--detailed-exitcode`, changes pending),
130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click
from rich.console import Console

from orchestrator.cli.render import apply_expectations, destroy_expectations, format_counts
from orchestrator.config import Settings, resolve_settings
from orchestrator.engine import INTERRUPTED, SUCCEEDED, Engine, RunOptions, RunSummary
from orchestrator.errors import CwsError, ConfigError
from orchestrator.events import log_event
from orchestrator.logs import configure_logging, redact
from orchestrator.scheduler import DEFAULT_PARALLELISM

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class AppContext:
    """Options of the command group, shared by every subcommand."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve_settings(
                endpoint=self.options.get("endpoint"),
                api_key=self.options.get("api_key"),
                api_secret=self.options.get("api_secret"),
                state=self.options.get("state"),
                profile=self.options.get("profile"),
            )
        return self._settings

    def engine(self, subscribers: list[Any] | None = None) -> Engine:
        return Engine(self.settings, subscribers=subscribers)


pass_app = click.make_pass_decorator(AppContext)


def debug_log_path() -> Path:
    return Path(tempfile.gettempdir()) / f"cws-workload-debug-{os.getpid()}.log"


GLOBAL_OPTIONS = ("--endpoint", "--api-key", "--api-secret", "--state", "--profile", "--log-level", "--log-json")


class BoundaryGroup(click.Group):
    """A click group that renders expected errors as messages and hides tracebacks."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.NoSuchOption as error:
            if error.option_name in GLOBAL_OPTIONS:
                error.message = (
                    f"{error.message.rstrip('.')}. {error.option_name} is a global option, so give it before "
                    f"the command, e.g. cws-workload {error.option_name} VALUE status"
                )
            error.show()
            sys.exit(error.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.exceptions.Exit as exit_:
            sys.exit(exit_.exit_code)
        # Without standalone mode, click returns the code of ctx.exit() instead of exiting.
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CwsError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as error:  # noqa: BLE001 - the boundary for unexpected errors
            path = debug_log_path()
            path.write_text(traceback.format_exc(), encoding="utf-8")
            click.echo(
                f"error: unexpected {type(error).__name__}: {error}\n"
                f"The traceback is in {path}; please include it when you report this.",
                err=True,
            )
            ctx.exit(EXIT_FAILED)


@click.group(cls=BoundaryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cws-workload")
@click.option("--endpoint", metavar="URL", help="Instance API endpoint; default: the embedded emulator. Env: CWS_ENDPOINT.")
@click.option("--api-key", metavar="KEY", help="API key (Basic-auth user). Env: CWS_API_KEY.")
@click.option("--api-secret", metavar="SECRET", help="API secret; prefer CWS_API_SECRET, since flags show in process lists.")
@click.option("--state", metavar="PATH", help="State file; default .cws/state.db. Env: CWS_STATE.")
@click.option("--profile", metavar="NAME", help="Named profile in the config file. Env: CWS_PROFILE.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Lowest level of log lines written to stderr.",
)
@click.option("--log-json", is_flag=True, help="Write log lines as JSON.")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_json: bool, **options: Any) -> None:
    """Provision workloads through the CWS instance API.

    With no endpoint configured, commands talk to the embedded emulator and keep
    its data next to the state under .cws/.
    """
    configure_logging(log_level, json_lines=log_json)
    if options.get("api_secret"):
        click.echo(
            "warning: --api-secret is visible to other users in the process list; "
            "set CWS_API_SECRET or a config profile instead",
            err=True,
        )
    ctx.obj = AppContext(**options)


def run_async(function: Callable[[anyio.Event], Awaitable[T]]) -> T:
    """Run an engine call; the first SIGINT or SIGTERM stops it gracefully, the second exits at once."""

    async def runner() -> T:
        stop = anyio.Event()
        result: list[T] = []
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(_watch_signals, stop)
            try:
                result.append(await function(stop))
            finally:
                task_group.cancel_scope.cancel()
        return result[0]

    try:
        return anyio.run(runner)
    except BaseExceptionGroup as group:
        raise _single_leaf(group) from None


def _single_leaf(group: BaseExceptionGroup) -> BaseException:
    """Return the one exception inside nested groups, or the group itself when there are several."""
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    return leaves[0] if len(leaves) == 1 else group


async def _watch_signals(stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for received in signals:
            if stop.is_set():
                click.echo("second interrupt: exiting now; the state holds every id returned so far", err=True)
                os._exit(EXIT_INTERRUPTED)
            name = signal.Signals(received).name
            click.echo(
                f"{name} received: starting nothing new, recording the ids of calls in flight, "
                "then releasing the lock. Send it again to exit at once.",
                err=True,
            )
            stop.set()


def run_options(**options: Any) -> RunOptions:
    return RunOptions(
        parallelism=options.get("parallelism") or DEFAULT_PARALLELISM,
        max_rps=options.get("max_rps"),
        continue_on_error=options.get("continue_on_error", False),
        rollback=options.get("rollback", False),
        refresh=options.get("refresh", False),
    )


def execution_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--parallelism",
        type=click.IntRange(min=1),
        default=DEFAULT_PARALLELISM,
        show_default=True,
        help="Maximum operations in flight at once (a node waiting on a request counts).",
    )(function)
    function = click.option(
        "--max-rps",
        type=click.FloatRange(min=0.1),
        default=None,
        help="Maximum API calls per second (token bucket); default: no limit.",
    )(function)
    function = click.option(
        "--continue-on-error", is_flag=True, help="Keep independent branches going after a failure."
    )(function)
    function = click.option(
        "--output",
        "output_format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text: live view or plain lines; json: NDJSON events on stdout.",
    )(function)
    function = click.option("--quiet", "-q", is_flag=True, help="Print only the final summary.")(function)
    return function


def _subscribers(output_format: str, quiet: bool, console: Console) -> tuple[list[Any], Any]:
    """Return the event subscribers for the chosen output, and a live view to enter (or None)."""
    from orchestrator.cli.render import LiveView, NdjsonWriter, PlainLines

    subscribers: list[Any] = [log_event]
    if output_format == "json":
        subscribers.append(NdjsonWriter())
        return subscribers, None
    if quiet:
        return subscribers, None
    if console.is_terminal:
        view = LiveView(console)
        subscribers.append(view)
        return subscribers, view
    subscribers.append(PlainLines())
    return subscribers, None


def _print_summary(summary: RunSummary, console: Console, show_plan_lines: bool = False) -> None:
    metrics = summary.metrics
    counts = format_counts(summary)
    console.print(
        f"{summary.command} {summary.workload}: {summary.result} ({counts}) in "
        f"{metrics.get('wall_seconds', 0):.1f}s, {metrics.get('api_calls_total', 0)} API calls",
        highlight=False,
    )
    for failure in summary.failures:
        console.print(f"  failed: {failure['node']}: {failure['message']}", style="red", highlight=False)
    if summary.outputs and summary.result == SUCCEEDED:
        console.print("Outputs:", highlight=False)
        for name, value in summary.outputs.items():
            console.print(f"  {name} = {json.dumps(value)}", highlight=False)
        if any(value == "<sensitive>" for value in summary.outputs.values()):
            console.print(
                f"  (sensitive outputs are hidden; show them with: cws-workload output {summary.workload} --show-secrets)",
                highlight=False,
            )
    if summary.result == INTERRUPTED:
        console.print(
            "Interrupted: every id the API returned is in the state; run the same command again to finish.",
            highlight=False,
        )


def _run_with_view(view: Any, function: Callable[[anyio.Event], Awaitable[RunSummary]]) -> RunSummary:
    """Run an engine call, inside the live view when there is one."""
    if view is None:
        return run_async(function)
    with view:
        return run_async(function)


def _exit_code(summary: RunSummary) -> int:
    if summary.result == SUCCEEDED:
        return 0
    if summary.result == INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@execution_options
@click.option("--rollback", is_flag=True, help="If the run fails, delete what it created.")
@click.option("--refresh", is_flag=True, help="Check recorded instances against the API before planning.")
@pass_app
def apply(app: AppContext, file: Path, output_format: str, quiet: bool, **options: Any) -> None:
    """Create what the workload FILE describes and is not there yet.

    Prints the plan, then runs it: each resource starts as soon as the
    resources it reads are ready. Applying an unchanged file creates nothing.
    """
    console = Console(stderr=output_format == "json", soft_wrap=True)
    subscribers, view = _subscribers(output_format, quiet, console)
    engine = app.engine(subscribers)
    try:
        if output_format == "text" and not quiet:
            plan = anyio.run(engine.plan, file)
            for line in plan.lines():
                console.print(line, highlight=False)
        if view is not None:
            view.expected_seconds = apply_expectations(engine, file)
        summary = _run_with_view(view, lambda stop: engine.apply(file, run_options(**options), stop=stop))
    finally:
        engine.close()
    if output_format == "text":
        _print_summary(summary, console)
    sys.exit(_exit_code(summary))


@main.command()
@click.argument("workload", required=False)
@execution_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def destroy(app: AppContext, workload: str | None, output_format: str, quiet: bool, yes: bool, **options: Any) -> None:
    """Delete every instance of WORKLOAD, dependents first.

    WORKLOAD may be left out when the state holds only one. Needs no spec
    file: the graph comes from the state.
    """
    console = Console(stderr=output_format == "json", soft_wrap=True)
    subscribers, view = _subscribers(output_format, quiet, console)
    engine = app.engine(subscribers)
    try:
        name = engine.resolve_workload(workload)
        count = len(engine.status(name)["resources"])
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    f"destroy deletes all {count} resources of '{name}'; pass --yes to confirm when not on a terminal"
                )
            click.confirm(f"Delete all {count} resources of workload '{name}'?", abort=True)
        if view is not None:
            view.expected_seconds = destroy_expectations(engine, name)
        summary = _run_with_view(view, lambda stop: engine.destroy(name, run_options(**options), stop=stop))
    finally:
        engine.close()
    if output_format == "text":
        _print_summary(summary, console)
    sys.exit(_exit_code(summary))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--refresh", is_flag=True, help="Check recorded instances against the API first.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 2 with changes, 1 on error.")
@click.option(
    "--output", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text: one line per change; json: the plan as one JSON document on one line.",
)
@pass_app
def plan(app: AppContext, file: Path, refresh: bool, detailed_exitcode: bool, output_format: str) -> None:
    """Show what apply would create, replace and delete for FILE."""
    engine = app.engine()
    try:
        result = anyio.run(lambda: engine.plan(file, refresh=refresh))
    except CwsError as error:
        if detailed_exitcode:
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_FAILED)
        raise
    finally:
        engine.close()
    if output_format == "json":
        click.echo(json.dumps(result.to_json()))
    else:
        for line in result.lines():
            click.echo(line)
    if detailed_exitcode:
        sys.exit(2 if result.has_changes else 0)


@main.command()
@click.argument("workload", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option(
    "--output", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="json: the same as --json.",
)
@pass_app
def status(app: AppContext, workload: str | None, as_json: bool, output_format: str) -> None:
    """Show each resource of WORKLOAD with its instance and status."""
    engine = app.engine()
    try:
        report = engine.status(workload)
    finally:
        engine.close()
    if as_json or output_format == "json":
        click.echo(json.dumps(redact(report), indent=2))
        return
    click.echo(f"workload {report['workload']} ({report['spec']})")
    width = max([len(row["address"]) for row in report["resources"]] + [len("RESOURCE")])
    click.echo(f"  {'RESOURCE':<{width}}  {'TYPE':<5}  {'STATE':<8}  {'INSTANCE':<10}  INSTANCE ID")
    for row in report["resources"]:
        click.echo(
            f"  {row['address']:<{width}}  {row['type']:<5}  {row['status']:<8}  "
            f"{row['instance_status'] or '-':<10}  {row['instance_id'] or '-'}"
        )
    click.echo("STATE is what cws-workload last did; INSTANCE is the status the API last reported.")
    if report["lock"]:
        click.echo(f"locked: {report['lock']}")


@main.command()
@click.argument("workload", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--show-secrets", is_flag=True, help="Show outputs that read a private key or a password.")
@pass_app
def output(app: AppContext, workload: str | None, as_json: bool, show_secrets: bool) -> None:
    """Print the outputs of WORKLOAD."""
    engine = app.engine()
    try:
        values = engine.outputs(workload, show_secrets=show_secrets)
    finally:
        engine.close()
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    for name, value in values.items():
        click.echo(f"{name} = {json.dumps(value)}")


@main.command("force-unlock")
@click.argument("workload")
@click.argument("lock_id")
@pass_app
def force_unlock(app: AppContext, workload: str, lock_id: str) -> None:
    """Release WORKLOAD's lock LOCK_ID when the run that took it is gone."""
    engine = app.engine()
    try:
        holder = engine.state.force_unlock(workload, lock_id)
    finally:
        engine.close()
    click.echo(f"released the lock on '{workload}' held by {holder.describe()}")


def _register_subcommands() -> None:
    from orchestrator.cli.emulator import emulator_group
    from orchestrator.cli.instance import instance_group
    from orchestrator.cli.tools import register_tools

    main.add_command(emulator_group)
    main.add_command(instance_group)
    register_tools(main)


_register_subcommands()

__all__ = ["main", "ConfigError"]
