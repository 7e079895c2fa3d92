"""Schemathesis calls every operation of `/openapi.json` on a served emulator with valid credentials.

Checks: no 5xx, every status code and content type documented, every body
matching its schema. Examples are capped to keep the run well under a minute.
Random ids rarely name a stored object, so the store is first filled with an
instance of every type and requests of every outcome: the list operations
then return each kind of document for the schema checks.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from orchestrator.emulator import DEMO_API_KEY, DEMO_API_SECRET
from tests.conftest import start_emulator_server
from tests.emulator.conftest import ZERO_DURATIONS

AUTHORIZATION = {"Authorization": "Basic " + base64.b64encode(f"{DEMO_API_KEY}:{DEMO_API_SECRET}".encode()).decode()}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    database: Path = tmp_path_factory.mktemp("schema") / "emulator.db"
    emulator = start_emulator_server(database, profile=ZERO_DURATIONS, seed=5)
    try:
        fill_store(emulator.client())
        yield schemathesis.openapi.from_url(f"{emulator.url}/openapi.json")
    finally:
        emulator.stop()


def fill_store(client: httpx.Client) -> None:
    """Create an instance of every type, in every status the API shows, and a failed request."""

    def create(uri: str, body: dict | None = None) -> str:
        created = client.post(f"/api/resource/{uri}", json=body or {"metadata": {"name": uri}})
        assert created.status_code == 200, created.text
        return client.get(f"/api/request/{created.json()['requestId']}").json()[0]["instanceId"]

    def act(instance_id: str, action: str, body: dict) -> None:
        response = client.put(f"/api/instance/{instance_id}", params={"action": action}, json=body)
        assert response.status_code == 200, response.text

    key_pair = create("kp/hpcloud/nova/standard")
    group = create("sg/hpcloud/nova/standard")
    act(group, "add-access", {"rules": [{"protocol": "tcp", "from-port": 22, "to-port": 22, "cidr-ip": "203.0.113.0/24"}]})
    vm = create(
        "vm/hpcloud/nova/standard.small",
        {"imageUri": "image/hpcloud/nova/ami-00000075", "keyPairId": key_pair, "securityGroupIds": [group]},
    )
    client.get(f"/api/instance/{vm}", params={"refresh": "true"})
    volume = create("vs/hpcloud/nova/standard.10")
    client.get(f"/api/instance/{volume}", params={"refresh": "true"})
    act(volume, "attach", {"virtualMachineId": vm, "deviceName": "/dev/vdb"})
    image = client.post(f"/api/instance/{vm}", params={"action": "image"}, json={"metadata": {"name": "image"}})
    client.get(f"/api/instance/{image.json()['instanceId']}", params={"refresh": "true"})
    client.delete(f"/api/instance/{key_pair}")
    client.delete(f"/api/instance/{create('kp/hpcloud/nova/standard')}")

    statuses = {request["requestStatus"] for request in client.get("/api/request").json()}
    assert statuses == {"completed", "failed"}
    kinds = {instance["resourceType"] for instance in client.get("/api/instance").json()}
    assert kinds == {"kp", "sg", "vm", "vs", "image"}


schema = schemathesis.pytest.from_fixture("served_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTHORIZATION, checks=CHECKS)
