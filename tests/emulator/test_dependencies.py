"""Deletes that something still depends on end `failed` with DEPENDENCY_VIOLATION, checked when they settle."""

from __future__ import annotations

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


def test_deleted_vm_releases_dependency_before_refresh(api: Api) -> None:
    """A VM in `deleting` still holds its key pair; once its teardown ends the key pair can go."""
    key_pair_id = api.provision("kp/hpcloud/nova/standard")["instanceId"]
    vm_id = api.finish(api.create("vm/hpcloud/nova/standard.small", {**VM_BODY, "keyPairId": key_pair_id}))["instanceId"]
    api.finish(api.delete(vm_id))
    assert api.finish(api.delete(key_pair_id))["results"] == {"instanceStatus": "deleted"}


def test_image_survives_and_deletes_alone(api: Api) -> None:
    vm_id = api.provision("vm/hpcloud/nova/standard.small", VM_BODY)["instanceId"]
    response = api.client.post(f"/api/instance/{vm_id}", params={"action": "image"}, json={})
    image_id = api.finish(response.json(), after_seconds=1)["instanceId"]

    assert api.finish(api.delete(vm_id))["results"] == {"instanceStatus": "deleted"}
    deleting = api.delete(image_id)
    assert deleting["parameters"]["action"] == "image.delete"
    assert api.finish(deleting)["results"] == {"instanceStatus": "deleted"}
