"""Fault injection, each kind drawn from a seeded generator, and the admin path that switches it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ADMIN_HEADERS, RunningEmulator
from tests.emulator.conftest import ZERO_DURATIONS

KEY_PAIR_URI = "/api/resource/kp/hpcloud/nova/standard"
VM_URI = "/api/resource/vm/hpcloud/nova/standard.small"
VM_BODY = {"imageUri": "image/hpcloud/nova/ami-00000075"}


@pytest.fixture
def emulator(emulator_server_factory: Callable[..., RunningEmulator]) -> RunningEmulator:
    return emulator_server_factory(profile=ZERO_DURATIONS, seed=11)


def stored_requests(emulator: RunningEmulator) -> list[dict]:
    """List the demo account's requests, with faults switched off first so the list itself cannot fail."""
    emulator.set_faults({"throttle": 0.0, "server_error": 0.0, "dropped_response": 0.0, "slow_response": 0.0})
    response = emulator.client().get("/api/request")
    assert response.status_code == 200, response.text
    return response.json()


def test_admin_path_needs_key(emulator: RunningEmulator) -> None:
    unknown = httpx.get(f"{emulator.url}/admin/nothing")
    for headers in ({}, {"X-CWS-Admin-Key": "wrong"}):
        for method, path in [("GET", "/admin/faults"), ("PUT", "/admin/faults"), ("GET", "/admin/stats")]:
            response = httpx.request(method, emulator.url + path, headers=headers, json={"throttle": 1.0})
            assert response.status_code == 404
            assert response.json()["error"]["code"] == unknown.json()["error"]["code"]
    assert emulator.set_faults({})["throttle"] == 0.0


def test_admin_path_absent_without_key(emulator_server_factory: Callable[..., RunningEmulator]) -> None:
    emulator = emulator_server_factory(profile=ZERO_DURATIONS, admin_key=None)
    for path in ("/admin/faults", "/admin/stats"):
        assert httpx.get(emulator.url + path, headers=ADMIN_HEADERS).status_code == 404


def test_admin_faults_round_trip(emulator: RunningEmulator) -> None:
    current = httpx.get(f"{emulator.url}/admin/faults", headers=ADMIN_HEADERS).json()
    assert current["throttle"] == 0.0
    assert current["fault_actions"] is None

    updated = emulator.set_faults({"throttle": 0.25, "retry_after_seconds": 3, "fault_actions": ["vm.create"]})
    assert updated["throttle"] == 0.25
    assert updated["retry_after_seconds"] == 3
    assert updated["fault_actions"] == ["vm.create"]
    assert updated["server_error"] == 0.0

    for bad, named in [({"throttle": 2}, "throttle"), ({"nonsense": 1}, "nonsense"), ({"fault_actions": ["vm.fly"]}, "vm.fly")]:
        response = httpx.put(f"{emulator.url}/admin/faults", json=bad, headers=ADMIN_HEADERS)
        assert response.status_code == 400
        assert named in response.json()["error"]["message"]
    assert httpx.get(f"{emulator.url}/admin/faults", headers=ADMIN_HEADERS).json()["throttle"] == 0.25


def test_throttle_rejects_before_acting(emulator: RunningEmulator) -> None:
    emulator.set_faults({"throttle": 1.0, "retry_after_seconds": 2})
    response = emulator.client().post(KEY_PAIR_URI, json={})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "THROTTLED"

    assert stored_requests(emulator) == []
    assert emulator.stats()["faults"]["throttle"] == 1


def test_server_error_before_or_after_acting(emulator: RunningEmulator) -> None:
    emulator.set_faults({"server_error": 1.0})
    client = emulator.client()
    statuses = [client.post(KEY_PAIR_URI, json={}).status_code for _ in range(16)]

    assert set(statuses) == {500, 503}
    assert len(stored_requests(emulator)) == statuses.count(500)
    faults = emulator.stats()["faults"]
    assert faults["unavailable"] == statuses.count(503)
    assert faults["internal_error"] == statuses.count(500)


def test_unavailable_has_retry_after(emulator: RunningEmulator) -> None:
    emulator.set_faults({"server_error": 1.0})
    client = emulator.client()
    responses = [client.get("/api/request") for _ in range(16)]
    unavailable = [response for response in responses if response.status_code == 503]
    assert unavailable
    assert all(response.headers["retry-after"] == "1" for response in unavailable)
    assert all(response.json()["error"]["code"] == "SERVICE_UNAVAILABLE" for response in unavailable)


