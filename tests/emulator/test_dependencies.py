"""Deletes that something still depends on end `failed` with DEPENDENCY_VIOLATION, checked when they settle."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.emulator import ManualClock
from tests.conftest import RunningEmulator
from tests.emulator.conftest import Api

VM_BODY = {"imageUri": "image/hpcloud/nova/ami-00000075"}


def assert_violation(request: dict, *named: str) -> None:
    assert request["requestStatus"] == "failed"
    error = request["results"]["error"]
    assert error["code"] == "DEPENDENCY_VIOLATION"
    for value in named:
        assert value in error["message"]


def test_vm_with_attached_volume(api: Api) -> None:
    vm_id = api.provision("vm/hpcloud/nova/standard.small", VM_BODY)["instanceId"]
    volume_id = api.provision("vs/hpcloud/nova/standard.10")["instanceId"]
    api.finish(api.act(volume_id, "attach", {"virtualMachineId": vm_id, "deviceName": "/dev/vdc"}))

    assert_violation(api.finish(api.delete(vm_id)), vm_id, volume_id)
    assert_violation(api.finish(api.delete(volume_id)), volume_id, vm_id)
    assert api.instance(vm_id)["attributes"]["instanceStatus"] == "running"

    api.finish(api.act(volume_id, "detach"))
    assert api.finish(api.delete(vm_id))["results"] == {"instanceStatus": "deleted"}
    assert api.finish(api.delete(volume_id))["results"] == {"instanceStatus": "deleted"}


def test_key_pair_and_group_used_by_vm(api: Api) -> None:
    key_pair_id = api.provision("kp/hpcloud/nova/standard")["instanceId"]
    group_id = api.provision("sg/hpcloud/nova/standard")["instanceId"]
    vm = api.finish(
        api.create("vm/hpcloud/nova/standard.small", {**VM_BODY, "keyPairId": key_pair_id, "securityGroupIds": [group_id]})
    )

    assert_violation(api.finish(api.delete(key_pair_id)), key_pair_id, vm["instanceId"])
    assert_violation(api.finish(api.delete(group_id)), group_id, vm["instanceId"])
    assert api.instance(key_pair_id)["attributes"]["instanceStatus"] == "created"

    assert api.finish(api.delete(vm["instanceId"]))["results"] == {"instanceStatus": "deleted"}
    assert api.finish(api.delete(key_pair_id))["results"] == {"instanceStatus": "deleted"}
    assert api.finish(api.delete(group_id))["results"] == {"instanceStatus": "deleted"}


def test_checked_when_request_settles(api: Api) -> None:
    """A key pair delete sent after the VM create but settling first wins, and the VM create fails."""
    key_pair_id = api.provision("kp/hpcloud/nova/standard")["instanceId"]
    vm_request = api.create("vm/hpcloud/nova/standard.small", {**VM_BODY, "keyPairId": key_pair_id})

    # kp.delete takes 0.5 s and vm.create 3.4 s, so the delete settles first.
    delete_request = api.delete(key_pair_id)
    assert api.finish(delete_request, after_seconds=1)["results"] == {"instanceStatus": "deleted"}

    failed = api.finish(vm_request, after_seconds=5)
    assert failed["requestStatus"] == "failed"
    assert failed["results"]["error"]["code"] == "INVALID_REFERENCE"
    assert "instanceId" not in failed
    assert api.client.get(f"/api/instance/{vm_request['parameters']['instanceId']}").status_code == 404


def test_torn_down_vm_releases_key_pair(
    emulator_server_factory: Callable[..., RunningEmulator], manual_clock: ManualClock
) -> None:
    """A VM in `deleting` still blocks its key pair; once its teardown ends, no refresh is needed."""
    emulator = emulator_server_factory(profile="fast", clock=manual_clock)
    fast = Api(client=emulator.client(), clock=manual_clock, emulator=emulator)
    key_pair_id = fast.provision("kp/hpcloud/nova/standard")["instanceId"]
    vm_id = fast.provision("vm/hpcloud/nova/standard.small", {**VM_BODY, "keyPairId": key_pair_id})["instanceId"]

    # The fast profile settles a delete in 2.5 ms and tears a VM down in 0.2 s.
    assert fast.finish(fast.delete(vm_id), after_seconds=0.01)["results"] == {"instanceStatus": "deleting"}
    assert_violation(fast.finish(fast.delete(key_pair_id), after_seconds=0.01), key_pair_id, vm_id)

    fast.clock.advance(1)
    assert fast.finish(fast.delete(key_pair_id), after_seconds=0.01)["results"] == {"instanceStatus": "deleted"}
    assert fast.instance(vm_id)["attributes"]["instanceStatus"] == "deleting"


def test_image_survives_and_deletes_alone(api: Api) -> None:
    vm_id = api.provision("vm/hpcloud/nova/standard.small", VM_BODY)["instanceId"]
    response = api.client.post(f"/api/instance/{vm_id}", params={"action": "image"}, json={})
    image_id = api.finish(response.json(), after_seconds=1)["instanceId"]

    assert api.finish(api.delete(vm_id))["results"] == {"instanceStatus": "deleted"}
    deleting = api.delete(image_id)
    assert deleting["parameters"]["action"] == "image.delete"
    assert api.finish(deleting)["results"] == {"instanceStatus": "deleted"}
