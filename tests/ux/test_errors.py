"""Errors at the CLI boundary: expected ones as short messages, unexpected ones with a debug log."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from .conftest import TUTORIAL, cli_environment

UNKNOWN_FLAVOUR = """\
workload: flavours
defaults:
  provider: hpcloud
  region: nova
resources:
  kp1:
    type: kp
  vm1:
    type: vm
    resource: standard.huge
    imageUri: image/hpcloud/nova/ami-00000099
    keyPairId: ${kp1.instanceId}
"""

# Runs the CLI's entry point with Engine.status replaced by a function that fails like a bug would.
FAILING_STATUS = """\
import sys
from orchestrator.engine import Engine

def failing_status(self, workload=None):
    raise RuntimeError("status failed on purpose")

Engine.status = failing_status
from orchestrator.cli import main
sys.argv = ["cws-workload", "status"]
main()
"""


def unused_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_catalog_error_stops_apply(cli, tmp_path):
    spec = tmp_path / "flavours.yaml"
    spec.write_text(UNKNOWN_FLAVOUR, encoding="utf-8")

    result = cli("apply", str(spec))

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: {spec}:10:15: resource id 'standard.huge' of vm1 is not in the endpoint's catalog")
    assert "(resource ids: standard.xsmall, standard.small, standard.medium, standard.large)" in lines[0]
    assert lines[1].startswith(f"{spec}:11:15: imageUri 'image/hpcloud/nova/ami-00000099' of vm1 is neither")
    assert len(lines) == 2
    assert "Traceback" not in result.stderr

    listed = cli("instance", "listi")

    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout.split("---- RESULT ----", 1)[1]) == []


def test_catalog_error_fails_detailed_plan(cli, tmp_path):
    spec = tmp_path / "flavours.yaml"
    spec.write_text(UNKNOWN_FLAVOUR, encoding="utf-8")

    result = cli("plan", str(spec), "--detailed-exitcode")

    assert result.returncode == 1
    assert f"{spec}:10:15: resource id 'standard.huge'" in result.stderr
    assert result.stdout == ""


def test_offline_plan_skips_catalog(cli):
    endpoint = f"http://127.0.0.1:{unused_loopback_port()}"

    result = cli("--endpoint", endpoint, "plan", str(TUTORIAL))

    assert result.returncode == 0, result.stderr
    assert "Plan: 3 to create, 0 to replace, 0 to delete, 0 unchanged." in result.stdout
    assert "catalog.unchecked" in result.stderr
    assert f"cannot connect to {endpoint}" in result.stderr


def test_plan_with_rejected_key_names_fix(cli):
    result = cli("plan", str(TUTORIAL), CWS_API_KEY="not-an-account", CWS_API_SECRET="any-secret")

    assert result.returncode == 2
    assert result.stderr.startswith("error: http://embedded.cws rejected the credentials of API key 'not-an-account'")
    assert "check CWS_API_KEY and CWS_API_SECRET" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_unknown_workload_is_one_line(cli):
    result = cli("status", "nowhere")

    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "run 'cws-workload apply FILE' first" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_missing_spec_file_names_path(cli, tmp_path):
    result = cli("plan", str(tmp_path / "absent.yaml"))

    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'absent.yaml'}:1:1: file not found; check the path\n"


def test_unexpected_error_debug_log(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", FAILING_STATUS],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=cli_environment(tmp_path),
    )

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "error: unexpected RuntimeError: status failed on purpose"
    assert lines[1].startswith("The traceback is in ")
    assert "Traceback" not in result.stderr
    logs = list((tmp_path / "tmp").glob("cws-workload-debug-*.log"))
    assert len(logs) == 1
    assert str(logs[0]) in lines[1]
    written = logs[0].read_text(encoding="utf-8")
    assert written.startswith("Traceback (most recent call last):")
    assert "RuntimeError: status failed on purpose" in written
