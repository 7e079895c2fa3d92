"""Node operations of a run: create, adopt, refresh, configure or delete a node's instances.

Every call that makes something is journaled first (an *intent* with a fresh
client token), and the request and instance ids are committed the moment the
API returns them. The token travels in the instance's metadata under
`TOKEN_KEY`, so an instance whose create response was lost can be found by
listing instances and adopted instead of created twice.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from orchestrator import events as ev
from orchestrator.client import CwsClient
from orchestrator.clock import Clock
from orchestrator.errors import (
    ApiError,
    AuthenticationFailed,
    BadRequest,
    CwsError,
    Forbidden,
    NotFound,
    ServerError,
    Throttled,
    TransportError,
)
from orchestrator.events import EventBus
from orchestrator.graph import Node
from orchestrator.poller import (
    FIRST_POLL_SECONDS,
    MIN_INTERVAL_SECONDS,
    NEAR_MISS_FRACTION,
    Poller,
    RequestLost,
    RequestVanished,
    expected_delay,
    next_interval,
    ready_margin,
)
from orchestrator.references import Reference, read_path, substitute
from orchestrator.state.base import (
    AMBIGUOUS,
    COMPLETED,
    CREATED,
    CREATING,
    CURRENT,
    DELETED,
    DELETING,
    LOST,
    OPERATION_FAILED,
    SENT,
    SUPERSEDED,
    SUPERSEDED_INSTANCE,
    Operation,
    OwnedInstance,
    ResourceRecord,
    StateStore,
)

log = structlog.get_logger("orchestrator.operations")

TOKEN_KEY = "cws-workload-token"
WORKLOAD_KEY = "cws-workload-workload"
NODE_KEY = "cws-workload-node"
# A random id per workload and state file, so that a sweep deletes only what this state made.
OWNER_KEY = "cws-workload-owner"

# Seconds a request may stay in-progress before it counts as lost. The tutorial's
# requests finish in 0.4 to 3.4 s, so 60 s is more than ten times the slowest.
DEFAULT_REQUEST_DEADLINES = {"kp": 60.0, "sg": 60.0, "vs": 60.0, "vm": 60.0, "image": 60.0}
# Seconds an instance may stay transient after its create request finished. The
# tutorial's VM took 6 min 26 s to run and its image 2 min 4 s; these allow about
# three times as long.
DEFAULT_READY_DEADLINES = {"kp": 300.0, "sg": 300.0, "vs": 900.0, "vm": 1200.0, "image": 600.0}
DEFAULT_MAX_ATTEMPTS = 3
# A call that records ids runs shielded from cancellation, bounded by this many seconds.
SHIELDED_CALL_SECONDS = 150.0

# Seconds by which the API's clock may run behind this one when matching request times.
REQUEST_CLOCK_SKEW_SECONDS = 5.0

DELETE_ORDER = {"image": 0, "vs": 1, "vm": 2, "sg": 3, "kp": 3}

UNHEALTHY_STATUSES = ("failed", "error", "deleted", "deleting")
GONE_STATUSES = ("deleted",)


class NodeFailed(CwsError):
    """A node could not reach its goal; `code` is the API's error code when it gave one."""

    def __init__(self, address: str, message: str, code: str | None = None) -> None:
        super().__init__(f"{address}: {message}")
        self.address = address
        self.code = code
        self.reason = message


@dataclass
class RunContext:
    """Clients, state, events and settings shared by the node operations of one run."""

    run_id: str
    workload: str
    client: CwsClient
    state: StateStore
    poller: Poller
    events: EventBus
    clock: Clock
    request_deadlines: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REQUEST_DEADLINES))
    ready_deadlines: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_READY_DEADLINES))
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    owner_id: str = ""
    # Instance documents by node address, read by references.
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Node addresses of each resource group, for `${name[*]...}`.
    groups: dict[str, list[str]] = field(default_factory=dict)
    on_phase: Callable[[str, str], None] | None = None
    # This run's clock minus the server's, at most: the least gap seen between a response's
    # arrival and the `created` stamp of the request it returned.
    server_offset: float | None = None

    def phase(self, address: str, state: str, **fields: Any) -> None:
        self.events.emit("node.state", node=address, state=state, **fields)
        if self.on_phase is not None:
            self.on_phase(address, state)

    def note_server_time(self, request: dict[str, Any]) -> None:
        """Narrow `server_offset` with a request document that has just arrived."""
        stamp = _epoch_seconds(request.get("created"))
        if stamp:
            offset = self.clock.now() - stamp
            if self.server_offset is None or offset < self.server_offset:
                self.server_offset = offset

    def local_time(self, stamp: float) -> float | None:
        """Return a server timestamp (epoch seconds, 0 when missing) on this run's clock, or None."""
        if not stamp or self.server_offset is None:
            return None
        return stamp + self.server_offset


def instance_outputs(instance: dict[str, Any]) -> dict[str, Any]:
    """Return the fields of an instance that references may read."""
    attributes = dict(instance.get("attributes") or {})
    return {
        "instanceId": instance.get("instanceId"),
        "resourceUri": instance.get("resourceUri"),
        "instanceStatus": attributes.get("instanceStatus"),
        "attributes": attributes,
        "parameters": dict(instance.get("parameters") or {}),
        "metadata": dict(instance.get("metadata") or {}),
    }


def resolve_references(value: Any, context: RunContext) -> Any:
    """Substitute `${...}` references with the outputs of nodes that are already done."""
    return resolve_with(value, context.outputs, context.groups)


