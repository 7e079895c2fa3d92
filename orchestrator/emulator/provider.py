"""The emulated cloud provider: what a request does to its instance when it settles.

A request settles at its due time. Its effect is computed for that moment,
`at`, from the stored instance and the instance's internal timings. A VM whose
boot time has passed is `running` at the provider even though the stored
instance still records `creating`, so the first request that settles for it
writes `running` (`_catch_up`). Nothing changes an instance between requests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from orchestrator.emulator.actions import IMAGE_ACTION
from orchestrator.emulator.clock import format_timestamp
from orchestrator.emulator.content import pick_addresses
from orchestrator.emulator.documents import (
    TRANSIENT_STATUSES,
    new_instance_document,
    with_provider_resource_id,
)
from orchestrator.emulator.store import InstanceRow, RequestRow, Store

# First provider instance ids, continuing the tutorial's numbering.
FIRST_VM_ID = 2818157
FIRST_SECURITY_GROUP_ID = 31407
FIRST_VOLUME_ID = 48221
FIRST_IMAGE_NUMBER = 58180
FIRST_IMAGE_TASK_ID = 360832

# Attributes that never get a change time: the id never changes, and the
# transient flag follows the status.
_UNSTAMPED = frozenset({"providerInstanceId", "transientStatus"})


@dataclass(frozen=True)
class Outcome:
    """The end of a request: its `results`, and whether it failed."""

    results: dict[str, Any]
    failed: bool = False

    @classmethod
    def failure(cls, code: str, message: str) -> Outcome:
        return cls({"error": {"code": code, "message": message}}, failed=True)


def observed_status(instance: InstanceRow, at: float) -> str:
    """Return the status the provider would report for `instance` at `at`."""
    internal = instance.internal
    if instance.status == "creating" and internal.get("readyAt") is not None and at >= internal["readyAt"]:
        return str(internal["readyStatus"])
    if instance.status == "deleting" and at >= internal.get("goneAt", float("inf")):
        return "deleted"
    return instance.status


class Provider:
    """Applies settled requests to instances in the store, inside the caller's transaction."""

    def __init__(self, store: Store, rng: random.Random) -> None:
        self._store = store
        self._rng = rng

    def apply(self, request: RequestRow, at: float) -> Outcome:
        if request.action.endswith(".create") or request.action == IMAGE_ACTION:
            return self._create(request, at)

        instance = self._store.instance(request.owner_id, request.instance_id or "")
        if instance is None:
            return Outcome.failure("NOT_FOUND", f"instance {request.instance_id} no longer exists")

        self._catch_up(instance, at)
        verb = request.action.split(".", 1)[1]
        outcome = self._ACTIONS[verb](self, request, instance, at)
        if outcome.failed:
            return outcome

        instance.doc["updated"] = format_timestamp(at)
        instance.doc = with_provider_resource_id(instance.doc, instance.internal["providerResourceId"])
        self._store.save_instance(instance)
        return outcome

    # Creates

    def _create(self, request: RequestRow, at: float) -> Outcome:
        parameters = request.doc["parameters"]
        resource_type = request.doc["resourceType"]
        instance_id = parameters["instanceId"]
        work = request.work
        internal: dict[str, Any] = {"zone": parameters["zone"]}

        if request.action == "kp.create":
            attributes = {
                "providerInstanceId": instance_id,
                "publicKey": work["publicKey"],
                "privateKey": work["privateKey"],
                "keyFingerprint": work["keyFingerprint"],
                "instanceStatus": "created",
            }
            stamped: tuple[str, ...] = ("instanceStatus",)
            results = {key: attributes[key] for key in ("providerInstanceId", "keyFingerprint", "privateKey", "publicKey", "instanceStatus")}

        elif request.action == "sg.create":
            attributes = {
                "providerInstanceId": self._store.next_counter("sg", FIRST_SECURITY_GROUP_ID),
                "rules": [],
                "instanceStatus": "created",
            }
            stamped = ("rules", "instanceStatus")
            results = dict(attributes)

        elif request.action == "vs.create":
            attributes = {
                "providerInstanceId": self._store.next_counter("vs", FIRST_VOLUME_ID),
                "instanceStatus": "creating",
            }
            stamped = ("instanceStatus",)
            results = dict(attributes)
            internal.update(readyAt=at + work["buildSeconds"], readyStatus="available")

        elif request.action == "vm.create":
            failure = self._check_vm_references(request, at)
            if failure is not None:
                return failure
            private_address, public_address = pick_addresses(self._rng)
            attributes = {
                "providerInstanceId": self._store.next_counter("vm", FIRST_VM_ID),
                "password": work["password"],
                "instanceStatus": "creating",
            }
            stamped = ("password", "instanceStatus")
            results = {key: attributes[key] for key in ("providerInstanceId", "instanceStatus", "password")}
            internal.update(
                readyAt=at + work["bootSeconds"],
                readyStatus="running",
                privateIpAddress=private_address,
                publicIpAddress=public_address,
            )

        else:
            return self._create_image(request, at)

        internal["providerResourceId"] = parameters[f"{resource_type}_providerResourceId"]
        self._save_new_instance(request, at, request.doc["resourceUri"], attributes, stamped, internal)
        return Outcome(results)

    def _create_image(self, request: RequestRow, at: float) -> Outcome:
        vm_id = request.work["virtualMachineId"]
        vm = self._store.instance(request.owner_id, vm_id)
        if vm is None:
            return Outcome.failure("INVALID_REFERENCE", f"vm {vm_id} no longer exists")
        vm_status = observed_status(vm, at)
        if vm_status not in ("running", "stopped"):
            return Outcome.failure(
                "INVALID_STATE", f"vm {vm_id} is {vm_status}; only a running or stopped VM can be imaged"
            )

        image_id = f"ami-{self._store.next_counter('image', FIRST_IMAGE_NUMBER):08d}"
        attributes = {"providerInstanceId": image_id, "progress": 0, "instanceStatus": "creating"}
        internal = {
            "zone": request.doc["parameters"]["zone"],
            "providerResourceId": image_id,
            "readyAt": at + request.work["buildSeconds"],
            "readyStatus": "created",
            "buildStartedAt": at,
            "buildSeconds": request.work["buildSeconds"],
            "imageTaskId": str(self._store.next_counter("image-task", FIRST_IMAGE_TASK_ID)),
        }
        resource_uri = f"image/{request.doc['provider']}/{request.doc['region']}/{image_id}"
        self._save_new_instance(request, at, resource_uri, attributes, ("instanceStatus",), internal)
        return Outcome({"providerInstanceId": image_id, "instanceStatus": "creating"})

    def _save_new_instance(
        self,
        request: RequestRow,
        at: float,
        resource_uri: str,
        attributes: dict[str, Any],
        stamped: tuple[str, ...],
        internal: dict[str, Any],
    ) -> None:
        parameters = {key: value for key, value in request.doc["parameters"].items() if key not in ("action", "instanceId")}
        doc = new_instance_document(
            instance_id=request.doc["parameters"]["instanceId"],
            created_at=at,
            owner_id=request.owner_id,
            resource_uri=resource_uri,
            resource_type=request.doc["resourceType"],
            provider=request.doc["provider"],
            region=request.doc["region"],
            attributes=attributes,
            stamped=stamped,
            metadata=request.doc.get("metadata", {}),
            parameters=parameters,
        )
        self._store.save_instance(
            InstanceRow(
                instance_id=doc["instanceId"],
                owner_id=request.owner_id,
                resource_type=doc["resourceType"],
                provider=doc["provider"],
                region=doc["region"],
                resource_uri=resource_uri,
                status=attributes["instanceStatus"],
                created_at=at,
                deleted_at=None,
                doc=doc,
                internal=internal,
            )
        )

    def _check_vm_references(self, request: RequestRow, at: float) -> Outcome | None:
        """Check again, at settle time, that the key pair, security groups and private image still exist."""
        parameters = request.doc["parameters"]
        named = [("key pair", parameters.get("keyPairId"))]
        named += [("security group", group_id) for group_id in parameters.get("securityGroupIds", [])]
        for kind, instance_id in named:
            if instance_id is None:
                continue
            found = self._store.instance(request.owner_id, instance_id)
            if found is None or observed_status(found, at) in ("deleting", "deleted"):
                return Outcome.failure("INVALID_REFERENCE", f"{kind} {instance_id} was deleted before the VM was created")

        image_id = request.work.get("privateImageId")
        if image_id is not None:
            image = self._store.instance(request.owner_id, image_id)
            if image is None or observed_status(image, at) != "created":
                return Outcome.failure(
                    "INVALID_REFERENCE", f"image {parameters['imageUri']} was deleted before the VM was created"
                )
        return None

    # Requests on an existing instance

    def _catch_up(self, instance: InstanceRow, at: float) -> None:
        """Write what the provider did on its own since the last request: a boot, build or teardown that ended."""
        status = observed_status(instance, at)
        if status == instance.status:
            if status == "creating" and instance.resource_type == "image":
                internal = instance.internal
                elapsed = at - internal["buildStartedAt"]
                progress = min(99, int(100 * elapsed / internal["buildSeconds"])) if internal["buildSeconds"] > 0 else 99
                _set_attributes(instance, at, {"progress": progress})
            return

        if status == "running":
            _set_attributes(
                instance,
                at,
                {
                    "password": instance.doc["attributes"]["password"],
                    "instanceStatus": "running",
                    "privateIpAddress": instance.internal["privateIpAddress"],
                    "publicIpAddress": instance.internal["publicIpAddress"],
                },
                # The provider reports the password again with the addresses.
                stamp=("password",),
            )
        elif status == "created" and instance.resource_type == "image":
            _set_attributes(instance, at, {"progress": 100, "instanceStatus": "created"})
        else:
            _set_attributes(instance, at, {"instanceStatus": status})

    def _retrieve(self, request: RequestRow, instance: InstanceRow, at: float) -> Outcome:
        attributes = instance.doc["attributes"]
        status = instance.status
        if instance.resource_type == "image":
            return Outcome(
                {
                    "providerInstanceId": instance.internal["imageTaskId"],
                    "progress": attributes["progress"],
                    "instanceStatus": status,
                }
            )
        results: dict[str, Any] = {"instanceStatus": status}
        if instance.resource_type == "vm" and status in ("running", "stopped"):
            results["privateIpAddress"] = attributes["privateIpAddress"]
            results["publicIpAddress"] = attributes["publicIpAddress"]
        elif instance.resource_type == "vs" and status == "attached":
            results["virtualMachineId"] = attributes["virtualMachineId"]
            results["deviceName"] = attributes["deviceName"]
        elif instance.resource_type == "sg":
            results["rules"] = attributes["rules"]
        return Outcome(results)

    def _delete(self, request: RequestRow, instance: InstanceRow, at: float) -> Outcome:
        if instance.status in ("deleting", "deleted"):
            return Outcome({"instanceStatus": instance.status})

        violation = self._find_dependent(instance, at)
        if violation is not None:
            return Outcome.failure("DEPENDENCY_VIOLATION", violation)

        teardown_seconds = request.work.get("teardownSeconds", 0.0)
        if teardown_seconds > 0:
            instance.internal["goneAt"] = at + teardown_seconds
            _set_attributes(instance, at, {"instanceStatus": "deleting"})
        else:
            _set_attributes(instance, at, {"instanceStatus": "deleted"})
        return Outcome({"instanceStatus": instance.status})

    def _find_dependent(self, instance: InstanceRow, at: float) -> str | None:
        """Describe what still depends on `instance`, or return None when it can be deleted."""
        owner_id = instance.owner_id
        if instance.resource_type == "vm":
            volumes = self._store.attached_volumes(owner_id, instance.instance_id)
            if volumes:
                volume = volumes[0]
                device = volume.doc["attributes"]["deviceName"]
                return f"vm {instance.instance_id} has volume {volume.instance_id} attached at {device}; detach it first"
        elif instance.resource_type in ("kp", "sg"):
            users = [
                vm.instance_id
                for vm in self._store.live_vms_naming(owner_id, instance.instance_id)
                if observed_status(vm, at) != "deleted"
            ]
            if users:
                kind = "key pair" if instance.resource_type == "kp" else "security group"
                return f"{kind} {instance.instance_id} is used by vm {', '.join(users[:3])}; delete the VM first"
        elif instance.resource_type == "vs" and instance.status == "attached":
            vm_id = instance.doc["attributes"]["virtualMachineId"]
            return f"volume {instance.instance_id} is attached to vm {vm_id}; detach it first"
        return None

    def _start(self, request: RequestRow, instance: InstanceRow, at: float) -> Outcome:
        return self._power(instance, at, target_status="running", source_status="stopped")

    def _stop(self, request: RequestRow, instance: InstanceRow, at: float) -> Outcome:
        return self._power(instance, at, target_status="stopped", source_status="running")

    def _power(self, instance: InstanceRow, at: float, *, target_status: str, source_status: str) -> Outcome:
        """Move a VM from `source_status` to `target_status`; a VM already there stays as it is."""
        if instance.status not in (target_status, source_status):
            verb = "started" if target_status == "running" else "stopped"
            return Outcome.failure(
                "INVALID_STATE", f"vm {instance.instance_id} is {instance.status}; only a {source_status} VM can be {verb}"
            )
        _set_attributes(instance, at, {"instanceStatus": target_status})
        results: dict[str, Any] = {"instanceStatus": target_status}
        if target_status == "running":
            results["privateIpAddress"] = instance.doc["attributes"]["privateIpAddress"]
            results["publicIpAddress"] = instance.doc["attributes"]["publicIpAddress"]
        return Outcome(results)

    def _attach(self, request: RequestRow, instance: InstanceRow, at: float) -> Outcome:
        parameters = request.doc["parameters"]
        vm_id = parameters["virtualMachineId"]
        device = parameters["deviceName"]
        if instance.status != "available":
            return Outcome.failure(
                "INVALID_STATE", f"volume {instance.instance_id} is {instance.status}; only an available volume can be attached"
            )

        vm = self._store.instance(instance.owner_id, vm_id)
        vm_status = observed_status(vm, at) if vm is not None else "deleted"
        if vm_status not in ("running", "stopped"):
            return Outcome.failure("INVALID_STATE", f"vm {vm_id} is {vm_status}; attach to a running or stopped VM")
        for other in self._store.attached_volumes(instance.owner_id, vm_id):
            if other.doc["attributes"]["deviceName"] == device:
                return Outcome.failure(
                    "DEVICE_IN_USE", f"vm {vm_id} already has volume {other.instance_id} at {device}; pick another deviceName"
                )

        _set_attributes(instance, at, {"instanceStatus": "attached", "virtualMachineId": vm_id, "deviceName": device})
        return Outcome({"instanceStatus": "attached", "virtualMachineId": vm_id, "deviceName": device})

    def _detach(self, request: RequestRow, instance: InstanceRow, at: float) -> Outcome:
        if instance.status != "attached":
            return Outcome.failure(
                "INVALID_STATE", f"volume {instance.instance_id} is {instance.status}; only an attached volume can be detached"
            )
        attached_to = instance.doc["attributes"]["virtualMachineId"]
        named = request.doc["parameters"].get("virtualMachineId")
        if named is not None and named != attached_to:
            return Outcome.failure(
                "INVALID_PARAMETER", f"volume {instance.instance_id} is attached to vm {attached_to}, not to vm {named}"
            )

        _set_attributes(instance, at, {"instanceStatus": "available"})
        _remove_attributes(instance, ("virtualMachineId", "deviceName"))
        return Outcome({"instanceStatus": "available"})

    def _add_access(self, request: RequestRow, instance: InstanceRow, at: float) -> Outcome:
        failure = _require_live_group(instance)
        if failure is not None:
            return failure
        rules = list(instance.doc["attributes"]["rules"])
        for rule in request.doc["parameters"]["rules"]:
            if rule in rules:
                return Outcome.failure(
                    "DUPLICATE_RULE", f"security group {instance.instance_id} already has the rule {rule}"
                )
            rules.append(rule)
        _set_attributes(instance, at, {"rules": rules})
        return Outcome({"instanceStatus": instance.status, "rules": rules})

    def _remove_access(self, request: RequestRow, instance: InstanceRow, at: float) -> Outcome:
        failure = _require_live_group(instance)
        if failure is not None:
            return failure
        rules = instance.doc["attributes"]["rules"]
        indexes = request.doc["parameters"]["ruleIndexes"]
        out_of_range = [index for index in indexes if index >= len(rules)]
        if out_of_range:
            return Outcome.failure(
                "INVALID_PARAMETER",
                f"rule index {out_of_range[0]} is out of range: security group {instance.instance_id} has {len(rules)} rules",
            )
        remaining = [rule for index, rule in enumerate(rules) if index not in indexes]
        _set_attributes(instance, at, {"rules": remaining})
        return Outcome({"instanceStatus": instance.status, "rules": remaining})

    _ACTIONS = {
        "retrieve": _retrieve,
        "delete": _delete,
        "start": _start,
        "stop": _stop,
        "attach": _attach,
        "detach": _detach,
        "add-access": _add_access,
        "remove-access": _remove_access,
    }


def _require_live_group(instance: InstanceRow) -> Outcome | None:
    if instance.status != "created":
        return Outcome.failure(
            "INVALID_STATE", f"security group {instance.instance_id} is {instance.status}; its rules cannot change"
        )
    return None


def _set_attributes(
    instance: InstanceRow,
    at: float,
    values: dict[str, Any],
    *,
    stamp: tuple[str, ...] = (),
) -> None:
    """Write attributes, recording the change time of each changed one and of those in `stamp`."""
    attributes = instance.doc["attributes"]
    timestamps = instance.doc["attributeTimestamps"]
    timestamp = format_timestamp(at)
    for key, value in values.items():
        if key not in _UNSTAMPED and (attributes.get(key) != value or key in stamp):
            timestamps[key] = timestamp
        attributes[key] = value

    status = values.get("instanceStatus")
    if status is not None:
        attributes["transientStatus"] = status in TRANSIENT_STATUSES
        instance.status = status
        if status == "deleted":
            instance.deleted_at = at


def _remove_attributes(instance: InstanceRow, keys: tuple[str, ...]) -> None:
    for key in keys:
        instance.doc["attributes"].pop(key, None)
        instance.doc["attributeTimestamps"].pop(key, None)
