"""Error responses: 400, 401, 403, 404 and 405 bodies, never FastAPI's 422 shape."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.emulator import (
    NO_PAYMENT_API_KEY,
    NO_PAYMENT_API_SECRET,
    SECOND_API_KEY,
    SECOND_API_SECRET,
)
from tests.conftest import RunningEmulator
from tests.emulator.conftest import ZERO_DURATIONS

VM_URI = "/api/resource/vm/hpcloud/nova/standard.small"


@pytest.fixture
def emulator(emulator_server_factory) -> RunningEmulator:
    return emulator_server_factory(profile=ZERO_DURATIONS)


def assert_error(response: httpx.Response, status: int, code: str, *named: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    assert sorted(body["error"]) == ["code", "message"]
    assert body["error"]["code"] == code
    for value in named:
        assert value in body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "code", "named"),
    [
        ("/api/resource/db/hpcloud/nova/standard", {}, "UNKNOWN_RESOURCE_TYPE", "'db'"),
        ("/api/resource/kp/rackspace/nova/standard", {}, "UNKNOWN_PROVIDER", "'rackspace'"),
        ("/api/resource/kp/hpcloud/az-9/standard", {}, "UNKNOWN_REGION", "'az-9'"),
        ("/api/resource/vm/hpcloud/nova/standard.huge", {"imageUri": "image/hpcloud/nova/ami-00000075"}, "UNKNOWN_RESOURCE_ID", "'standard.huge'"),
        (VM_URI, {"imageUri": "image/hpcloud/nova/ami-99999999"}, "UNKNOWN_IMAGE", "ami-99999999"),
        (VM_URI, {"imageUri": "image/amazon/us-east-1/ami-2d8e4c14"}, "UNKNOWN_IMAGE", "image/amazon/us-east-1/ami-2d8e4c14"),
        (VM_URI, {}, "INVALID_PARAMETER", "imageUri"),
        (VM_URI, {"imageUri": 7}, "INVALID_PARAMETER", "imageUri"),
        (VM_URI, {"imageUri": "image/hpcloud/nova/ami-00000075", "flavor": "x"}, "INVALID_BODY", "'flavor'"),
        ("/api/resource/kp/hpcloud/nova/standard", {"metadata": "KP1"}, "INVALID_PARAMETER", "metadata"),
        ("/api/resource/vs/hpcloud/nova/standard.10", {"sizeInGBytes": 11}, "INVALID_PARAMETER", "11"),
        ("/api/resource/vs/hpcloud/nova/standard.10", {"sizeInGBytes": "5"}, "INVALID_PARAMETER", "sizeInGBytes"),
        ("/api/resource/image/hpcloud/nova/standard", {}, "INVALID_PARAMETER", "virtualMachineId"),
        ("/api/resource/image/hpcloud/nova/standard", {"virtualMachineId": "nope"}, "INVALID_REFERENCE", "nope"),
    ],
)
def test_create_rejects_bad_call(emulator: RunningEmulator, path: str, body: dict, code: str, named: str) -> None:
    assert_error(emulator.client().post(path, json=body), 400, code, named)


def test_create_rejects_invalid_json(emulator: RunningEmulator) -> None:
    client = emulator.client()
    headers = {"content-type": "application/json"}
    assert_error(client.post("/api/resource/kp/hpcloud/nova/standard", content=b"{nope", headers=headers), 400, "INVALID_JSON", "not valid JSON")
    assert_error(client.post("/api/resource/kp/hpcloud/nova/standard", content=b"[1]", headers=headers), 400, "INVALID_BODY", "JSON object")
    assert_error(client.post("/api/resource/kp/hpcloud/nova/standard", content=b"\xff", headers=headers), 400, "INVALID_JSON", "UTF-8")


def test_action_rejects_bad_call(emulator: RunningEmulator) -> None:
    client = emulator.client()
    created = client.post("/api/resource/kp/hpcloud/nova/standard", json={}).json()
    key_pair_id = client.get(f"/api/request/{created['requestId']}").json()[0]["instanceId"]
    group = client.post("/api/resource/sg/hpcloud/nova/standard", json={}).json()
    group_id = client.get(f"/api/request/{group['requestId']}").json()[0]["instanceId"]

    assert_error(client.put(f"/api/instance/{key_pair_id}", params={"action": "start"}), 400, "INVALID_ACTION", "'start'")
    assert_error(client.put(f"/api/instance/{key_pair_id}"), 400, "INVALID_ACTION", "missing")
    assert_error(client.post(f"/api/instance/{key_pair_id}", params={"action": "image"}), 400, "INVALID_ACTION", "vm")
    assert_error(client.post(f"/api/instance/{key_pair_id}", params={"action": "stop"}), 400, "INVALID_ACTION", "'stop'")
    rule = {"protocol": "tcp", "from-port": 90, "to-port": 80, "cidr-ip": "0.0.0.0/0"}
    assert_error(client.put(f"/api/instance/{group_id}", params={"action": "add-access"}, json={"rules": [rule]}), 400, "INVALID_PARAMETER", "from-port 90")
    rule = {"protocol": "tcp", "from-port": 80, "to-port": 80, "cidr-ip": "10.0.0.0/33"}
    assert_error(client.put(f"/api/instance/{group_id}", params={"action": "add-access"}, json={"rules": [rule]}), 400, "INVALID_PARAMETER", "10.0.0.0/33")
    assert_error(client.put(f"/api/instance/{group_id}", params={"action": "remove-access"}, json={"ruleIndexes": [-1]}), 400, "INVALID_PARAMETER", "ruleIndexes")
    assert_error(client.get(f"/api/instance/{key_pair_id}", params={"refresh": "maybe"}), 400, "INVALID_PARAMETER", "refresh=")
    assert_error(client.get("/api/request", params={"cleanup": "sure"}), 400, "INVALID_PARAMETER", "'sure'")
    assert_error(client.get("/api/instance", params={"resourceType": "db"}), 400, "UNKNOWN_RESOURCE_TYPE", "'db'")


def test_attach_rejects_bad_body(emulator: RunningEmulator) -> None:
    client = emulator.client()
    created = client.post("/api/resource/vs/hpcloud/nova/standard.10", json={}).json()
    volume_id = client.get(f"/api/request/{created['requestId']}").json()[0]["instanceId"]
    url = f"/api/instance/{volume_id}"

    assert_error(client.put(url, params={"action": "attach"}, json={"deviceName": "/dev/vdb"}), 400, "INVALID_PARAMETER", "virtualMachineId")
    assert_error(client.put(url, params={"action": "attach"}, json={"virtualMachineId": volume_id, "deviceName": "/dev/vdb"}), 400, "INVALID_REFERENCE", volume_id)
    assert_error(client.put(url, params={"action": "attach"}, json={"virtualMachineId": volume_id, "deviceName": "vdb"}), 400, "INVALID_PARAMETER", "'vdb'")


@pytest.mark.parametrize(
    "auth",
    [None, ("63a25f81-15dd-481e-a4d4-c5ed9a80f93a", "wrong"), ("unknown", "cws-demo-secret")],
    ids=["missing", "wrong-secret", "unknown-key"],
)
def test_credentials_rejected(emulator: RunningEmulator, auth: tuple[str, str] | None) -> None:
    for method, path in [("GET", "/api/request"), ("GET", "/api/instance/x"), ("POST", VM_URI), ("GET", "/api/catalog")]:
        response = httpx.request(method, emulator.url + path, auth=auth, json={})
        assert_error(response, 401, "UNAUTHORIZED", "API key")
        assert response.headers["www-authenticate"] == 'Basic realm="cws"'


def test_malformed_authorization_rejected(emulator: RunningEmulator) -> None:
    for header in ["Bearer abc", "Basic !!!", "Basic " + "bm9jb2xvbg==", "Basic"]:
        response = httpx.get(emulator.url + "/api/request", headers={"Authorization": header})
        assert_error(response, 401, "UNAUTHORIZED")


def test_account_without_payment_forbidden(emulator: RunningEmulator) -> None:
    client = emulator.client(NO_PAYMENT_API_KEY, NO_PAYMENT_API_SECRET)
    assert_error(client.post("/api/resource/kp/hpcloud/nova/standard", json={}), 403, "FORBIDDEN", "payment information")
    assert_error(client.post("/api/resource/db/x/y/z", json={}), 403, "FORBIDDEN")
    assert_error(client.post("/api/instance/x", params={"action": "image"}, json={}), 403, "FORBIDDEN")
    assert client.get("/api/request").json() == []


def test_unknown_ids_not_found(emulator: RunningEmulator) -> None:
    client = emulator.client()
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(client.get(f"/api/request/{missing}"), 404, "NOT_FOUND", missing)
    assert_error(client.get(f"/api/instance/{missing}"), 404, "NOT_FOUND", missing)
    assert_error(client.get(f"/api/instance/{missing}", params={"refresh": "true"}), 404, "NOT_FOUND", missing)
    assert_error(client.delete(f"/api/instance/{missing}"), 404, "NOT_FOUND", missing)
    assert_error(client.put(f"/api/instance/{missing}", params={"action": "stop"}), 404, "NOT_FOUND", missing)
    assert_error(client.post(f"/api/instance/{missing}", params={"action": "image"}), 404, "NOT_FOUND", missing)


def test_other_owner_sees_nothing(emulator: RunningEmulator) -> None:
    demo = emulator.client()
    created = demo.post("/api/resource/kp/hpcloud/nova/standard", json={}).json()
    instance_id = demo.get(f"/api/request/{created['requestId']}").json()[0]["instanceId"]

    other = emulator.client(SECOND_API_KEY, SECOND_API_SECRET)
    assert_error(other.get(f"/api/request/{created['requestId']}"), 404, "NOT_FOUND")
    assert_error(other.get(f"/api/instance/{instance_id}"), 404, "NOT_FOUND")
    assert_error(other.delete(f"/api/instance/{instance_id}"), 404, "NOT_FOUND")
    assert other.get("/api/instance").json() == []
    assert other.get("/api/request").json() == []
    vm = other.post(VM_URI, json={"imageUri": "image/hpcloud/nova/ami-00000075", "keyPairId": instance_id})
    assert_error(vm, 400, "INVALID_REFERENCE", instance_id)


def test_unknown_path_and_method(emulator: RunningEmulator) -> None:
    client = emulator.client()
    assert_error(client.get("/api/nothing"), 404, "NOT_FOUND", "/api/nothing")
    assert_error(client.patch("/api/instance/x"), 405, "METHOD_NOT_ALLOWED", "PATCH")
    assert_error(client.delete("/api/request/x"), 405, "METHOD_NOT_ALLOWED")


def test_never_unprocessable(emulator: RunningEmulator) -> None:
    client = emulator.client()
    calls = [
        client.post("/api/resource/kp/hpcloud/nova/standard", content=b"null", headers={"content-type": "application/json"}),
        client.post("/api/resource/kp/hpcloud/nova/standard", content=b"metadata=1", headers={"content-type": "application/x-www-form-urlencoded"}),
        client.get("/api/instance", params=[("cleanup", "true"), ("cleanup", "x")]),
        client.put("/api/instance/x", params={"action": ["a", "b"]}),
    ]
    for response in calls:
        assert response.status_code != 422
        assert "error" in response.json()


@pytest.mark.parametrize(
    ("method", "path", "direct"),
    [
        ("GET", "/api/request/abc", True),
        ("GET", "/api/instance/abc", True),
        ("PUT", "/api/instance/abc", True),
        ("POST", "/api/resource/kp/hpcloud/nova/standard", True),
        ("GET", "/api/request/abc/", False),
        ("HEAD", "/api/instance/abc", False),
        ("GET", "/api/request", False),
        ("GET", "/api/instance//", False),
        ("POST", "/api/resource/kp/hpcloud/nova", False),
        ("GET", "/openapi.json", False),
        ("GET", "/admin/stats", False),
    ],
)
def test_direct_dispatch_matches_route_templates(tmp_path, method: str, path: str, direct: bool) -> None:
    from orchestrator.emulator import create_app

    app = create_app(tmp_path / "emulator.db")
    try:
        assert (app.api_calls.match(method, path) is not None) is direct
    finally:
        app.state.emulator.close()


def test_unknown_subpath_gets_api_error_body(emulator: RunningEmulator) -> None:
    assert_error(emulator.client().get("/api/request/abc/extra"), 404, "NOT_FOUND", "no such path")
