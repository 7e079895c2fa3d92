"""The tutorial replayed verbatim through `cws-workload instance ...` against a served emulator.

The emulator runs the `tutorial` latency profile on a manual clock, so the test
moves time past each step's duration instead of waiting for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.emulator import DEMO_API_KEY, ManualClock

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO = REPOSITORY / "demo"
CLI = shutil.which("cws-workload")

pytestmark = pytest.mark.skipif(CLI is None, reason="the cws-workload console script is not installed")

REQUEST_FIELDS = {
    "requestId", "created", "updated", "ownerId", "requestStatus", "resourceUri",
    "resourceType", "provider", "region", "connector", "parameters",
}  # fmt: skip
INSTANCE_FIELDS = {
    "instanceId", "created", "updated", "ownerId", "resourceUri", "resourceType",
    "provider", "region", "attributes", "attributeTimestamps", "metadata", "parameters",
}  # fmt: skip


class Runcws:
    """Runs the low-level verbs as the tutorial's runcws, and parses what they print."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.workdir = workdir
        self.last_output = ""

    def __call__(self, verb: str, *arguments: str, expect_ok: bool = True) -> object:
        environment = {**os.environ, "CWS_ENDPOINT": self.url, "CWS_STATE": str(self.workdir / "state.db")}
        result = subprocess.run(
            [CLI, "instance", verb, *arguments],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            env=environment,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        self.last_output = result.stdout
        if not expect_ok:
            assert result.returncode != 0
            return result
        assert result.returncode == 0, result.stderr
        options_text, _, result_text = result.stdout.partition("---- RESULT ----")
        assert f'"url": "{self.url}/api/' in options_text
        assert f'"user": "{DEMO_API_KEY}"' in options_text
        assert '"pass": "<hidden>"' in options_text
        return json.loads(result_text)


@pytest.fixture
def tutorial(emulator_server_factory, tmp_path):
    clock = ManualClock()
    emulator = emulator_server_factory(profile="tutorial", clock=clock)
    return Runcws(emulator.url, tmp_path), clock


def test_key_pair_walkthrough(tutorial):
    runcws, clock = tutorial

    created = runcws("createi", str(DEMO / "kp.create.json"))
    assert "##### setting current requestId: " + created["requestId"] in runcws.last_output
    assert created["requestStatus"] == "in-progress"
    assert REQUEST_FIELDS <= set(created)
    assert created["resourceUri"] == "kp/hpcloud/nova/standard"
    assert created["parameters"]["action"] == "kp.create"
    assert created["metadata"] == {"name": "KP1", "description": "my first key pair"}

    clock.advance(5)
    [request] = runcws("getr")
    instance_id = request["instanceId"]
    assert "##### setting current instanceId: " + instance_id in runcws.last_output
    assert request["requestStatus"] == "completed"
    assert request["results"]["privateKey"] == "<HIDDEN>"
    assert request["results"]["publicKey"].startswith("ssh-rsa ")
    assert request["results"]["instanceStatus"] == "created"

    instance = runcws("geti")
    assert INSTANCE_FIELDS <= set(instance)
    assert instance["attributes"]["instanceStatus"] == "created"
    assert instance["attributes"]["transientStatus"] is False
    assert instance["attributes"]["privateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")

    assert runcws("listr") == []
    assert [listed["instanceId"] for listed in runcws("listi")] == [instance_id]

    deleting = runcws("deletei")
    assert deleting["requestStatus"] == "in-progress"
    assert deleting["parameters"]["action"] == "kp.delete"
    clock.advance(5)
    [deleted] = runcws("getr")
    assert deleted["requestStatus"] == "completed"
    assert deleted["results"]["instanceStatus"] == "deleted"
    assert runcws("geti")["attributes"]["instanceStatus"] == "deleted"

    assert runcws("listi") == []
    missing = runcws("geti", expect_ok=False)
    assert "404" in missing.stderr


def test_vm_and_image_walkthrough(tutorial):
    runcws, clock = tutorial

    created = runcws("createi", str(DEMO / "vm.create.json"))
    assert created["requestStatus"] == "in-progress"
    for enriched in ("cpuCount", "cpuSpeed", "localStorage", "ram", "username", "image_providerResourceId"):
        assert enriched in created["parameters"]
    assert created["parameters"]["vm_providerResourceId"] == "Standard.small"

    clock.advance(10)
    [request] = runcws("getr")
    assert request["requestStatus"] == "completed"
    assert request["results"]["instanceStatus"] == "creating"
    assert request["results"]["password"] == "<HIDDEN>"

    instance = runcws("geti")
    assert instance["attributes"]["instanceStatus"] == "creating"
    assert instance["attributes"]["transientStatus"] is True
    assert instance["attributes"]["password"] != "<HIDDEN>"

    # A refresh before the boot has finished still finds the VM creating.
    refresh = runcws("getir")
    assert refresh["requestStatus"] == "in-progress"
    assert refresh["parameters"]["action"] == "vm.retrieve"
    clock.advance(5)
    [early] = runcws("getr")
    assert early["results"]["instanceStatus"] == "creating"

    # Without a refresh the stored instance does not move on, however long it waits.
    clock.advance(600)
    assert runcws("geti")["attributes"]["instanceStatus"] == "creating"
    runcws("getir")
    clock.advance(5)
    [booted] = runcws("getr")
    assert booted["requestStatus"] == "completed"
    assert booted["results"]["instanceStatus"] == "running"
    assert "publicIpAddress" in booted["results"]
    running = runcws("geti")
    assert running["attributes"]["instanceStatus"] == "running"
    assert running["attributes"]["transientStatus"] is False
    vm_id = running["instanceId"]

    image_request = runcws("createimage", str(DEMO / "vm.create.image.json"))
    image_id = image_request["instanceId"]
    assert "##### setting current instanceId: " + image_id in runcws.last_output
    assert image_request["parameters"]["action"] == "vm.create.image"
    assert image_request["resourceType"] == "image"
    clock.advance(5)
    [image_created] = runcws("getr")
    assert image_created["results"]["instanceStatus"] == "creating"
    clock.advance(300)
    runcws("getir")
    clock.advance(5)
    [image_done] = runcws("getr")
    assert image_done["results"]["instanceStatus"] == "created"
    assert image_done["results"]["progress"] == 100
    image = runcws("geti")
    assert image["attributes"]["instanceStatus"] == "created"
    assert image["resourceUri"].startswith("image/hpcloud/nova/ami-")

    runcws("deletei", vm_id)
    clock.advance(5)
    [vm_deleted] = runcws("getr")
    assert vm_deleted["results"]["instanceStatus"] in ("deleted", "deleting")
    assert runcws("geti", image_id)["attributes"]["instanceStatus"] == "created"
