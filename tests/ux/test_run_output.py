"""What apply and destroy show: the live view on a terminal, plain lines in a pipe, the summary."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pexpect
import structlog
from rich.console import Console

from orchestrator.cli.render import (
    LiveView,
    PlainLines,
    apply_expectations,
    expected_node_seconds,
)
from orchestrator.config import resolve_settings
from orchestrator.engine import Engine
from orchestrator.graph import build_graph
from orchestrator.logs import configure_logging
from orchestrator.spec import load_spec

from .conftest import CLI, TUTORIAL, WORKLOADS, cli_environment

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def spawn_in_terminal(workdir: Path, *arguments: str) -> tuple[int, str]:
    """Run the CLI in a pseudo-terminal until it exits; return its exit status and screen text."""
    child = pexpect.spawn(
        CLI,
        list(arguments),
        cwd=str(workdir),
        env=cli_environment(workdir, TERM="xterm-256color"),
        encoding="utf-8",
        dimensions=(40, 120),
        timeout=120,
    )
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, ANSI_ESCAPE.sub("", child.before).replace("\r", "")


def test_terminal_apply_live_view(tmp_path):
    status, screen = spawn_in_terminal(tmp_path, "apply", str(TUTORIAL))

    assert status == 0, screen
    assert "Plan: 3 to create, 0 to replace, 0 to delete, 0 unchanged." in screen
    assert re.search(r"resource\s+state\s+elapsed\s+eta", screen), screen
    for address in ("kp1", "vm1", "image1"):
        assert re.search(rf"^{address}\s+ready\s+\d+\.\ds", screen, re.MULTILINE), screen
    assert "3/3 done" in screen
    assert "apply tutorial: succeeded (3 created) in " in screen
    assert "Outputs:" in screen
    assert re.search(r'vm_public_ip = "\d+\.\d+\.\d+\.\d+"', screen), screen
    assert 'image_uri = "image/hpcloud/nova/ami-' in screen
    # The live view replaces the plain lines of a pipe.
    assert "kp1: creating" not in screen


def test_terminal_count_group_row(tmp_path):
    status, screen = spawn_in_terminal(tmp_path, "apply", str(WORKLOADS / "web.yaml"))

    assert status == 0, screen
    assert re.search(r"^web \(3\)\s+ready", screen, re.MULTILINE), screen
    assert not re.search(r"^web\[\d\]\s", screen, re.MULTILINE), screen
    assert "8/8 done" in screen
    assert 'deployer_private_key = "<sensitive>"' in screen
    assert "show them with: cws-workload output web --show-secrets" in screen


def test_pipe_apply_prints_plain_lines(cli):
    result = cli("apply", str(TUTORIAL))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "\x1b[" not in result.stdout
    assert "  + kp1 (kp/hpcloud/nova/standard)" in lines
    assert "kp1: creating" in lines
    for address in ("kp1", "vm1", "image1"):
        assert any(re.fullmatch(rf"{address}: ready, instance [0-9a-f-]{{36}}, status \w+", line) for line in lines)
    assert any(line.startswith("apply tutorial: succeeded (3 created) in ") for line in lines)
    assert lines.index("Outputs:") > lines.index("image1: creating")

    again = cli("apply", str(TUTORIAL))

    assert again.returncode == 0, again.stderr
    assert "    3 unchanged" in again.stdout
    assert "kp1: unchanged, instance " in again.stdout
    assert "apply tutorial: succeeded (3 unchanged) in " in again.stdout

    destroyed = cli("destroy", "--yes")

    assert destroyed.returncode == 0, destroyed.stderr
    assert "vm1: deleting" in destroyed.stdout
    assert "destroy tutorial: succeeded (3 deleted) in " in destroyed.stdout


def test_quiet_prints_only_summary(cli):
    applied = cli("apply", str(TUTORIAL), "--quiet")

    assert applied.returncode == 0, applied.stderr
    lines = applied.stdout.splitlines()
    assert lines[0].startswith("apply tutorial: succeeded (3 created) in ")
    assert lines[1] == "Outputs:"
    assert [line.split(" = ")[0] for line in lines[2:]] == ["  vm_public_ip", "  image_uri"]

    destroyed = cli("destroy", "--yes", "--quiet")

    assert destroyed.returncode == 0, destroyed.stderr
    assert len(destroyed.stdout.splitlines()) == 1
    assert destroyed.stdout.startswith("destroy tutorial: succeeded (3 deleted) in ")


def test_expectations_from_recorded_durations(tmp_path, clean_environment):
    engine = Engine(resolve_settings(state=str(tmp_path / "state.db")))
    try:
        assert apply_expectations(engine, TUTORIAL) == {}
        engine.state.record_duration("vm.create", "vm/hpcloud/nova/standard.small", 2.0)
        engine.state.record_duration("vm.stable", "vm/hpcloud/nova/standard.small", 30.0)

        expected = apply_expectations(engine, TUTORIAL)
    finally:
        engine.close()

    assert list(expected) == ["vm1"]
    assert expected["vm1"] == 32.0


def test_expectations_add_follow_ups():
    graph = build_graph(load_spec(WORKLOADS / "web.yaml"))
    durations = {
        ("sg.create", "sg/hpcloud/nova/standard"): 1.0,
        ("sg.add-access", "sg/hpcloud/nova/standard"): 0.5,
        ("vs.create", "vs/hpcloud/nova/standard.50"): 2.0,
        ("vs.stable", "vs/hpcloud/nova/standard.50"): 10.0,
        ("vs.attach", "vs/hpcloud/nova/standard.50"): 3.0,
        ("vs.delete", "vs/hpcloud/nova/standard.50"): 1.0,
        ("vs.detach", "vs/hpcloud/nova/standard.50"): 2.0,
    }

    creates = expected_node_seconds(durations, graph, "apply")
    deletes = expected_node_seconds(durations, graph, "destroy")

    assert creates == {"http": 1.5, "admin": 1.5, "data": 15.0}
    assert deletes == {"data": 3.0}


def test_live_view_eta_column():
    console = Console(record=True, width=100, force_terminal=False)
    view = LiveView(console, expected_seconds={"vm1": 1000.0})
    for state in ("waiting", "creating"):
        view({"type": "node.state", "node": "vm1", "state": state})
    view({"type": "node.state", "node": "kp1", "state": "ready"})
    view({"type": "request.lost", "node": "vm1", "action": "vm.create", "request_id": "r1"})

    console.print(view)
    text = console.export_text()

    assert re.search(r"vm1\s+creating\s+\d+\.\ds\s+(99\d|1000)s", text), text
    assert re.search(r"kp1\s+ready\s*$", text, re.MULTILINE), text
    assert "1/2 done" in text
    assert "1 lost request" in text


def test_live_view_logs_above_table(capsys):
    """Log lines written during the live view used to go straight to the terminal and tear the table."""
    saved = structlog.get_config()
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    try:
        configure_logging("warning", stream=sys.stderr)
        configured_factory = structlog.get_config()["logger_factory"]
        with LiveView(console) as view:
            view({"type": "node.state", "node": "vm1", "state": "creating"})
            structlog.get_logger("test").warning("request.lost", node="vm1")
        restored_factory = structlog.get_config()["logger_factory"]
    finally:
        structlog.configure(**saved)

    text = ANSI_ESCAPE.sub("", screen.getvalue())
    assert "request.lost" in text
    assert "request.lost" not in capsys.readouterr().err
    assert text.rindex("vm1") > text.index("request.lost")
    assert restored_factory is configured_factory


def test_plain_lines_format():
    lines = [
        PlainLines.format({"type": "node.state", "node": "vm1", "state": "waiting"}),
        PlainLines.format({"type": "node.state", "node": "vm1", "state": "failed", "message": "quota exceeded"}),
        PlainLines.format(
            {"type": "request.lost", "node": "vm1", "action": "vm.create", "request_id": "r1", "message": "late"}
        ),
    ]

    assert lines == [None, "vm1: failed, quota exceeded", "vm1: request r1 (vm.create) lost: late"]
