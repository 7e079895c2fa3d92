"""The `cws-workload` command group and the registration of its subcommands."""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cws-workload")
def main() -> None:
    """Provision workloads through the CWS instance API."""


def _register_subcommands() -> None:
    from orchestrator.cli.emulator import emulator_group

    main.add_command(emulator_group)


_register_subcommands()
