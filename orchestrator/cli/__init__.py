"""The `cws-workload` command line: the boundary where errors become messages and exit codes."""

from orchestrator.cli.main import main

__all__ = ["main"]