def resolve_with(value: Any, outputs: dict[str, dict[str, Any]], groups: dict[str, list[str]]) -> Any:
    """Substitute `${...}` references from instance outputs by node address and node groups.

    Raise NodeFailed naming the node when a referenced node has no instance or lacks the field.
    """

    def lookup(reference: Reference) -> Any:
        if reference.index == "*":
            addresses = groups.get(reference.name, [])
            return [read_path(outputs[address], reference.path) for address in addresses]
        address = reference.name if reference.index is None else f"{reference.name}[{reference.index}]"
        document = outputs.get(address)
        if document is None:
            raise NodeFailed(address, f"{reference.text} is not available: '{address}' has no instance")
        try:
            return read_path(document, reference.path)
        except KeyError as error:
            raise NodeFailed(
                address,
                f"{reference.text} cannot be read: the instance of '{address}' has no field {error}",
            ) from None

    return substitute(value, lookup)


def _is_healthy(instance: dict[str, Any]) -> bool:
    status = (instance.get("attributes") or {}).get("instanceStatus")
    return status not in UNHEALTHY_STATUSES


def _is_transient(instance: dict[str, Any]) -> bool:
    return bool((instance.get("attributes") or {}).get("transientStatus"))


def _request_error(request: dict[str, Any]) -> tuple[str, str]:
    error = (request.get("results") or {}).get("error") or {}
    return str(error.get("code", "REQUEST_FAILED")), str(error.get("message", "the request failed"))


