"""`cws-workload emulator ...`: run the instance API emulator as an HTTP server."""

import click


@click.group("emulator")
def emulator_group() -> None:
    """Run the CWS instance API emulator."""
