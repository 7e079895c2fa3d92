"""`python -m orchestrator` runs the `cws-workload` command."""

from orchestrator.cli import main

main(prog_name="cws-workload")