def test_dropped_response_after_acting(emulator: RunningEmulator) -> None:
    emulator.set_faults({"dropped_response": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        emulator.client().post(KEY_PAIR_URI, json={"metadata": {"name": "dropped"}})

    requests = stored_requests(emulator)
    assert len(requests) == 1
    assert requests[0]["metadata"] == {"name": "dropped"}
    assert emulator.stats()["faults"]["dropped_response"] == 1


@pytest.mark.parametrize(("created_probability", "exists"), [(1.0, True), (0.0, False)])
def test_lost_request_stays_in_progress(emulator: RunningEmulator, created_probability: float, exists: bool) -> None:
    emulator.set_faults({"lost_request": 1.0, "lost_request_created": created_probability})
    client = emulator.client()
    lost = client.post(KEY_PAIR_URI, json={}).json()
    emulator.set_faults({"lost_request": 0.0})

    for _ in range(3):
        still = client.get(f"/api/request/{lost['requestId']}").json()[0]
        assert still["requestStatus"] == "in-progress"
        assert "results" not in still
    instance = client.get(f"/api/instance/{lost['parameters']['instanceId']}")
    assert (instance.status_code == 200) is exists
    assert [item["requestId"] for item in client.get("/api/request", params={"cleanup": "true"}).json()] == [lost["requestId"]]
    assert emulator.stats()["faults"]["lost" if not exists else "lost-applied"] == 1


def test_failed_request_carries_code(emulator: RunningEmulator) -> None:
    emulator.set_faults({"failed_request": 1.0, "failed_request_code": "QUOTA_EXCEEDED"})
    client = emulator.client()
    created = client.post(VM_URI, json=VM_BODY).json()

    failed = client.get(f"/api/request/{created['requestId']}").json()[0]
    assert failed["requestStatus"] == "failed"
    assert failed["results"]["error"]["code"] == "QUOTA_EXCEEDED"
    assert "vm.create" in failed["results"]["error"]["message"]
    assert "instanceId" not in failed
    assert client.get(f"/api/instance/{created['parameters']['instanceId']}").status_code == 404


def test_slow_response_still_answers(emulator: RunningEmulator) -> None:
    emulator.set_faults({"slow_response": 1.0, "slow_response_seconds": 0.05})
    response = emulator.client().get("/api/request")
    assert response.status_code == 200
    assert response.json() == []
    assert emulator.stats()["faults"]["slow_response"] == 1


def test_fault_actions_limit_targets(emulator: RunningEmulator) -> None:
    emulator.set_faults({"throttle": 1.0, "fault_actions": ["vm.create"]})
    client = emulator.client()
    assert client.post(KEY_PAIR_URI, json={}).status_code == 200
    assert client.get("/api/request").status_code == 200
    assert client.post(VM_URI, json=VM_BODY).status_code == 429

    emulator.set_faults({"fault_actions": ["request.list"]})
    assert client.post(VM_URI, json=VM_BODY).status_code == 200
    assert client.get("/api/request").status_code == 429


def test_same_seed_same_faults(emulator_server_factory: Callable[..., RunningEmulator]) -> None:
    runs = []
    for _ in range(2):
        emulator = emulator_server_factory(profile=ZERO_DURATIONS, seed=99)
        emulator.set_faults({"throttle": 0.3, "server_error": 0.3})
        client = emulator.client()
        runs.append([client.get("/api/instance").status_code for _ in range(30)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1


def test_profile_file_sets_faults(emulator_server_factory: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    profile = tmp_path / "throttled.yaml"
    profile.write_text(
        yaml.safe_dump({"durations": {"default": {"fixed": {"seconds": 0}}}, "faults": {"throttle": 1.0, "fault_actions": ["kp.create"]}}),
        encoding="utf-8",
    )
    emulator = emulator_server_factory(profile=profile)
    client = emulator.client()
    assert client.post(KEY_PAIR_URI, json={}).status_code == 429
    assert client.post("/api/resource/sg/hpcloud/nova/standard", json={}).status_code == 200


def test_stats_count_calls_by_endpoint(emulator: RunningEmulator) -> None:
    client = emulator.client()
    created = client.post(KEY_PAIR_URI, json={}).json()
    client.get(f"/api/request/{created['requestId']}")
    client.get(f"/api/request/{created['requestId']}")
    client.get("/api/instance")
    client.get("/api/catalog")

    calls = emulator.stats()["calls"]
    assert calls == {"createInstance": 1, "getRequest": 2, "listInstances": 1, "getCatalog": 1}
