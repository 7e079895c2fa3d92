"""Every resource type and action: security groups, volumes, VM power, images, references and listing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.emulator import ManualClock
from tests.conftest import RunningEmulator
from tests.emulator.conftest import Api

VM_BODY = {"imageUri": "image/hpcloud/nova/ami-00000075", "metadata": {"name": "vm"}}
RULE_SSH = {"protocol": "tcp", "from-port": 22, "to-port": 22, "cidr-ip": "203.0.113.0/24"}
RULE_WEB = {"protocol": "tcp", "from-port": 80, "to-port": 443, "cidr-ip": "0.0.0.0/0"}
RULE_PING = {"protocol": "icmp", "from-port": -1, "to-port": -1, "cidr-ip": "198.51.100.7/32"}


def test_security_group_rules(api: Api) -> None:
    group = api.provision("sg/hpcloud/nova/standard", {"metadata": {"name": "web"}})
    group_id = group["instanceId"]
    assert group["attributes"]["instanceStatus"] == "created"
    assert group["attributes"]["rules"] == []

    added = api.finish(api.act(group_id, "add-access", {"rules": [RULE_SSH, RULE_WEB, RULE_PING]}))
    assert added["requestStatus"] == "completed"
    assert added["parameters"]["action"] == "sg.add-access"
    assert added["parameters"]["rules"] == [RULE_SSH, RULE_WEB, RULE_PING]
    assert api.instance(group_id)["attributes"]["rules"] == [RULE_SSH, RULE_WEB, RULE_PING]

    removed = api.finish(api.act(group_id, "remove-access", {"ruleIndexes": [0, 2]}))
    assert removed["requestStatus"] == "completed"
    assert removed["results"]["rules"] == [RULE_WEB]
    stored = api.instance(group_id)
    assert stored["attributes"]["rules"] == [RULE_WEB]
    assert "rules" in stored["attributeTimestamps"]

    duplicate = api.finish(api.act(group_id, "add-access", {"rules": [RULE_WEB]}))
    assert duplicate["requestStatus"] == "failed"
    assert duplicate["results"]["error"]["code"] == "DUPLICATE_RULE"

    out_of_range = api.finish(api.act(group_id, "remove-access", {"ruleIndexes": [5]}))
    assert out_of_range["requestStatus"] == "failed"
    assert out_of_range["results"]["error"]["code"] == "INVALID_PARAMETER"
    assert "5" in out_of_range["results"]["error"]["message"]
    assert api.instance(group_id)["attributes"]["rules"] == [RULE_WEB]


def test_volume_attach_and_detach(api: Api) -> None:
    vm = api.provision("vm/hpcloud/nova/standard.small", VM_BODY)
    created = api.finish(api.create("vs/hpcloud/nova/standard.50", {"sizeInGBytes": 20, "metadata": {"name": "data"}}))
    volume_id = created["instanceId"]
    assert created["results"]["instanceStatus"] == "creating"
    assert created["parameters"]["sizeInGBytes"] == 20
    assert created["parameters"]["vs_providerResourceId"] == "Standard.50"
    assert api.instance(volume_id)["attributes"]["transientStatus"] is True

    available = api.finish(api.refresh(volume_id))
    assert available["results"] == {"instanceStatus": "available"}
    assert api.instance(volume_id)["attributes"]["transientStatus"] is False

    attach_body = {"virtualMachineId": vm["instanceId"], "deviceName": "/dev/vdb"}
    attached = api.finish(api.act(volume_id, "attach", attach_body))
    assert attached["requestStatus"] == "completed"
    assert attached["results"] == {"instanceStatus": "attached", **attach_body}
    attributes = api.instance(volume_id)["attributes"]
    assert attributes["instanceStatus"] == "attached"
    assert attributes["virtualMachineId"] == vm["instanceId"]
    assert attributes["deviceName"] == "/dev/vdb"

    second = api.provision("vs/hpcloud/nova/standard.10")
    clash = api.finish(api.act(second["instanceId"], "attach", attach_body))
    assert clash["requestStatus"] == "failed"
    assert clash["results"]["error"]["code"] == "DEVICE_IN_USE"

    wrong_vm = api.finish(api.act(volume_id, "detach", {"virtualMachineId": second["instanceId"]}))
    assert wrong_vm["requestStatus"] == "failed"
    assert wrong_vm["results"]["error"]["code"] == "INVALID_PARAMETER"

    detached = api.finish(api.act(volume_id, "detach", {"virtualMachineId": vm["instanceId"]}))
    assert detached["results"] == {"instanceStatus": "available"}
    attributes = api.instance(volume_id)["attributes"]
    assert attributes["instanceStatus"] == "available"
    assert "virtualMachineId" not in attributes
    assert "deviceName" not in attributes

    again = api.finish(api.act(volume_id, "detach"))
    assert again["requestStatus"] == "failed"
    assert again["results"]["error"]["code"] == "INVALID_STATE"


def test_volume_size_defaults_to_flavour(api: Api) -> None:
    created = api.create("vs/hpcloud/nova/standard.100")
    assert created["parameters"]["sizeInGBytes"] == 100
    assert list(created["parameters"])[-1] == "sizeInGBytes"


def test_vm_stop_and_start(api: Api) -> None:
    vm_id = api.provision("vm/hpcloud/nova/standard.small", VM_BODY)["instanceId"]

    stopped = api.finish(api.act(vm_id, "stop"))
    assert stopped["parameters"]["action"] == "vm.stop"
    assert stopped["results"] == {"instanceStatus": "stopped"}
    assert api.instance(vm_id)["attributes"]["instanceStatus"] == "stopped"
    assert api.finish(api.refresh(vm_id))["results"]["instanceStatus"] == "stopped"

    started = api.finish(api.act(vm_id, "start"))
    assert started["results"]["instanceStatus"] == "running"
    assert "privateIpAddress" in started["results"]
    assert api.instance(vm_id)["attributes"]["instanceStatus"] == "running"


def test_vm_stop_while_creating_fails(api: Api) -> None:
    created = api.finish(api.create("vm/hpcloud/nova/standard.small", VM_BODY), after_seconds=4)
    failed = api.finish(api.act(created["instanceId"], "stop"), after_seconds=10)
    assert failed["requestStatus"] == "failed"
    assert failed["results"]["error"]["code"] == "INVALID_STATE"
    assert "creating" in failed["results"]["error"]["message"]


def test_vm_boots_before_refresh_for_actions(api: Api) -> None:
    """A stop after the boot time works even if no refresh has written `running` yet."""
    created = api.finish(api.create("vm/hpcloud/nova/standard.small", VM_BODY))
    api.clock.advance(400)
    stopped = api.finish(api.act(created["instanceId"], "stop"))
    assert stopped["results"] == {"instanceStatus": "stopped"}


def test_image_from_resource_path(api: Api) -> None:
    vm = api.provision("vm/hpcloud/nova/standard.small", VM_BODY)
    created = api.create("image/hpcloud/nova/standard", {"virtualMachineId": vm["instanceId"], "metadata": {"name": "img"}})
    assert created["parameters"]["action"] == "vm.create.image"
    assert created["parameters"]["virtualMachineId"] == vm["instanceId"]
    assert created["resourceUri"] == "image/hpcloud/nova/"
    assert "instanceId" in created

    completed = api.finish(created, after_seconds=1)
    assert completed["requestStatus"] == "completed"
    api.clock.advance(200)
    assert api.finish(api.refresh(completed["instanceId"]))["results"]["instanceStatus"] == "created"


def test_image_of_creating_vm_fails(api: Api) -> None:
    # The tutorial's vm.create takes 3.4 s and the boot more than five minutes.
    vm = api.finish(api.create("vm/hpcloud/nova/standard.small", VM_BODY), after_seconds=4)
    response = api.client.post(f"/api/instance/{vm['instanceId']}", params={"action": "image"}, json={})
    failed = api.finish(response.json(), after_seconds=2)
    assert failed["requestStatus"] == "failed"
    assert failed["results"]["error"]["code"] == "INVALID_STATE"
    assert api.client.get(f"/api/instance/{failed['instanceId']}").status_code == 404


def test_vm_names_key_pair_and_groups(api: Api) -> None:
    key_pair_id = api.provision("kp/hpcloud/nova/standard")["instanceId"]
    group_ids = [api.provision("sg/hpcloud/nova/standard")["instanceId"] for _ in range(2)]
    body = {**VM_BODY, "keyPairId": key_pair_id, "securityGroupIds": group_ids}

    created = api.create("vm/hpcloud/nova/standard.medium", body)
    assert created["parameters"]["keyPairId"] == key_pair_id
    assert created["parameters"]["securityGroupIds"] == group_ids
    assert list(created["parameters"])[:3] == ["imageUri", "keyPairId", "securityGroupIds"]
    vm = api.instance(api.finish(created)["instanceId"])
    assert vm["parameters"]["keyPairId"] == key_pair_id
    assert vm["parameters"]["ram"] == "4"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"keyPairId": "00000000-0000-4000-8000-000000000000"}, "keyPairId"),
        ({"securityGroupIds": ["00000000-0000-4000-8000-000000000000"]}, "securityGroupIds"),
    ],
)
def test_vm_reference_unknown_rejected(api: Api, change: dict, named: str) -> None:
    response = api.client.post("/api/resource/vm/hpcloud/nova/standard.small", json={**VM_BODY, **change})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REFERENCE"
    assert named in response.json()["error"]["message"]


def test_vm_reference_wrong_type_or_region(api: Api) -> None:
    group_id = api.provision("sg/hpcloud/nova/standard")["instanceId"]
    wrong_type = api.client.post("/api/resource/vm/hpcloud/nova/standard.small", json={**VM_BODY, "keyPairId": group_id})
    assert wrong_type.status_code == 400
    assert group_id in wrong_type.json()["error"]["message"]

    key_pair_id = api.provision("kp/amazon/us-east-1/standard")["instanceId"]
    other_region = api.client.post("/api/resource/vm/hpcloud/nova/standard.small", json={**VM_BODY, "keyPairId": key_pair_id})
    assert other_region.status_code == 400
    assert "amazon/us-east-1" in other_region.json()["error"]["message"]


def test_private_image_not_ready_rejected(api: Api) -> None:
    vm = api.provision("vm/hpcloud/nova/standard.small", VM_BODY)
    response = api.client.post(f"/api/instance/{vm['instanceId']}", params={"action": "image"}, json={})
    image_id = api.finish(response.json(), after_seconds=1)["instanceId"]
    image_uri = api.instance(image_id)["resourceUri"]

    early = api.client.post("/api/resource/vm/hpcloud/nova/standard.small", json={"imageUri": image_uri})
    assert early.status_code == 400
    assert early.json()["error"]["code"] == "INVALID_REFERENCE"
    assert "creating" in early.json()["error"]["message"]


def test_metadata_keeps_every_key(api: Api) -> None:
    metadata = {"name": "n", "description": "d", "cws-workload": "web", "node": {"path": ["a", 1]}}
    created = api.finish(api.create("kp/hpcloud/nova/standard", {"metadata": metadata}))
    assert created["metadata"] == metadata
    assert api.instance(created["instanceId"])["metadata"] == metadata
    listed = api.client.get("/api/instance").json()
    assert [item["metadata"] for item in listed] == [metadata]


def test_instance_list_filters(api: Api) -> None:
    key_pair = api.provision("kp/hpcloud/nova/standard")["instanceId"]
    group = api.provision("sg/hpcloud/nova/standard")["instanceId"]
    remote = api.provision("kp/amazon/us-east-1/standard")["instanceId"]

    def listed(**filters: str) -> list[str]:
        response = api.client.get("/api/instance", params=filters)
        assert response.status_code == 200, response.text
        return [item["instanceId"] for item in response.json()]

    assert listed() == [key_pair, group, remote]
    assert listed(resourceType="kp") == [key_pair, remote]
    assert listed(provider="amazon") == [remote]
    assert listed(region="nova") == [key_pair, group]
    assert listed(resourceType="kp", provider="hpcloud", region="nova") == [key_pair]
    assert listed(resourceType="vm") == []


def test_second_provider_connector(api: Api) -> None:
    created = api.create("vm/amazon/us-east-1/t1.micro", {"imageUri": "image/amazon/us-east-1/ami-2d8e4c14"})
    assert created["connector"] == "amazon.ec2"
    assert created["parameters"]["zone"] == "us-east-1a"
    assert created["parameters"]["username"] == "ec2-user"


def test_request_list_cleanup(api: Api) -> None:
    finished = api.finish(api.create("kp/hpcloud/nova/standard"))
    pending = api.create("vm/hpcloud/nova/standard.small", VM_BODY)

    everything = api.client.get("/api/request").json()
    assert [item["requestId"] for item in everything] == [finished["requestId"], pending["requestId"]]

    in_progress = api.client.get("/api/request", params={"cleanup": "true"}).json()
    assert [item["requestId"] for item in in_progress] == [pending["requestId"]]
    assert api.client.get(f"/api/request/{finished['requestId']}").status_code == 404
    assert api.request(pending["requestId"])["requestStatus"] == "in-progress"


def test_vm_teardown_goes_through_deleting(
    emulator_server_factory: Callable[..., RunningEmulator], manual_clock: ManualClock
) -> None:
    emulator = emulator_server_factory(profile="fast", clock=manual_clock)
    fast = Api(client=emulator.client(), clock=manual_clock, emulator=emulator)
    vm_id = fast.provision("vm/hpcloud/nova/standard.small", VM_BODY)["instanceId"]

    deleting = fast.finish(fast.delete(vm_id), after_seconds=0.01)
    assert deleting["results"] == {"instanceStatus": "deleting"}
    vm = fast.instance(vm_id)
    assert vm["attributes"]["instanceStatus"] == "deleting"
    assert vm["attributes"]["transientStatus"] is True

    # The fast profile tears a VM down in 0.2 s.
    fast.clock.advance(1)
    assert fast.finish(fast.refresh(vm_id), after_seconds=0.01)["results"] == {"instanceStatus": "deleted"}
    assert fast.instance(vm_id)["attributes"]["transientStatus"] is False
