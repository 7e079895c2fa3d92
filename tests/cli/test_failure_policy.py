"""Failure policy against a served emulator whose VM creates all fail: stop, continue, roll back."""

from __future__ import annotations

import httpx
import pytest

import orchestrator
from orchestrator.config import resolve_settings
from orchestrator.emulator import DEMO_API_KEY, DEMO_API_SECRET
from orchestrator.engine import RunOptions
from orchestrator.operations import WORKLOAD_KEY

WORKLOAD = """\
workload: policy
defaults: {provider: hpcloud, region: nova}
resources:
  kp1: {type: kp}
  kp2: {type: kp}
  vm1:
    type: vm
    resource: standard.small
    imageUri: image/hpcloud/nova/ami-00000075
    keyPairId: ${kp1.instanceId}
  image1:
    type: image
    from: ${vm1.instanceId}
"""


def live_instances(url: str) -> list[str]:
    response = httpx.get(f"{url}/api/instance", auth=(DEMO_API_KEY, DEMO_API_SECRET), timeout=30)
    response.raise_for_status()
    return [
        instance["instanceId"]
        for instance in response.json()
        if (instance.get("metadata") or {}).get(WORKLOAD_KEY) == "policy"
        and instance["attributes"]["instanceStatus"] != "deleted"
    ]


@pytest.fixture
def failing_vms(emulator_server, tmp_path):
    emulator_server.set_faults({"failed_request": 1.0, "fault_actions": ["vm.create"]})
    spec = tmp_path / "policy.yaml"
    spec.write_text(WORKLOAD, encoding="utf-8")
    settings = resolve_settings(endpoint=emulator_server.url, state=str(tmp_path / "state.db"))
    return emulator_server, spec, settings


def failure_codes(summary) -> dict[str, str]:
    return {failure["node"]: failure["code"] for failure in summary.failures}


def test_failed_vm_skips_its_dependents(failing_vms):
    emulator, spec, settings = failing_vms
    summary = orchestrator.apply(spec, settings=settings)
    assert summary.result == "failed"
    assert failure_codes(summary) == {"vm1": "PROVIDER_ERROR"}
    assert summary.counts.get("skipped") == 1


def test_continue_on_error_finishes_independent_branch(failing_vms):
    emulator, spec, settings = failing_vms
    summary = orchestrator.apply(spec, settings=settings, options=RunOptions(continue_on_error=True))
    assert summary.result == "failed"
    assert summary.counts.get("skipped") == 1
    assert summary.counts["created"] == 2
    assert len(live_instances(emulator.url)) == 2


def test_rollback_deletes_what_the_run_created(failing_vms):
    emulator, spec, settings = failing_vms
    summary = orchestrator.apply(spec, settings=settings, options=RunOptions(continue_on_error=True, rollback=True))
    assert summary.result == "failed"
    assert live_instances(emulator.url) == []

    emulator.set_faults({"failed_request": 0.0})
    recovered = orchestrator.apply(spec, settings=settings)
    assert recovered.ok, recovered.failures
    assert len(live_instances(emulator.url)) == 4
    destroyed = orchestrator.destroy("policy", settings=settings)
    assert destroyed.ok
    assert live_instances(emulator.url) == []