class NodeOperator:
    """Runs the create and delete procedures of nodes within one run."""

    def __init__(self, context: RunContext) -> None:
        self.context = context

    # Create

    async def create(self, node: Node, record: ResourceRecord) -> dict[str, Any]:
        """Bring a node's instance into being, or adopt the one an earlier run made; return it."""
        context = self.context
        record.status = CREATING
        record.error = None
        context.state.put_resource(record)
        context.phase(node.address, ev.CREATING)

        instance = await self._recover(node)
        if instance is None:
            instance = await self._create_with_attempts(node)
        created_at = context.clock.now()
        if _is_transient(instance):
            instance = await self._wait_stable(node, instance, created_at)
        instance = await self._configure(node, instance)

        record.status = CREATED
        record.instance_id = instance["instanceId"]
        record.instance_status = (instance.get("attributes") or {}).get("instanceStatus")
        record.instance = instance_outputs(instance)
        context.state.put_resource(record)
        context.outputs[node.address] = record.instance
        context.phase(
            node.address, ev.READY, instance_id=record.instance_id, instance_status=record.instance_status
        )
        return instance

    async def _recover(self, node: Node) -> dict[str, Any] | None:
        """Find an instance that an earlier, interrupted attempt made for this node.

        The journal contains every create intent whose outcome is unknown. An
        instance known by id, or found by its token, is adopted when healthy;
        every other one is marked superseded so that the sweep deletes it.
        """
        context = self.context
        operations = [
            operation
            for operation in context.state.open_operations(context.workload, node.address)
            if operation.action == "create"
        ]
        owned = [
            owned
            for owned in context.state.owned_instances(context.workload, node.address)
            if owned.role == CURRENT
        ]
        if not operations and not owned:
            return None

        adopted: dict[str, Any] | None = None
        candidates: list[tuple[str | None, str | None, Operation | None]] = [
            (owned_instance.instance_id, owned_instance.token, None) for owned_instance in owned
        ]
        candidates += [(operation.instance_id, operation.token, operation) for operation in operations]
        handled: set[str] = set()
        # Newest first, so that the latest attempt's instance is the one adopted.
        for instance_id, token, operation in reversed(candidates):
            instance: dict[str, Any] | None = None
            if operation is not None and operation.request_id is not None:
                instance = await self._settle_recorded_create(node, operation)
            elif instance_id is None and token is not None:
                instance = await self._find_by_token(node, token)
                if instance is None:
                    pending = await self._find_request_by_token(token)
                    if pending is not None:
                        instance_id = pending.get("instanceId") or (pending.get("parameters") or {}).get("instanceId")
                        await self._follow_until_deadline(pending)
                        instance = await self._get_instance_or_none(instance_id) if instance_id else None
                if instance is not None:
                    instance_id = instance["instanceId"]
                    self._own(node, instance_id, token, CURRENT)
            elif instance_id is not None:
                instance = await self._get_instance_or_none(instance_id)

            if instance_id is not None and instance_id in handled:
                if operation is not None:
                    same = adopted is not None and adopted["instanceId"] == instance_id
                    context.state.update_operation(operation.id, status=COMPLETED if same else SUPERSEDED)
                continue
            if instance_id is not None:
                handled.add(instance_id)

            if instance is not None and adopted is None and _is_healthy(instance):
                adopted = instance
                if operation is not None:
                    context.state.update_operation(operation.id, status=COMPLETED)
                context.events.emit(
                    "instance.adopted", node=node.address, instance_id=instance_id, message="found after an interrupted run"
                )
                continue
            if operation is not None:
                context.state.update_operation(operation.id, status=SUPERSEDED)
            if instance_id is not None:
                context.state.set_instance_role(context.workload, instance_id, SUPERSEDED_INSTANCE)
        return adopted

    async def _settle_recorded_create(self, node: Node, operation: Operation) -> dict[str, Any] | None:
        """Follow a create request an earlier run sent, up to its deadline; return its instance, if any."""
        assert operation.request_id is not None
        try:
            request: dict[str, Any] | None = await self.context.client.get_request(operation.request_id)
        except NotFound:
            request = None
        if request is not None and request.get("requestStatus") == "in-progress":
            await self._follow_until_deadline(request)
            try:
                request = await self.context.client.get_request(operation.request_id)
            except NotFound:
                request = None
        if request is not None and request.get("requestStatus") == "failed":
            return None
        if operation.instance_id is None:
            return None
        return await self._get_instance_or_none(operation.instance_id)

    async def _create_with_attempts(self, node: Node) -> dict[str, Any]:
        context = self.context
        history: list[str] = []
        for attempt in range(1, context.max_attempts + 1):
            token = uuid.uuid4().hex
            operation = context.state.begin_operation(
                context.run_id, context.workload, node.address, "create", attempt, token
            )
            log.debug("create.intent", workload=context.workload, node=node.address, attempt=attempt)
            sent_at = context.clock.now()
            try:
                request = await self._send_create(node, token, operation.id)
            except (TransportError, ServerError) as error:
                context.state.update_operation(operation.id, status=AMBIGUOUS, error=str(error))
                found = await self._find_by_token(node, token)
                if found is None:
                    pending = await self._find_request_by_token(token)
                    if pending is None:
                        history.append(f"attempt {attempt}: no response ({error}), and nothing made with its token")
                        context.state.update_operation(operation.id, status=SUPERSEDED)
                        continue
                    request = pending
                    pending_instance = request.get("instanceId") or (request.get("parameters") or {}).get("instanceId")
                    context.state.update_operation(
                        operation.id, status=SENT, request_id=request["requestId"], instance_id=pending_instance
                    )
                    if pending_instance:
                        self._own(node, pending_instance, token, CURRENT)
                else:
                    self._own(node, found["instanceId"], token, CURRENT)
                    context.state.update_operation(operation.id, status=COMPLETED, instance_id=found["instanceId"])
                    context.events.emit(
                        "instance.adopted",
                        node=node.address,
                        instance_id=found["instanceId"],
                        attempt=attempt,
                        message="the create's response was lost; found the instance by its token",
                    )
                    if _is_healthy(found):
                        return found
                    context.state.set_instance_role(context.workload, found["instanceId"], SUPERSEDED_INSTANCE)
                    history.append(f"attempt {attempt}: the instance it made is {found['attributes'].get('instanceStatus')}")
                    continue

            request_id = request["requestId"]
            instance_id = request.get("instanceId") or (request.get("parameters") or {}).get("instanceId")
            context.events.emit(
                "request.sent",
                node=node.address,
                action=_create_action(node),
                request_id=request_id,
                instance_id=instance_id,
                attempt=attempt,
            )
            try:
                final, settled_instance = await self._read_effect_first(
                    request,
                    instance_id,
                    action=_create_action(node),
                    resource_uri=node.resource_uri,
                    sent_at=sent_at,
                    deadline_at=sent_at + context.request_deadlines[node.type],
                    settled=lambda instance: True,
                )
            except (RequestLost, RequestVanished) as error:
                waited = error.waited_seconds if isinstance(error, RequestLost) else context.clock.now() - sent_at
                context.state.update_operation(operation.id, status=LOST)
                context.events.emit(
                    "request.lost",
                    node=node.address,
                    action=_create_action(node),
                    request_id=request_id,
                    instance_id=instance_id,
                    attempt=attempt,
                    message=f"still in-progress after {waited:.1f} s",
                )
                instance = await self._get_instance_or_none(instance_id) if instance_id else None
                if instance is None and instance_id is None:
                    instance = await self._find_by_token(node, token)
                if instance is not None and _is_healthy(instance):
                    context.state.update_operation(operation.id, status=COMPLETED)
                    context.events.emit(
                        "instance.adopted",
                        node=node.address,
                        instance_id=instance["instanceId"],
                        attempt=attempt,
                        message="the request was lost but the instance exists",
                    )
                    return instance
                context.state.update_operation(operation.id, status=SUPERSEDED)
                if instance_id:
                    context.state.set_instance_role(context.workload, instance_id, SUPERSEDED_INSTANCE)
                history.append(f"attempt {attempt}: request {request_id} lost after {waited:.1f} s")
                continue

            if settled_instance is not None:
                # The instance exists, so the create took effect.
                context.state.update_operation(operation.id, status=COMPLETED)
                context.events.emit(
                    "request.finished",
                    node=node.address,
                    action=_create_action(node),
                    request_id=request_id,
                    instance_id=instance_id,
                    message="completed",
                )
                return settled_instance
            assert final is not None
            context.events.emit(
                "request.finished",
                node=node.address,
                action=_create_action(node),
                request_id=request_id,
                instance_id=instance_id,
                message=final.get("requestStatus"),
            )
            if final.get("requestStatus") == "failed":
                code, message = _request_error(final)
                context.state.update_operation(operation.id, status=OPERATION_FAILED, error=f"{code}: {message}")
                if instance_id:
                    context.state.set_instance_role(context.workload, instance_id, SUPERSEDED_INSTANCE)
                raise NodeFailed(node.address, f"request {request_id} failed with {code}: {message}", code)

            context.state.update_operation(operation.id, status=COMPLETED)
            instance_id = final.get("instanceId") or instance_id
            return await context.client.get_instance(instance_id)

        raise NodeFailed(
            node.address,
            f"gave up after {context.max_attempts} attempts ("
            + "; ".join(history)
            + "); run apply again to retry, or raise settings.max_attempts",
            "ATTEMPTS_EXHAUSTED",
        )

    async def _send_create(self, node: Node, token: str, operation_id: int) -> dict[str, Any]:
        """Send the create call and commit its ids, shielded so an interrupt cannot lose them."""
        context = self.context
        body = self._create_body(node, token)
        with anyio.CancelScope(shield=True):
            with anyio.fail_after(SHIELDED_CALL_SECONDS):
                try:
                    if node.type == "image":
                        vm_instance_id = resolve_references(node.image_from, context)
                        request = await context.client.create_image(vm_instance_id, body)
                    else:
                        request = await context.client.create_instance(node.resource_uri, body)
                    context.note_server_time(request)
                except (BadRequest, Forbidden, AuthenticationFailed, NotFound, Throttled) as error:
                    context.state.update_operation(operation_id, status=OPERATION_FAILED, error=str(error))
                    raise NodeFailed(node.address, _explain_rejection(error), error.code) from None
                except ServerError as error:
                    if error.status == 503:
                        context.state.update_operation(operation_id, status=OPERATION_FAILED, error=str(error))
                        raise NodeFailed(
                            node.address, f"the API stayed unavailable: {error}; run apply again later", error.code
                        ) from None
                    raise
                except TransportError as error:
                    if not error.maybe_acted:
                        context.state.update_operation(operation_id, status=OPERATION_FAILED, error=str(error))
                        raise NodeFailed(node.address, str(error), "UNREACHABLE") from None
                    raise
                request_id = request["requestId"]
                instance_id = request.get("instanceId") or (request.get("parameters") or {}).get("instanceId")
                context.state.update_operation(
                    operation_id, status=SENT, request_id=request_id, instance_id=instance_id
                )
                if instance_id:
                    self._own(node, instance_id, token, CURRENT)
        log.info(
            "request.sent",
            workload=context.workload,
            node=node.address,
            request_id=request_id,
            instance_id=instance_id,
        )
        return request

    def _create_body(self, node: Node, token: str) -> dict[str, Any]:
        body = resolve_references(node.parameters, self.context)
        metadata = dict(body.get("metadata") or {})
        metadata[TOKEN_KEY] = token
        metadata[WORKLOAD_KEY] = self.context.workload
        metadata[NODE_KEY] = node.address
        metadata[OWNER_KEY] = self.context.owner_id
        body["metadata"] = metadata
        return body

    def _own(self, node: Node, instance_id: str, token: str | None, role: str) -> None:
        self.context.state.add_owned_instance(
            OwnedInstance(
                workload=self.context.workload,
                address=node.address,
                instance_id=instance_id,
                resource_type=node.type,
                role=role,
                token=token,
            )
        )

    async def _find_by_token(self, node: Node, token: str) -> dict[str, Any] | None:
        try:
            instances = await self.context.client.list_instances(
                resource_type=node.type, provider=node.provider, region=node.region
            )
        except (ApiError, TransportError) as error:
            raise NodeFailed(
                node.address, f"cannot list instances to check for a lost create: {error}", "LOOKUP_FAILED"
            ) from None
        for instance in instances:
            if (instance.get("metadata") or {}).get(TOKEN_KEY) == token:
                status = (instance.get("attributes") or {}).get("instanceStatus")
                if status in GONE_STATUSES:
                    return None
                return instance
        return None

    async def _follow_until_deadline(self, request: dict[str, Any]) -> None:
        """Follow a request until it ends or its type's deadline, counted from its creation, passes."""
        context = self.context
        deadline = context.request_deadlines.get(request.get("resourceType", ""), DEFAULT_REQUEST_DEADLINES["vm"])
        remaining = deadline - (time.time() - _epoch_seconds(request.get("created")))
        if remaining <= 0:
            return
        now = context.clock.now()
        try:
            await context.poller.follow(
                request,
                action=(request.get("parameters") or {}).get("action", "create"),
                resource_uri=request.get("resourceUri", ""),
                sent_at=now,
                deadline_at=now + remaining,
            )
        except (RequestLost, RequestVanished):
            return

    async def _find_request_by_token(self, token: str) -> dict[str, Any] | None:
        """Return the create request that carries this token, when the instance is not listed yet."""
        try:
            requests = await self.context.client.list_requests()
        except (ApiError, TransportError) as error:
            raise NodeFailed("?", f"cannot list requests to check for a lost create: {error}", "LOOKUP_FAILED") from None
        for request in requests:
            if (request.get("metadata") or {}).get(TOKEN_KEY) == token:
                return request
        return None

    async def _get_instance_or_none(self, instance_id: str) -> dict[str, Any] | None:
        try:
            instance = await self.context.client.get_instance(instance_id)
        except NotFound:
            return None
        if (instance.get("attributes") or {}).get("instanceStatus") in GONE_STATUSES:
            return None
        return instance

    async def _wait_stable(self, node: Node, instance: dict[str, Any], created_at: float) -> dict[str, Any]:
        """Refresh a transient instance until its status is stable; return the stable instance."""
        context = self.context
        instance_id = instance["instanceId"]
        stable_action = f"{node.type}.stable"
        retrieve_action = f"{node.type}.retrieve"
        expected_stable = context.poller.expectations.get(stable_action, node.resource_uri)
        expected_retrieve = context.poller.expectations.get(retrieve_action, node.resource_uri) or 0.0
        deadline = created_at + context.ready_deadlines[node.type]
        context.phase(node.address, ev.REFRESHING, instance_id=instance_id)

        # Boot or build times are counted on the server's clock, from the instance's `created`
        # stamp to the `updated` stamp of the refresh that saw it stable.
        started_stamp = _epoch_seconds(instance.get("created"))
        expectations = context.poller.expectations
        next_refresh = created_at
        if expected_stable is not None:
            # The boot started when the server created the instance, a little before this run saw it.
            server_started_at = context.local_time(started_stamp)
            started_at = created_at if server_started_at is None else min(created_at, server_started_at)
            next_refresh = started_at + max(0.0, expected_stable + ready_margin(expected_stable) - expected_retrieve)
        refreshes = 0
        # The server-side elapsed time of the latest refresh that still saw the instance transient.
        last_transient: float | None = None
        while True:
            now = context.clock.now()
            if now >= deadline:
                raise NodeFailed(
                    node.address,
                    f"instance {instance_id} still {instance['attributes'].get('instanceStatus')} after "
                    f"{now - created_at:.0f} s; raise the ready deadline or check the provider",
                    "READY_TIMEOUT",
                )
            await context.clock.sleep_until(min(next_refresh, deadline))
            sent_at = context.clock.now()
            with anyio.CancelScope(shield=True):
                request = await context.client.refresh_instance(instance_id)
            context.note_server_time(request)
            refreshes += 1
            refresh_created = str(request.get("created") or "")
            try:
                final, refreshed = await self._read_effect_first(
                    request,
                    instance_id,
                    action=retrieve_action,
                    resource_uri=node.resource_uri,
                    sent_at=sent_at,
                    deadline_at=sent_at + context.request_deadlines[node.type],
                    # Timestamps share one ISO 8601 format, so they compare as strings.
                    settled=lambda current: bool(refresh_created) and str(current.get("updated") or "") >= refresh_created,
                )
            except (RequestLost, RequestVanished):
                context.events.emit(
                    "request.lost",
                    node=node.address,
                    action=retrieve_action,
                    request_id=request["requestId"],
                    instance_id=instance_id,
                    message="refresh lost; refreshing again",
                )
                next_refresh = context.clock.now()
                continue
            if refreshed is not None:
                results = refreshed.get("attributes") or {}
            else:
                assert final is not None
                if final.get("requestStatus") == "failed":
                    code, message = _request_error(final)
                    raise NodeFailed(node.address, f"refresh of {instance_id} failed with {code}: {message}", code)
                results = final.get("results") or {}
            status = results.get("instanceStatus")
            if status in UNHEALTHY_STATUSES:
                raise NodeFailed(node.address, f"instance {instance_id} became {status}", "INSTANCE_FAILED")
            settled_stamp = _epoch_seconds((refreshed if refreshed is not None else final or {}).get("updated"))
            server_elapsed = settled_stamp - started_stamp if started_stamp and settled_stamp else None
            if status is not None and not results.get("transientStatus", status in ("creating", "deleting")):
                if server_elapsed is not None:
                    if refreshes == 1 and expected_stable is not None:
                        # A refresh that ended late (a busy loop, a slow call) shows no later end,
                        # so what is learnt never exceeds the time it was aimed at.
                        server_elapsed = min(server_elapsed, expected_stable + ready_margin(expected_stable))
                    expectations.observe_ready(stable_action, node.resource_uri, server_elapsed, last_transient)
                else:
                    elapsed = context.clock.now() - created_at
                    expectations.observe(stable_action, node.resource_uri, elapsed, first_try=refreshes == 1)
                if refreshed is not None:
                    return refreshed
                return await context.client.get_instance(instance_id)
            if server_elapsed is not None:
                last_transient = server_elapsed
                expectations.observe_transient(stable_action, node.resource_uri, server_elapsed)
            now = context.clock.now()
            if refreshes == 1 and expected_stable is not None:
                # The first refresh found the instance transient near its expected end, so the next follows closely.
                next_refresh = now + max(MIN_INTERVAL_SECONDS, NEAR_MISS_FRACTION * expected_stable)
            else:
                next_refresh = now + next_interval(now - created_at, context.poller._rng)

    async def _configure(self, node: Node, instance: dict[str, Any]) -> dict[str, Any]:
        """Apply what follows a create: security group rules, a volume's attachment."""
        context = self.context
        if node.type == "sg" and node.rules:
            rules = resolve_references(node.rules, context)
            present = (instance.get("attributes") or {}).get("rules") or []
            missing = [rule for rule in rules if rule not in present]
            if missing:
                context.phase(node.address, ev.CONFIGURING, instance_id=instance["instanceId"])
                await self._run_action(
                    node,
                    instance["instanceId"],
                    "add-access",
                    {"rules": missing},
                    goal=lambda current: all(
                        rule in ((current.get("attributes") or {}).get("rules") or []) for rule in missing
                    ),
                )
                instance = await context.client.get_instance(instance["instanceId"])
        if node.type == "vs" and node.attach_to:
            vm_id = resolve_references(node.attach_to, context)
            attributes = instance.get("attributes") or {}
            if attributes.get("instanceStatus") != "attached" or attributes.get("virtualMachineId") != vm_id:
                context.phase(node.address, ev.CONFIGURING, instance_id=instance["instanceId"])
                body = {"virtualMachineId": vm_id, "deviceName": node.device_name or "/dev/vdb"}
                await self._run_action(
                    node,
                    instance["instanceId"],
                    "attach",
                    body,
                    goal=lambda current: (current.get("attributes") or {}).get("virtualMachineId") == vm_id,
                )
                instance = await context.client.get_instance(instance["instanceId"])
        return instance

    async def _run_action(
        self,
        node: Node | _NodeRef,
        instance_id: str,
        action: str,
        body: dict[str, Any],
        goal: Callable[[dict[str, Any]], bool],
    ) -> None:
        """Send a PUT action, journaled, and follow its request until `goal(instance)` holds.

        An action whose response was lost is looked for among the account's
        requests before it is sent again, so that e.g. rules are not added twice.
        """
        context = self.context
        full_action = f"{node.type}.{action}"
        history: list[str] = []
        for attempt in range(1, context.max_attempts + 1):
            operation = context.state.begin_operation(
                context.run_id, context.workload, node.address, action, attempt, None
            )
            sent_at = context.clock.now()
            sent_wall = time.time()
            request: dict[str, Any] | None
            with anyio.CancelScope(shield=True):
                try:
                    request = await context.client.instance_action(instance_id, action, body)
                except (TransportError, ServerError) as error:
                    if isinstance(error, TransportError) and not error.maybe_acted:
                        context.state.update_operation(operation.id, status=OPERATION_FAILED, error=str(error))
                        raise NodeFailed(node.address, f"{action} on {instance_id} failed: {error}", "UNREACHABLE") from None
                    context.state.update_operation(operation.id, status=AMBIGUOUS, error=str(error))
                    request = await self._find_recent_request(instance_id, full_action, since=sent_wall)
                except ApiError as error:
                    context.state.update_operation(operation.id, status=OPERATION_FAILED, error=str(error))
                    raise NodeFailed(node.address, f"{action} on {instance_id} failed: {error}", error.code) from None
                if request is not None:
                    context.state.update_operation(operation.id, status=SENT, request_id=request["requestId"])
            if request is None:
                if await self._goal_reached(instance_id, goal):
                    context.state.update_operation(operation.id, status=COMPLETED)
                    return
                context.state.update_operation(operation.id, status=SUPERSEDED)
                history.append(f"attempt {attempt}: no response and no request found")
                continue

            context.events.emit(
                "request.sent",
                node=node.address,
                action=full_action,
                request_id=request["requestId"],
                instance_id=instance_id,
                attempt=attempt,
            )
            try:
                final = await context.poller.follow(
                    request,
                    action=full_action,
                    resource_uri=node.resource_uri,
                    sent_at=sent_at,
                    deadline_at=sent_at + context.request_deadlines.get(node.type, 60.0),
                )
            except (RequestLost, RequestVanished):
                context.state.update_operation(operation.id, status=LOST)
                context.events.emit(
                    "request.lost",
                    node=node.address,
                    action=full_action,
                    request_id=request["requestId"],
                    instance_id=instance_id,
                    attempt=attempt,
                )
                if await self._goal_reached(instance_id, goal):
                    context.state.update_operation(operation.id, status=COMPLETED)
                    return
                context.state.update_operation(operation.id, status=SUPERSEDED)
                history.append(f"attempt {attempt}: request {request['requestId']} lost")
                continue
            if final.get("requestStatus") == "failed":
                code, message = _request_error(final)
                # An earlier attempt whose response was lost may have done the work already.
                if await self._goal_reached(instance_id, goal):
                    context.state.update_operation(operation.id, status=COMPLETED, error=f"{code}: {message}")
                    return
                context.state.update_operation(operation.id, status=OPERATION_FAILED, error=f"{code}: {message}")
                raise NodeFailed(node.address, f"{action} on {instance_id} failed with {code}: {message}", code)
            context.state.update_operation(operation.id, status=COMPLETED)
            return
        raise NodeFailed(
            node.address,
            f"{action} on {instance_id} gave up after {context.max_attempts} attempts (" + "; ".join(history) + ")",
            "ATTEMPTS_EXHAUSTED",
        )

    async def _read_effect_first(
        self,
        request: dict[str, Any],
        instance_id: str | None,
        *,
        action: str,
        resource_uri: str,
        sent_at: float,
        deadline_at: float,
        settled: Callable[[dict[str, Any]], bool],
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Wait for a request's effect; return (finished request, None) or (None, instance).

        The instance is read once, when earlier runs showed the action ends (or
        after FIRST_POLL_SECONDS when nothing was learnt): if `settled(instance)` shows the request's effect, that
        one call replaces polling the request and reading the instance after it.
        Otherwise the request is followed as usual, so a failure still brings its
        error code. Raise RequestLost or RequestVanished as `Poller.follow` does.
        """
        context = self.context
        expected = context.poller.expectations.get(action, resource_uri)
        # A call sent in a burst reaches the server later than it left here. So the request's time
        # starts at the server's `created` stamp, converted to this run's clock.
        created_stamp = _epoch_seconds(request.get("created"))
        server_created_at = context.local_time(created_stamp)
        if server_created_at is not None:
            sent_at = max(sent_at, server_created_at)
        if instance_id:
            # With nothing learnt yet, the read goes out when the poller's first poll would.
            delay = expected_delay(expected) if expected is not None else FIRST_POLL_SECONDS
            await context.clock.sleep_until(min(sent_at + delay, deadline_at))
            instance = await self._get_instance_or_none(instance_id)
            if instance is not None and settled(instance):
                # The instance's `updated` is when the request settled, on the server's clock.
                stamped = _epoch_seconds(instance.get("updated")) - created_stamp
                if created_stamp and 0 <= stamped < context.clock.now() - sent_at + 1:
                    context.poller.expectations.observe(
                        action, resource_uri, stamped, first_try=False, server_stamped=True
                    )
                elif expected is not None:
                    context.poller.expectations.observe(
                        action, resource_uri, context.clock.now() - sent_at, first_try=True
                    )
                return None, instance
        final = await context.poller.follow(
            request, action=action, resource_uri=resource_uri, sent_at=sent_at, deadline_at=deadline_at
        )
        return final, None

    async def _find_recent_request(self, instance_id: str, action: str, *, since: float) -> dict[str, Any] | None:
        """Return the newest request for this instance and action created since `since` (epoch seconds)."""
        try:
            requests = await self.context.client.list_requests()
        except (ApiError, TransportError):
            return None
        # The server's clock may differ a little from this one.
        earliest = since - REQUEST_CLOCK_SKEW_SECONDS
        matches = [
            request
            for request in requests
            if request.get("instanceId") == instance_id
            and (request.get("parameters") or {}).get("action") == action
            and _epoch_seconds(request.get("created")) >= earliest
        ]
        return max(matches, key=lambda request: request.get("created") or "") if matches else None

    async def _goal_reached(self, instance_id: str, goal: Callable[[dict[str, Any]], bool]) -> bool:
        instance = await self._get_instance_or_none(instance_id)
        return instance is not None and goal(instance)

    # Delete

    async def delete(self, address: str, resource_type: str, resource_uri: str) -> None:
        """Delete every live instance the state owns for a node, superseded ones included."""
        context = self.context
        context.phase(address, ev.DELETING)
        record = context.state.get_resources(context.workload).get(address)
        if record is not None:
            record.status = DELETING
            context.state.put_resource(record)

        node = _NodeRef(address, resource_type, resource_uri)
        await self._adopt_unresolved_creates(node)
        for owned in context.state.owned_instances(context.workload, address):
            await self._delete_instance(node, owned.instance_id)

        if record is not None:
            record.status = DELETED
            record.instance_status = "deleted"
            context.state.put_resource(record)
        context.outputs.pop(address, None)
        context.phase(address, ev.DELETED)

    async def _adopt_unresolved_creates(self, node: _NodeRef) -> None:
        """Turn create intents with no known instance into owned instances, found by token."""
        context = self.context
        open_creates = [
            operation
            for operation in context.state.open_operations(context.workload, node.address)
            if operation.action == "create" and operation.instance_id is None and operation.token
        ]
        if not open_creates:
            return
        provider, region = node.resource_uri.split("/")[1:3]
        instances = await context.client.list_instances(
            resource_type=node.type, provider=provider, region=region
        )
        by_token = {(i.get("metadata") or {}).get(TOKEN_KEY): i for i in instances}
        for operation in open_creates:
            found = by_token.get(operation.token)
            if found is not None:
                context.state.add_owned_instance(
                    OwnedInstance(
                        workload=context.workload,
                        address=node.address,
                        instance_id=found["instanceId"],
                        resource_type=node.type,
                        role=SUPERSEDED_INSTANCE,
                        token=operation.token,
                    )
                )
            context.state.update_operation(operation.id, status=SUPERSEDED)

    async def _delete_instance(self, node: _NodeRef, instance_id: str) -> None:
        context = self.context
        instance = await self._get_instance_or_none(instance_id)
        if instance is None:
            context.state.mark_instance_deleted(context.workload, instance_id)
            return
        attributes = instance.get("attributes") or {}
        if node.type == "vs" and attributes.get("instanceStatus") == "attached":
            await self._run_action(
                node,
                instance_id,
                "detach",
                {},
                goal=lambda current: (current.get("attributes") or {}).get("instanceStatus") != "attached",
            )

        history: list[str] = []
        for attempt in range(1, context.max_attempts + 1):
            operation = context.state.begin_operation(
                context.run_id, context.workload, node.address, "delete", attempt, None
            )
            sent_at = context.clock.now()
            with anyio.CancelScope(shield=True):
                try:
                    request = await context.client.delete_instance(instance_id)
                except NotFound:
                    context.state.update_operation(operation.id, status=COMPLETED)
                    context.state.mark_instance_deleted(context.workload, instance_id)
                    return
                except ApiError as error:
                    context.state.update_operation(operation.id, status=OPERATION_FAILED, error=str(error))
                    raise NodeFailed(node.address, f"delete of {instance_id} failed: {error}", error.code) from None
                except TransportError as error:
                    context.state.update_operation(operation.id, status=OPERATION_FAILED, error=str(error))
                    raise NodeFailed(node.address, f"delete of {instance_id} got no response: {error}", "NO_RESPONSE") from None
                context.state.update_operation(operation.id, status=SENT, request_id=request["requestId"])
            action = f"{node.type}.delete"
            context.events.emit(
                "request.sent", node=node.address, action=action, request_id=request["requestId"], instance_id=instance_id
            )
            try:
                final = await context.poller.follow(
                    request,
                    action=action,
                    resource_uri=node.resource_uri,
                    sent_at=sent_at,
                    deadline_at=sent_at + context.request_deadlines.get(node.type, 60.0),
                )
            except (RequestLost, RequestVanished):
                context.state.update_operation(operation.id, status=SUPERSEDED)
                context.events.emit(
                    "request.lost",
                    node=node.address,
                    action=action,
                    request_id=request["requestId"],
                    instance_id=instance_id,
                    attempt=attempt,
                )
                history.append(f"attempt {attempt}: request {request['requestId']} lost")
                if await self._get_instance_or_none(instance_id) is None:
                    context.state.mark_instance_deleted(context.workload, instance_id)
                    return
                continue
            if final.get("requestStatus") == "failed":
                code, message = _request_error(final)
                context.state.update_operation(operation.id, status=OPERATION_FAILED, error=f"{code}: {message}")
                raise NodeFailed(node.address, f"delete of {instance_id} failed with {code}: {message}", code)
            context.state.update_operation(operation.id, status=COMPLETED)
            status = (final.get("results") or {}).get("instanceStatus")
            if status != "deleted":
                await self._wait_deleted(node, instance_id)
            context.state.mark_instance_deleted(context.workload, instance_id)
            return
        raise NodeFailed(
            node.address,
            f"delete of {instance_id} gave up after {context.max_attempts} attempts (" + "; ".join(history) + ")",
            "ATTEMPTS_EXHAUSTED",
        )

    async def _wait_deleted(self, node: _NodeRef, instance_id: str) -> None:
        context = self.context
        started = context.clock.now()
        deadline = started + context.ready_deadlines.get(node.type, 600.0)
        while context.clock.now() < deadline:
            sent_at = context.clock.now()
            try:
                request = await context.client.refresh_instance(instance_id)
            except NotFound:
                return
            try:
                final = await context.poller.follow(
                    request,
                    action=f"{node.type}.retrieve",
                    resource_uri=node.resource_uri,
                    sent_at=sent_at,
                    deadline_at=sent_at + context.request_deadlines.get(node.type, 60.0),
                )
            except (RequestLost, RequestVanished):
                continue
            if (final.get("results") or {}).get("instanceStatus") == "deleted":
                return
            now = context.clock.now()
            await context.clock.sleep_until(now + next_interval(now - started, context.poller._rng))
        raise NodeFailed(node.address, f"instance {instance_id} was still deleting at the deadline", "DELETE_TIMEOUT")

    # Sweep

    async def sweep(self, keep: set[str]) -> int:
        """Delete every instance this state's creates made that is not in `keep`; return how many.

        Create requests still in progress are followed first (up to their
        deadline), so an instance that a superseded attempt makes late is
        found too. Instances are recognised by the owner id in their metadata.
        """
        context = self.context
        pending = [
            request
            for request in await context.client.list_requests()
            if (request.get("metadata") or {}).get(OWNER_KEY) == context.owner_id
            and request.get("requestStatus") == "in-progress"
            and request.get("instanceId") not in keep
        ]
        async with anyio.create_task_group() as task_group:
            for request in pending:
                task_group.start_soon(self._follow_until_deadline, request)

        deleted = 0
        orphans = [
            instance
            for instance in await context.client.list_instances()
            if (instance.get("metadata") or {}).get(OWNER_KEY) == context.owner_id
            and instance["instanceId"] not in keep
            and (instance.get("attributes") or {}).get("instanceStatus") not in GONE_STATUSES
        ]
        # Dependents first: an image or volume before its VM, a VM before its key pair or group.
        orphans.sort(key=lambda instance: DELETE_ORDER.get(instance.get("resourceType", ""), 0))
        for instance in orphans:
            metadata = instance.get("metadata") or {}
            instance_id = instance["instanceId"]
            address = str(metadata.get(NODE_KEY, "?"))
            context.state.add_owned_instance(
                OwnedInstance(
                    workload=context.workload,
                    address=address,
                    instance_id=instance_id,
                    resource_type=instance.get("resourceType", "vm"),
                    role=SUPERSEDED_INSTANCE,
                    token=metadata.get(TOKEN_KEY),
                )
            )
            node = _NodeRef(address, instance.get("resourceType", "vm"), instance.get("resourceUri") or "")
            try:
                await self._delete_instance(node, instance_id)
            except NodeFailed as error:
                log.warning("instance.orphan_delete_failed", workload=context.workload, node=address,
                            instance_id=instance_id, error=str(error))
                continue
            deleted += 1
            context.events.emit(
                "instance.orphan_deleted",
                node=address,
                instance_id=instance_id,
                message="an instance of a superseded attempt; deleted it",
            )
            log.warning("instance.orphan_deleted", workload=context.workload, node=address, instance_id=instance_id)
        return deleted


@dataclass
class _NodeRef:
    """The part of a node that deletes need; built from the state when there is no spec."""

    address: str
    type: str
    resource_uri: str


def _epoch_seconds(timestamp: Any) -> float:
    """Parse the API's ISO 8601 timestamp (e.g. 2014-01-09T22:51:39.039Z); 0 when missing or invalid."""
    if not isinstance(timestamp, str):
        return 0.0
    try:
        return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _create_action(node: Node | _NodeRef) -> str:
    return "vm.create.image" if node.type == "image" else f"{node.type}.create"


def _explain_rejection(error: ApiError) -> str:
    if isinstance(error, AuthenticationFailed):
        return f"{error}; check CWS_API_KEY and CWS_API_SECRET"
    if isinstance(error, Forbidden):
        if "payment" in error.api_message:
            return str(error)
        return f"{error}; the account needs payment information before it can create instances"
    if isinstance(error, BadRequest):
        return f"{error}; fix the value in the workload file"
    if isinstance(error, Throttled):
        return f"{error}; the API kept throttling, so lower --max-rps and run apply again"
    return str(error)
