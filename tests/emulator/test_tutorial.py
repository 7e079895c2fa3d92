"""The tutorial's three walkthroughs, field by field: a key pair, a VM, and an image made from the VM."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import uuid

from cryptography.hazmat.primitives import serialization

from orchestrator.emulator import DEMO_OWNER_ID
from tests.emulator.conftest import Api

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REQUEST_KEYS = [
    "requestId",
    "created",
    "updated",
    "ownerId",
    "requestStatus",
    "resourceUri",
    "resourceType",
    "provider",
    "region",
    "connector",
    "parameters",
]
INSTANCE_KEYS = [
    "instanceId",
    "created",
    "updated",
    "ownerId",
    "resourceUri",
    "resourceType",
    "provider",
    "region",
    "attributes",
    "attributeTimestamps",
    "metadata",
    "parameters",
]
VM_BODY = {
    "imageUri": "image/hpcloud/nova/ami-00000075",
    "metadata": {"name": "VM-1", "description": "my first virtual machine"},
}
DOCUMENTATION_NETWORKS = [ipaddress.ip_network(block) for block in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def is_uuid4(value: str) -> bool:
    return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value


def in_documentation_range(address: str) -> bool:
    return any(ipaddress.ip_address(address) in network for network in DOCUMENTATION_NETWORKS)


def test_key_pair_life_cycle(api: Api) -> None:
    metadata = {"name": "KP1", "description": "my first key pair"}
    created = api.create("kp/hpcloud/nova/standard", {"metadata": metadata})

    assert list(created) == [*REQUEST_KEYS, "metadata"]
    assert created["requestStatus"] == "in-progress"
    assert created["created"] == created["updated"]
    assert TIMESTAMP.match(created["created"])
    assert is_uuid4(created["requestId"])
    assert created["ownerId"] == DEMO_OWNER_ID
    assert created["resourceUri"] == "kp/hpcloud/nova/standard"
    assert (created["resourceType"], created["provider"], created["region"]) == ("kp", "hpcloud", "nova")
    assert created["connector"] == "openStack.compute"
    assert list(created["parameters"]) == ["action", "instanceId", "kp_providerResourceId", "zone"]
    assert created["parameters"]["action"] == "kp.create"
    assert created["parameters"]["kp_providerResourceId"] == "standard"
    assert created["parameters"]["zone"] == "nova"
    assert created["metadata"] == metadata
    instance_id = created["parameters"]["instanceId"]
    assert is_uuid4(instance_id)

    still = api.request(created["requestId"])
    assert still["requestStatus"] == "in-progress"

    completed = api.finish(created, after_seconds=1)
    assert completed["requestStatus"] == "completed"
    assert list(completed) == ["requestId", "instanceId", *REQUEST_KEYS[1:], "metadata", "results"]
    assert completed["instanceId"] == instance_id
    assert completed["updated"] > completed["created"]
    results = completed["results"]
    assert list(results) == ["providerInstanceId", "keyFingerprint", "privateKey", "publicKey", "instanceStatus"]
    assert results["providerInstanceId"] == instance_id
    assert results["privateKey"] == "<HIDDEN>"
    assert results["instanceStatus"] == "created"

    instance = api.instance(instance_id)
    assert list(instance) == INSTANCE_KEYS
    assert instance["ownerId"] == DEMO_OWNER_ID
    assert instance["resourceUri"] == "kp/hpcloud/nova/standard"
    attributes = instance["attributes"]
    assert list(attributes) == [
        "providerInstanceId",
        "publicKey",
        "privateKey",
        "keyFingerprint",
        "instanceStatus",
        "transientStatus",
    ]
    assert attributes["instanceStatus"] == "created"
    assert attributes["transientStatus"] is False
    assert attributes["publicKey"] == results["publicKey"]
    assert attributes["keyFingerprint"] == results["keyFingerprint"]
    assert attributes["privateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert list(instance["attributeTimestamps"]) == ["instanceStatus"]
    assert instance["metadata"] == metadata
    assert instance["parameters"] == {"kp_providerResourceId": "standard", "zone": "nova"}

    assert api.client.get("/api/request", params={"cleanup": "true"}).json() == []
    listed = api.client.get("/api/instance", params={"cleanup": "true"}).json()
    assert [item["instanceId"] for item in listed] == [instance_id]

    deleting = api.delete(instance_id)
    assert deleting["requestStatus"] == "in-progress"
    assert deleting["instanceId"] == instance_id
    assert "metadata" not in deleting
    assert list(deleting["parameters"]) == ["providerInstanceId", "action", "instanceId", "kp_providerResourceId", "zone"]
    assert deleting["parameters"]["action"] == "kp.delete"

    deleted = api.finish(deleting, after_seconds=1)
    assert deleted["requestStatus"] == "completed"
    assert deleted["results"] == {"instanceStatus": "deleted"}
    deleted_instance = api.instance(instance_id)
    assert deleted_instance["attributes"]["instanceStatus"] == "deleted"
    assert deleted_instance["providerResourceId"] == "standard"
    assert list(deleted_instance)[8] == "providerResourceId"

    assert api.client.get("/api/instance", params={"cleanup": "true"}).json() == []
    assert api.client.get(f"/api/instance/{instance_id}").status_code == 404


def test_key_pair_is_real_rsa(api: Api) -> None:
    created = api.finish(api.create("kp/hpcloud/nova/standard"))
    attributes = api.instance(created["instanceId"])["attributes"]

    public_key = serialization.load_ssh_public_key(attributes["publicKey"].strip().encode())
    private_key = serialization.load_pem_private_key(attributes["privateKey"].encode(), password=None)
    assert private_key.public_key().public_numbers() == public_key.public_numbers()  # type: ignore[union-attr]
    assert private_key.key_size == 2048  # type: ignore[union-attr]
    assert attributes["publicKey"].startswith("ssh-rsa ")

    blob = base64.b64decode(attributes["publicKey"].split()[1])
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    assert attributes["keyFingerprint"] == ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def test_virtual_machine_life_cycle(api: Api) -> None:
    created = api.create("vm/hpcloud/nova/standard.small", VM_BODY)
    assert "instanceId" not in created
    assert created["parameters"] == {
        "imageUri": "image/hpcloud/nova/ami-00000075",
        "action": "vm.create",
        "instanceId": created["parameters"]["instanceId"],
        "vm_providerResourceId": "Standard.small",
        "zone": "nova",
        "cpuCount": "2",
        "cpuSpeed": "1.2",
        "localStorage": "60",
        "ram": "2",
        "username": "ubuntu",
        "image_providerResourceId": "ami-00000075",
    }
    assert list(created["parameters"]) == [
        "imageUri",
        "action",
        "instanceId",
        "vm_providerResourceId",
        "zone",
        "cpuCount",
        "cpuSpeed",
        "localStorage",
        "ram",
        "username",
        "image_providerResourceId",
    ]
    instance_id = created["parameters"]["instanceId"]

    # The tutorial's vm.create takes 3.4 s.
    api.clock.advance(3)
    assert api.request(created["requestId"])["requestStatus"] == "in-progress"
    completed = api.finish(created, after_seconds=0.5)
    assert completed["requestStatus"] == "completed"
    assert list(completed["results"]) == ["providerInstanceId", "instanceStatus", "password"]
    assert isinstance(completed["results"]["providerInstanceId"], int)
    assert completed["results"]["instanceStatus"] == "creating"
    assert completed["results"]["password"] == "<HIDDEN>"

    creating = api.instance(instance_id)
    assert list(creating) == INSTANCE_KEYS
    assert list(creating["attributes"]) == ["providerInstanceId", "password", "instanceStatus", "transientStatus"]
    assert creating["attributes"]["instanceStatus"] == "creating"
    assert creating["attributes"]["transientStatus"] is True
    assert re.fullmatch(r"[A-Za-z0-9]{16}", creating["attributes"]["password"])
    assert list(creating["attributeTimestamps"]) == ["password", "instanceStatus"]
    assert {key: value for key, value in creating["parameters"].items()} == {
        key: value for key, value in created["parameters"].items() if key not in ("action", "instanceId")
    }

    early = api.refresh(instance_id)
    assert early["requestStatus"] == "in-progress"
    assert early["instanceId"] == instance_id
    assert list(early["parameters"]) == ["providerInstanceId", "action", "instanceId", "vm_providerResourceId", "zone"]
    assert early["parameters"]["action"] == "vm.retrieve"
    assert early["parameters"]["providerInstanceId"] == completed["results"]["providerInstanceId"]
    assert api.finish(early, after_seconds=1)["results"] == {"instanceStatus": "creating"}
    assert api.instance(instance_id)["attributes"]["instanceStatus"] == "creating"

    # Boot time has passed, but the stored instance changes only when a request finishes.
    api.clock.advance(400)
    assert api.instance(instance_id)["attributes"]["instanceStatus"] == "creating"

    running_request = api.finish(api.refresh(instance_id), after_seconds=1)
    results = running_request["results"]
    assert list(results) == ["instanceStatus", "privateIpAddress", "publicIpAddress"]
    assert results["instanceStatus"] == "running"
    assert in_documentation_range(results["privateIpAddress"])
    assert in_documentation_range(results["publicIpAddress"])

    running = api.instance(instance_id)
    assert running["providerResourceId"] == "Standard.small"
    assert running["attributes"]["instanceStatus"] == "running"
    assert running["attributes"]["transientStatus"] is False
    assert running["attributes"]["privateIpAddress"] == results["privateIpAddress"]
    assert running["attributes"]["password"] == creating["attributes"]["password"]
    assert list(running["attributeTimestamps"]) == ["password", "instanceStatus", "privateIpAddress", "publicIpAddress"]
    assert running["created"] == creating["created"]
    assert running["updated"] > creating["updated"]

    deleting = api.delete(instance_id)
    assert deleting["parameters"]["action"] == "vm.delete"
    deleted = api.finish(deleting, after_seconds=1)
    assert deleted["results"] == {"instanceStatus": "deleted"}
    assert api.instance(instance_id)["attributes"]["instanceStatus"] == "deleted"


def test_private_image_life_cycle(api: Api) -> None:
    vm = api.provision("vm/hpcloud/nova/standard.small", VM_BODY)
    assert vm["attributes"]["instanceStatus"] == "running"
    metadata = {"name": "IMAGE-1", "description": "my first image"}

    response = api.client.post(f"/api/instance/{vm['instanceId']}", params={"action": "image"}, json={"metadata": metadata})
    assert response.status_code == 200, response.text
    created = response.json()
    image_id = created["instanceId"]
    assert is_uuid4(image_id)
    assert created["resourceUri"] == "image/hpcloud/nova/"
    assert created["resourceType"] == "image"
    assert created["metadata"] == metadata
    assert created["parameters"] == {
        "providerInstanceId": vm["attributes"]["providerInstanceId"],
        "action": "vm.create.image",
        "instanceId": image_id,
        "vm_providerResourceId": "Standard.small",
        "zone": "nova",
    }

    completed = api.finish(created, after_seconds=1)
    assert completed["requestStatus"] == "completed"
    assert list(completed["results"]) == ["providerInstanceId", "instanceStatus"]
    image_provider_id = completed["results"]["providerInstanceId"]
    assert re.fullmatch(r"ami-000\d{5}", image_provider_id)
    assert completed["results"]["instanceStatus"] == "creating"

    building = api.instance(image_id)
    assert building["resourceUri"] == f"image/hpcloud/nova/{image_provider_id}"
    assert building["attributes"]["instanceStatus"] == "creating"
    assert building["attributes"]["transientStatus"] is True
    assert building["parameters"] == {
        "providerInstanceId": vm["attributes"]["providerInstanceId"],
        "vm_providerResourceId": "Standard.small",
        "zone": "nova",
    }

    # The tutorial profile builds an image in 90 to 120 s: at 45 s it is under way.
    api.clock.advance(44)
    refreshing = api.refresh(image_id)
    assert refreshing["resourceUri"] == f"image/hpcloud/nova/{image_provider_id}"
    assert refreshing["parameters"] == {
        "providerInstanceId": image_provider_id,
        "action": "image.retrieve",
        "instanceId": image_id,
        "image_providerResourceId": image_provider_id,
        "zone": "nova",
    }
    partial = api.finish(refreshing, after_seconds=0.5)["results"]
    assert list(partial) == ["providerInstanceId", "progress", "instanceStatus"]
    assert partial["instanceStatus"] == "creating"
    assert 0 < partial["progress"] < 100

    # A refresh reads the provider's state at its own due time, so the build must be over before it is sent.
    api.clock.advance(100)
    done = api.finish(api.refresh(image_id), after_seconds=1)["results"]
    assert done["instanceStatus"] == "created"
    assert done["progress"] == 100

    image = api.instance(image_id)
    assert image["attributes"]["instanceStatus"] == "created"
    assert image["attributes"]["progress"] == 100
    assert image["attributes"]["providerInstanceId"] == image_provider_id
    assert image["providerResourceId"] == image_provider_id
    assert image["metadata"] == metadata

    booted = api.create(
        "vm/hpcloud/nova/standard.xsmall", {"imageUri": image["resourceUri"], "metadata": {"name": "VM-2"}}
    )
    assert booted["parameters"]["image_providerResourceId"] == image_provider_id
    assert api.finish(booted)["requestStatus"] == "completed"

    # Deleting the VM leaves the image made from it.
    assert api.finish(api.delete(vm["instanceId"]))["results"] == {"instanceStatus": "deleted"}
    assert api.instance(image_id)["attributes"]["instanceStatus"] == "created"


def test_secrets_hidden_in_every_request(api: Api) -> None:
    key_pair = api.finish(api.create("kp/hpcloud/nova/standard"))
    vm = api.finish(api.create("vm/hpcloud/nova/standard.small", VM_BODY))
    private_key = api.instance(key_pair["instanceId"])["attributes"]["privateKey"]
    password = api.instance(vm["instanceId"])["attributes"]["password"]

    listed = api.client.get("/api/request").text
    fetched = api.client.get(f"/api/request/{key_pair['requestId']}").text + api.client.get(f"/api/request/{vm['requestId']}").text
    for text in (listed, fetched):
        assert private_key not in text
        assert password not in text
        assert '"privateKey":"<HIDDEN>"' in text
        assert '"password":"<HIDDEN>"' in text

    instances = api.client.get("/api/instance").text
    assert private_key.replace("\n", "\\n") in instances
    assert password in instances
