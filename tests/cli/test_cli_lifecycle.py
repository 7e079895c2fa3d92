"""The installed CLI as a subprocess: apply → status → re-apply → output → destroy."""

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
TUTORIAL = REPOSITORY / "workloads" / "tutorial.yaml"
CLI = shutil.which("cws-workload")

pytestmark = pytest.mark.skipif(CLI is None, reason="the cws-workload console script is not installed")


def cli(workdir: Path, *arguments: str, timeout: float = 120, **environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CWS_STATE": "", "CWS_ENDPOINT": "", **environment}
    return subprocess.run(
        [CLI, *arguments],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_tutorial_lifecycle_on_embedded_emulator(tmp_path):
    applied = cli(tmp_path, "apply", str(TUTORIAL))
    assert applied.returncode == 0, applied.stderr
    assert "apply tutorial: succeeded" in applied.stdout
    assert "vm_public_ip = " in applied.stdout
    assert 'image_uri = "image/hpcloud/nova/ami-' in applied.stdout

    state_file = tmp_path / ".cws" / "state.db"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    status = cli(tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    by_address = {row["address"]: row for row in report["resources"]}
    assert by_address["kp1"]["instance_status"] == "created"
    assert by_address["vm1"]["instance_status"] == "running"
    assert by_address["image1"]["instance_status"] == "created"
    instance_ids = {row["instance_id"] for row in report["resources"]}
    assert len(instance_ids) == 3

    again = cli(tmp_path, "apply", str(TUTORIAL), "--output", "json")
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    summary = events[-1]
    assert summary["type"] == "run.summary"
    assert summary["counts"]["unchanged"] == 3
    assert summary["counts"]["created"] == 0
    assert not any(name.startswith("POST") for name in summary["api_calls"])

    outputs = cli(tmp_path, "output", "--json")
    assert outputs.returncode == 0, outputs.stderr
    values = json.loads(outputs.stdout)
    assert values["image_uri"].startswith("image/hpcloud/nova/ami-")

    refused = cli(tmp_path, "destroy")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr

    destroyed = cli(tmp_path, "destroy", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    assert "destroy tutorial: succeeded" in destroyed.stdout

    listed = cli(tmp_path, "instance", "listi")
    assert listed.returncode == 0, listed.stderr
    instances = json.loads(listed.stdout.split("---- RESULT ----", 1)[1])
    assert [i for i in instances if i["instanceId"] in instance_ids] == []


def test_spec_error_exits_two_without_api_call(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("workload: broken\nresources:\n  kp1:\n    type: kp\n    colour: red\n", encoding="utf-8")
    result = cli(tmp_path, "apply", str(broken))
    assert result.returncode == 2
    assert f"{broken}:5:5: unknown field 'colour'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".cws" / "emulator.db").exists()


def test_unreachable_endpoint_is_one_clear_error(tmp_path):
    result = cli(tmp_path, "--endpoint", "http://127.0.0.1:9", "apply", str(TUTORIAL), "--quiet")
    assert result.returncode == 1
    assert "cannot connect to http://127.0.0.1:9" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_destroy_without_state_names_fix(tmp_path):
    result = cli(tmp_path, "destroy", "--yes")
    assert result.returncode == 2
    assert "run 'cws-workload apply FILE' first" in result.stderr


def test_state_bound_to_its_endpoint(tmp_path):
    applied = cli(tmp_path, "apply", str(TUTORIAL), "--quiet")
    assert applied.returncode == 0, applied.stderr

    elsewhere = cli(tmp_path, "--endpoint", "http://127.0.0.1:9", "destroy", "--yes")
    assert elsewhere.returncode == 2
    assert "was applied against embedded emulator" in elsewhere.stderr
    assert "this command talks to http://127.0.0.1:9" in elsewhere.stderr

    destroyed = cli(tmp_path, "destroy", "--yes", "--quiet")
    assert destroyed.returncode == 0, destroyed.stderr
