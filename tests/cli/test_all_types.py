"""Every resource type through the engine against a served emulator: apply, check, destroy."""

from __future__ import annotations

from pathlib import Path

import httpx

import orchestrator
from orchestrator.config import resolve_settings
from orchestrator.emulator import DEMO_API_KEY, DEMO_API_SECRET

WORKLOAD = Path(__file__).resolve().parents[1] / "data" / "all_types.yaml"


def instances_by_id(url: str) -> dict[str, dict]:
    response = httpx.get(f"{url}/api/instance", auth=(DEMO_API_KEY, DEMO_API_SECRET), timeout=30)
    response.raise_for_status()
    return {instance["instanceId"]: instance for instance in response.json()}


def test_all_types_apply_and_destroy(emulator_server, tmp_path):
    settings = resolve_settings(endpoint=emulator_server.url, state=str(tmp_path / "state.db"))
    summary = orchestrator.apply(WORKLOAD, settings=settings)
    assert summary.ok, summary.failures
    assert summary.counts["created"] == 8

    engine = orchestrator.Engine(settings)
    try:
        rows = {row["address"]: row for row in engine.status("alltypes")["resources"]}
    finally:
        engine.close()
    live = instances_by_id(emulator_server.url)

    for address in ("web[0]", "web[1]", "web[2]"):
        vm = live[rows[address]["instance_id"]]
        assert vm["attributes"]["instanceStatus"] == "running"
        assert vm["parameters"]["keyPairId"] == rows["key"]["instance_id"]
        assert sorted(vm["parameters"]["securityGroupIds"]) == sorted(
            [rows["web_sg"]["instance_id"], rows["ssh_sg"]["instance_id"]]
        )
    volume = live[rows["data"]["instance_id"]]
    assert volume["attributes"]["instanceStatus"] == "attached"
    assert volume["attributes"]["virtualMachineId"] == rows["web[0]"]["instance_id"]
    assert volume["attributes"]["deviceName"] == "/dev/vdb"
    web_rules = live[rows["web_sg"]["instance_id"]]["attributes"]["rules"]
    assert [rule["from-port"] for rule in web_rules] == [80, 443]
    image = live[rows["golden"]["instance_id"]]
    assert image["attributes"]["instanceStatus"] == "created"
    assert summary.outputs["golden_image"] == image["resourceUri"]
    assert summary.outputs["key_private"] == "<sensitive>"
    assert len(summary.outputs["web_ips"]) == 3

    again = orchestrator.apply(WORKLOAD, settings=settings)
    assert again.ok
    assert again.counts["created"] == 0
    assert again.counts["unchanged"] == 8

    destroyed = orchestrator.destroy("alltypes", settings=settings)
    assert destroyed.ok, destroyed.failures
    after = instances_by_id(emulator_server.url)
    ids = {row["instance_id"] for row in rows.values()}
    still_live = [i for i in ids if i in after and after[i]["attributes"]["instanceStatus"] != "deleted"]
    assert still_live == []
