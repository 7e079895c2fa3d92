"""The instance API's operations, apart from HTTP: read, plan, submit and settle.

A call that creates a request runs in two steps. `plan_*` checks the call
against the catalog and the store, with no side effect, and raises `ApiError`
on a bad one. `submit` then stores the request with its sampled due time and
its fault. `settle` applies every request whose due time has passed, in due
order. The app runs it at the start of every call, so progress needs no
background worker.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import structlog

from orchestrator.emulator import bodies
from orchestrator.emulator.actions import IMAGE_ACTION, PUT_ACTIONS
from orchestrator.emulator.catalog import RESOURCE_TYPES, Account, Catalog, Region
from orchestrator.emulator.clock import Clock
from orchestrator.emulator.content import generate_key_pair, generate_password
from orchestrator.emulator.documents import COMPLETED, FAILED, finish_request_document, new_request_document
from orchestrator.emulator.errors import ApiError
from orchestrator.emulator.profile import Profile
from orchestrator.emulator.provider import Outcome, Provider, observed_status
from orchestrator.emulator.store import InstanceRow, RequestRow, Store

logger = structlog.get_logger("orchestrator.emulator")

# Retention is checked at most this often, in clock seconds.
RETENTION_CHECK_INTERVAL_SECONDS = 1.0

# Values of RequestRow.fault.
LOST = "lost"
LOST_APPLIED = "lost-applied"
FAILED_FAULT = "failed"


@dataclass
class Plan:
    """A checked call that will create a request."""

    action: str
    owner_id: str
    resource_type: str
    provider: str
    region: str
    connector: str
    resource_uri: str
    instance_id: str
    parameters: dict[str, Any]
    metadata: dict[str, Any] | None = None
    # Whether the top-level instanceId shows before the request finishes:
    # true for every request but a create of kp, sg, vs or vm.
    shows_instance_id: bool = True
    work: dict[str, Any] = field(default_factory=dict)


def not_found(kind: str, identifier: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{kind} {identifier} not found")


class InstanceService:
    """Requests and instances of every account, in one store.

    Every method that touches the store holds a lock, so the service can be
    shared by threads; the app calls it from its event loop.
    """

    def __init__(self, store: Store, catalog: Catalog, profile: Profile, clock: Clock, seed: int | None) -> None:
        self.store = store
        self.catalog = catalog
        self.profile = profile
        self.clock = clock
        self._latency_rng = random.Random(f"latency:{seed}") if seed is not None else random.Random()
        content_rng = random.Random(f"content:{seed}") if seed is not None else random.Random()
        self._provider = Provider(store, content_rng)
        self._lock = threading.RLock()
        self._retention_checked_at = float("-inf")

    def close(self) -> None:
        with self._lock:
            self.store.close()

    # Reads

    def get_request(self, account: Account, request_id: str) -> str:
        """Return the request as a JSON array of one, as the API does."""
        with self._lock:
            document = self.store.request_document(account.owner_id, request_id)
        if document is None:
            raise not_found("request", request_id)
        return f"[{document}]"

    def list_requests(self, account: Account, *, cleanup: bool) -> str:
        """Return the account's requests; with `cleanup`, remove the finished ones first."""
        with self._lock:
            if cleanup:
                with self.store.transaction():
                    removed = self.store.remove_finished_requests(account.owner_id)
                if removed:
                    logger.info("requests.cleaned_up", owner_id=account.owner_id, count=removed)
            documents = self.store.request_documents(account.owner_id)
        return f"[{','.join(documents)}]"

    def get_instance(self, account: Account, instance_id: str) -> str:
        with self._lock:
            document = self.store.instance_document(account.owner_id, instance_id)
        if document is None:
            raise not_found("instance", instance_id)
        return document

    def list_instances(
        self,
        account: Account,
        *,
        cleanup: bool,
        resource_type: str | None = None,
        provider: str | None = None,
        region: str | None = None,
    ) -> str:
        """Return the account's instances, filtered; with `cleanup`, remove the deleted ones first."""
        if resource_type is not None and resource_type not in RESOURCE_TYPES:
            raise bodies.invalid(
                f"unknown resourceType {resource_type!r}; expected one of {', '.join(RESOURCE_TYPES)}",
                "UNKNOWN_RESOURCE_TYPE",
            )
        with self._lock:
            if cleanup:
                with self.store.transaction():
                    removed = self.store.remove_deleted_instances(account.owner_id)
                if removed:
                    logger.info("instances.cleaned_up", owner_id=account.owner_id, count=removed)
            documents = self.store.instance_documents(
                account.owner_id, resource_type=resource_type, provider=provider, region=region
            )
        return f"[{','.join(documents)}]"

    def catalog_document(self) -> dict[str, Any]:
        return self.catalog.to_public_dict()

    # Plans

    def plan_create(
        self,
        account: Account,
        resource_type: str,
        provider: str,
        region: str,
        resource_id: str,
        body: dict[str, Any],
    ) -> Plan:
        """Check `POST /api/resource/{type}/{provider}/{region}/{resourceId}`."""
        resource_uri = f"{resource_type}/{provider}/{region}/{resource_id}"
        if resource_type not in RESOURCE_TYPES:
            raise bodies.invalid(
                f"unknown resource type {resource_type!r} in {resource_uri}; expected one of {', '.join(RESOURCE_TYPES)}",
                "UNKNOWN_RESOURCE_TYPE",
            )
        region_entry = self._region(provider, region)
        flavour = region_entry.flavour(resource_type, resource_id)
        if flavour is None:
            known = ", ".join(region_entry.flavours.get(resource_type, {})) or "none"
            raise bodies.invalid(
                f"unknown resource id {resource_id!r} for {resource_type} in {provider}/{region}; expected one of {known}",
                "UNKNOWN_RESOURCE_ID",
            )
        call = f"the create of {resource_uri}"

        if resource_type == "image":
            bodies.check_keys(body, ("virtualMachineId", "metadata"), call)
            vm_id = bodies.required_text(body, "virtualMachineId", call)
            with self._lock:
                vm = self.store.instance(account.owner_id, vm_id)
            if vm is None:
                raise bodies.invalid(f"virtualMachineId {vm_id} is not an instance of this account", "INVALID_REFERENCE")
            if (vm.provider, vm.region) != (provider, region):
                raise bodies.invalid(
                    f"vm {vm_id} is in {vm.provider}/{vm.region}; create its image under image/{vm.provider}/{vm.region}/{resource_id}",
                    "INVALID_REFERENCE",
                )
            return self._plan_image(account, vm, body, {"virtualMachineId": vm_id})

        instance_id = str(uuid.uuid4())
        metadata = bodies.metadata_of(body)
        parameters: dict[str, Any] = {}
        enrichment: dict[str, Any] = {}
        work: dict[str, Any] = {}

        if resource_type in ("kp", "sg"):
            bodies.check_keys(body, ("metadata",), call)
        elif resource_type == "vs":
            bodies.check_keys(body, ("sizeInGBytes", "metadata"), call)
            assert flavour.max_size_in_gbytes is not None
            size = bodies.size_in_gbytes(body, flavour.max_size_in_gbytes)
            if size is None:
                enrichment["sizeInGBytes"] = flavour.max_size_in_gbytes
            else:
                parameters["sizeInGBytes"] = size
        else:
            bodies.check_keys(body, ("imageUri", "keyPairId", "securityGroupIds", "metadata"), call)
            parameters, enrichment, work = self._check_vm_body(account, region_entry, body, call)
            enrichment = {**flavour.vm_facts, **enrichment}

        return Plan(
            action=f"{resource_type}.create",
            owner_id=account.owner_id,
            resource_type=resource_type,
            provider=provider,
            region=region,
            connector=region_entry.connector,
            resource_uri=resource_uri,
            instance_id=instance_id,
            parameters={
                **parameters,
                "action": f"{resource_type}.create",
                "instanceId": instance_id,
                f"{resource_type}_providerResourceId": flavour.provider_resource_id,
                "zone": region_entry.zone,
                **enrichment,
            },
            metadata=metadata,
            shows_instance_id=False,
            work=work,
        )

    def _region(self, provider: str, region: str) -> Region:
        region_entry = self.catalog.region(provider, region)
        if region_entry is not None:
            return region_entry
        if provider not in self.catalog.regions:
            raise bodies.invalid(
                f"unknown provider {provider!r}; expected one of {', '.join(self.catalog.regions)} (see GET /api/catalog)",
                "UNKNOWN_PROVIDER",
            )
        raise bodies.invalid(
            f"unknown region {region!r} of provider {provider}; expected one of {', '.join(self.catalog.regions[provider])}",
            "UNKNOWN_REGION",
        )

    def _check_vm_body(
        self, account: Account, region: Region, body: dict[str, Any], call: str
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Check a VM create body; return its parameters, the image enrichment and the settle work."""
        image_uri = bodies.required_text(body, "imageUri", call)
        key_pair_id = bodies.optional_text(body, "keyPairId")
        group_ids = bodies.text_list(body, "securityGroupIds")

        work: dict[str, Any] = {}
        prefix = f"image/{region.provider}/{region.name}/"
        image_id = image_uri[len(prefix) :] if image_uri.startswith(prefix) else ""
        if "/" in image_id or not image_id:
            raise bodies.invalid(
                f"imageUri {image_uri!r} is not an image of {region.provider}/{region.name}; expected {prefix}<imageId>",
                "UNKNOWN_IMAGE",
            )
        if image_id not in region.images:
            with self._lock:
                image = self.store.find_instance_by_uri(account.owner_id, "image", image_uri)
            if image is None:
                known = ", ".join(prefix + known_id for known_id in region.images)
                raise bodies.invalid(
                    f"unknown image {image_uri!r}; expected one of {known} or a created private image",
                    "UNKNOWN_IMAGE",
                )
            status = observed_status(image, self.clock())
            if status != "created":
                raise bodies.invalid(
                    f"image {image_uri} is {status}; refresh it until it is created before booting from it",
                    "INVALID_REFERENCE",
                )
            work["privateImageId"] = image.instance_id

        with self._lock:
            if key_pair_id is not None:
                self._check_reference(account, region, key_pair_id, "kp", "keyPairId")
            for group_id in group_ids:
                self._check_reference(account, region, group_id, "sg", "securityGroupIds")

        parameters: dict[str, Any] = {}
        for key in body:
            if key != "metadata":
                parameters[key] = body[key]
        return parameters, {"image_providerResourceId": image_id}, work

    def _check_reference(self, account: Account, region: Region, instance_id: str, resource_type: str, key: str) -> None:
        instance = self.store.instance(account.owner_id, instance_id)
        if instance is None or instance.resource_type != resource_type:
            raise bodies.invalid(f"{key} {instance_id} is not a {resource_type} instance of this account", "INVALID_REFERENCE")
        status = observed_status(instance, self.clock())
        if status in ("deleting", "deleted"):
            raise bodies.invalid(f"{key} {instance_id} is {status}", "INVALID_REFERENCE")
        if (instance.provider, instance.region) != (region.provider, region.name):
            raise bodies.invalid(
                f"{key} {instance_id} is in {instance.provider}/{instance.region}, not in {region.provider}/{region.name}",
                "INVALID_REFERENCE",
            )

    def plan_image(self, account: Account, vm_id: str, body: dict[str, Any]) -> Plan:
        """Check `POST /api/instance/{vmInstanceId}?action=image`."""
        bodies.check_keys(body, ("metadata",), "action=image")
        vm = self._existing_instance(account, vm_id)
        if vm.resource_type != "vm":
            raise bodies.invalid(f"instance {vm_id} is a {vm.resource_type}; only a vm can be imaged", "INVALID_ACTION")
        return self._plan_image(account, vm, body, {})

    def _plan_image(self, account: Account, vm: InstanceRow, body: dict[str, Any], body_parameters: dict[str, Any]) -> Plan:
        if vm.resource_type != "vm":
            raise bodies.invalid(f"instance {vm.instance_id} is a {vm.resource_type}, not a vm", "INVALID_REFERENCE")
        if vm.status == "deleted":
            raise bodies.invalid(f"vm {vm.instance_id} is deleted", "INVALID_REFERENCE")
        metadata = bodies.metadata_of(body)
        instance_id = str(uuid.uuid4())
        return Plan(
            action=IMAGE_ACTION,
            owner_id=account.owner_id,
            resource_type="image",
            provider=vm.provider,
            region=vm.region,
            connector=self.catalog.connectors[vm.provider],
            # The image's own id is known only once the provider has responded.
            resource_uri=f"image/{vm.provider}/{vm.region}/",
            instance_id=instance_id,
            parameters={
                **body_parameters,
                "providerInstanceId": vm.doc["attributes"]["providerInstanceId"],
                "action": IMAGE_ACTION,
                "instanceId": instance_id,
                "vm_providerResourceId": vm.internal["providerResourceId"],
                "zone": vm.internal["zone"],
            },
            metadata=metadata,
            work={"virtualMachineId": vm.instance_id},
        )

    def plan_refresh(self, account: Account, instance_id: str) -> Plan:
        """Check `GET /api/instance/{id}?refresh=true`."""
        instance = self._existing_instance(account, instance_id)
        return self._plan_on_instance(instance, "retrieve", {})

    def plan_delete(self, account: Account, instance_id: str) -> Plan:
        """Check `DELETE /api/instance/{id}`."""
        instance = self._existing_instance(account, instance_id)
        return self._plan_on_instance(instance, "delete", {})

    def plan_action(self, account: Account, instance_id: str, action: str | None, body: dict[str, Any]) -> Plan:
        """Check `PUT /api/instance/{id}?action=...` and its body."""
        instance = self._existing_instance(account, instance_id)
        supported = PUT_ACTIONS[instance.resource_type]
        if action is None or action not in supported:
            expected = ", ".join(supported) if supported else "none"
            given = "missing" if action is None else repr(action)
            raise bodies.invalid(
                f"action {given} is not supported on a {instance.resource_type} instance; supported actions: {expected}",
                "INVALID_ACTION",
            )

        call = f"action={action}"
        parameters: dict[str, Any] = {}
        if action in ("start", "stop"):
            bodies.check_keys(body, (), call)
        elif action == "attach":
            bodies.check_keys(body, ("virtualMachineId", "deviceName"), call)
            vm_id = bodies.required_text(body, "virtualMachineId", call)
            device = bodies.device_name(body)
            with self._lock:
                vm = self.store.instance(account.owner_id, vm_id)
            if vm is None or vm.resource_type != "vm" or vm.status == "deleted":
                raise bodies.invalid(f"virtualMachineId {vm_id} is not a live vm of this account", "INVALID_REFERENCE")
            if (vm.provider, vm.region) != (instance.provider, instance.region):
                raise bodies.invalid(
                    f"vm {vm_id} is in {vm.provider}/{vm.region}, volume {instance_id} in {instance.provider}/{instance.region}",
                    "INVALID_REFERENCE",
                )
            parameters = {"virtualMachineId": vm_id, "deviceName": device}
        elif action == "detach":
            bodies.check_keys(body, ("virtualMachineId",), call)
            named_vm_id = bodies.optional_text(body, "virtualMachineId")
            parameters = {"virtualMachineId": named_vm_id} if named_vm_id is not None else {}
        elif action == "add-access":
            bodies.check_keys(body, ("rules",), call)
            parameters = {"rules": bodies.access_rules(body)}
        else:
            bodies.check_keys(body, ("ruleIndexes",), call)
            parameters = {"ruleIndexes": bodies.rule_indexes(body)}
        return self._plan_on_instance(instance, action, parameters)

    def _existing_instance(self, account: Account, instance_id: str) -> InstanceRow:
        with self._lock:
            instance = self.store.instance(account.owner_id, instance_id)
        if instance is None:
            raise not_found("instance", instance_id)
        return instance

    def _plan_on_instance(self, instance: InstanceRow, verb: str, body_parameters: dict[str, Any]) -> Plan:
        action = f"{instance.resource_type}.{verb}"
        return Plan(
            action=action,
            owner_id=instance.owner_id,
            resource_type=instance.resource_type,
            provider=instance.provider,
            region=instance.region,
            connector=self.catalog.connectors[instance.provider],
            resource_uri=instance.resource_uri,
            instance_id=instance.instance_id,
            parameters={
                "providerInstanceId": instance.doc["attributes"]["providerInstanceId"],
                "action": action,
                "instanceId": instance.instance_id,
                f"{instance.resource_type}_providerResourceId": instance.internal["providerResourceId"],
                "zone": instance.internal["zone"],
                **body_parameters,
            },
        )

    # Submit

    async def submit(self, plan: Plan, fault: str | None, failure_code: str) -> str:
        """Store the request of a checked call and return its document.

        `fault` is `lost`, `lost-applied`, `failed` or None; a `failed` request
        ends with `failure_code`. Key pairs are generated here, off the event
        loop, because RSA generation takes tens of milliseconds.
        """
        work = dict(plan.work)
        if plan.action == "kp.create":
            key_pair = await anyio.to_thread.run_sync(generate_key_pair, self.profile.key_bits)
            work.update(publicKey=key_pair.public_key, privateKey=key_pair.private_key, keyFingerprint=key_pair.fingerprint)
        elif plan.action == "vm.create":
            work["password"] = generate_password()
        if fault == FAILED_FAULT:
            work["failure"] = {
                "code": failure_code,
                "message": f"the provider failed to perform {plan.action}; send the request again",
            }

        with self._lock:
            now = self.clock()
            rng = self._latency_rng
            duration = self.profile.sample_seconds(plan.action, rng)
            if plan.action == "vm.create":
                work["bootSeconds"] = self.profile.sample_seconds("vm.boot", rng)
            elif plan.action == "vs.create":
                work["buildSeconds"] = self.profile.sample_seconds("vs.build", rng)
            elif plan.action == IMAGE_ACTION:
                work["buildSeconds"] = self.profile.sample_seconds("image.build", rng)
            elif plan.action.endswith(".delete"):
                work["teardownSeconds"] = self.profile.sample_seconds(f"{plan.resource_type}.teardown", rng)

            request_id = str(uuid.uuid4())
            document = new_request_document(
                request_id=request_id,
                instance_id=plan.instance_id if plan.shows_instance_id else None,
                created_at=now,
                owner_id=plan.owner_id,
                resource_uri=plan.resource_uri,
                resource_type=plan.resource_type,
                provider=plan.provider,
                region=plan.region,
                connector=plan.connector,
                parameters=plan.parameters,
                metadata=plan.metadata,
            )
            row = RequestRow(
                request_id=request_id,
                owner_id=plan.owner_id,
                instance_id=plan.instance_id,
                action=plan.action,
                status="in-progress",
                created_at=now,
                due_at=now + duration,
                fault=fault,
                doc=document,
                work=work,
            )
            with self.store.transaction():
                text = self.store.insert_request(row)

        logger.info(
            "request.created",
            request_id=request_id,
            action=plan.action,
            instance_id=plan.instance_id,
            due_after_seconds=round(duration, 3),
            fault=fault,
        )
        return text

    # Settle

    def settle(self) -> int:
        """Apply every request due by now, in due order; return how many settled."""
        with self._lock:
            now = self.clock()
            settled = 0
            if self.store.has_due_request(now):
                with self.store.transaction():
                    # Read again under the write lock: another process may have settled some.
                    for row in self.store.due_requests(now):
                        self._settle_one(row)
                        settled += 1
            if now - self._retention_checked_at >= RETENTION_CHECK_INTERVAL_SECONDS:
                self._retention_checked_at = now
                self._remove_expired(now)
        return settled

    def _settle_one(self, row: RequestRow) -> None:
        at = row.due_at
        assert at is not None
        if row.fault == LOST:
            row.due_at = None
            self.store.update_request(row, finished_at=None)
            logger.info("request.lost", request_id=row.request_id, action=row.action, applied=False)
            return

        if row.fault == FAILED_FAULT:
            outcome = Outcome(results={"error": row.work["failure"]}, failed=True)
        else:
            outcome = self._provider.apply(row, at)

        if row.fault == LOST_APPLIED:
            row.due_at = None
            row.work = {}
            self.store.update_request(row, finished_at=None)
            logger.info("request.lost", request_id=row.request_id, action=row.action, applied=not outcome.failed)
            return

        status = FAILED if outcome.failed else COMPLETED
        created = not outcome.failed or row.doc.get("instanceId") is not None
        row.doc = finish_request_document(
            row.doc,
            status=status,
            finished_at=at,
            results=outcome.results,
            instance_id=row.instance_id if created else None,
        )
        row.status = status
        row.due_at = None
        # The secrets in the work now live on the instance only.
        row.work = {}
        self.store.update_request(row, finished_at=at)

        if outcome.failed:
            error = outcome.results["error"]
            logger.info(
                "request.failed", request_id=row.request_id, action=row.action, instance_id=row.instance_id, code=error["code"]
            )
        else:
            logger.info(
                "request.completed",
                request_id=row.request_id,
                action=row.action,
                instance_id=row.instance_id,
                instance_status=outcome.results.get("instanceStatus"),
            )

    def _remove_expired(self, now: float) -> None:
        before = now - self.profile.retention_seconds
        if not self.store.has_expired(before):
            return
        with self.store.transaction():
            requests, instances = self.store.remove_expired(before)
        logger.info("retention.removed", requests=requests, instances=instances)
