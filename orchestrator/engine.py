"""The engine: plan, apply and destroy a workload against the instance API, with its state.

    spec file ─► spec.load_spec ─► graph.build_graph ─► plan.make_plan ─► scheduler.run_graph
                                                                              │ per node
                                                                              ▼
                           state (journal, owned instances) ◄── operations.NodeOperator ──► client
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import networkx as nx
import structlog

from orchestrator import events as ev
from orchestrator.catalog_check import check_catalog, check_catalog_for_plan
from orchestrator.client import CwsClient
from orchestrator.clock import Clock, MonotonicClock
from orchestrator.config import Settings
from orchestrator.errors import (
    ApiError,
    AuthenticationFailed,
    ConfigError,
    CwsError,
    NotFound,
    TransportError,
    WorkloadNotFound,
)
from orchestrator.events import EventBus, Subscriber
from orchestrator.graph import Node, build_graph, graph_from_records, graph_to_records
from orchestrator.metrics import RunMetrics, critical_path
from orchestrator.operations import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READY_DEADLINES,
    DEFAULT_REQUEST_DEADLINES,
    NodeOperator,
    RunContext,
    resolve_with,
)
from orchestrator.plan import CREATE, DELETE, NOOP, REPLACE, Plan, make_plan
from orchestrator.poller import Expectations, Poller
from orchestrator.references import iter_references, walk_strings
from orchestrator.scheduler import DEFAULT_PARALLELISM, DONE, FAILED, GraphRun, run_graph
from orchestrator.spec import SECRET_ATTRIBUTES, WorkloadSpec, is_secret_reference, load_spec
from orchestrator.state.base import (
    AMBIGUOUS,
    CREATED,
    CURRENT,
    DELETED,
    LOST,
    PENDING,
    SUPERSEDED,
    ResourceRecord,
    StateStore,
)
from orchestrator.state.sqlite import SqliteStateStore

log = structlog.get_logger("orchestrator.engine")

SUCCEEDED = "succeeded"
RUN_FAILED = "failed"
INTERRUPTED = "interrupted"


@dataclass
class RunOptions:
    """Execution settings of one run: concurrency, call rate and failure policy."""

    parallelism: int = DEFAULT_PARALLELISM
    max_rps: float | None = None
    continue_on_error: bool = False
    rollback: bool = False
    refresh: bool = False
    request_timeout: float = 30.0


@dataclass
class RunSummary:
    run_id: str
    workload: str
    command: str
    result: str
    counts: dict[str, int]
    plan: dict[str, Any] | None
    outputs: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    orphans_deleted: int = 0
    # Per node, the (state, seconds since the run started) pairs in the order they happened.
    timeline: dict[str, list[tuple[str, float]]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.result == SUCCEEDED

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workload": self.workload,
            "command": self.command,
            "result": self.result,
            "counts": self.counts,
            "outputs": self.outputs,
            "failures": self.failures,
            "orphans_deleted": self.orphans_deleted,
            **self.metrics,
        }


class Engine:
    """Plans, applies and destroys workloads with one set of settings.

    `transport` replaces the network for the client (the embedded emulator
    when the settings name no endpoint); `subscribers` receive every event.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Any = None,
        clock: Clock | None = None,
        subscribers: list[Subscriber] | None = None,
        state: StateStore | None = None,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self.clock = clock or MonotonicClock()
        self.subscribers = list(subscribers or [])
        self._state = state

    # Shared plumbing

    @property
    def state(self) -> StateStore:
        if self._state is None:
            self._state = SqliteStateStore(self.settings.state_path)
        return self._state

    @property
    def endpoint_identity(self) -> str:
        """Return the endpoint URL, or the embedded emulator's store, that this engine talks to."""
        if self.settings.endpoint is not None:
            return self.settings.endpoint
        return f"embedded emulator ({self.settings.emulator_db.resolve()})"

    def check_endpoint(self, workload: str) -> None:
        """Raise ConfigError when the state recorded this workload against another endpoint.

        The instance ids in the state mean nothing to another endpoint, so a
        destroy there would report success and leave the real instances behind.
        """
        record = self.state.get_workload(workload)
        if record is None:
            return
        recorded = (record.graph.get("settings") or {}).get("endpoint")
        if recorded and recorded != self.endpoint_identity:
            raise ConfigError(
                f"workload '{workload}' in the state {self.settings.state_path} was applied against {recorded}, "
                f"but this command talks to {self.endpoint_identity}; point --endpoint (or CWS_ENDPOINT) at "
                "the first, or use another --state for the second"
            )

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None

    @asynccontextmanager
    async def client(self, options: RunOptions | None = None) -> AsyncIterator[CwsClient]:
        options = options or RunOptions()
        transport = self._transport
        endpoint = self.settings.endpoint
        if endpoint is None:
            from orchestrator.embedded import EMBEDDED_ENDPOINT, EmbeddedTransport

            endpoint = EMBEDDED_ENDPOINT
            if transport is None:
                transport = EmbeddedTransport(self.settings.emulator_db, self.settings.emulator_profile)
        client = CwsClient(
            endpoint,
            self.settings.api_key,
            self.settings.api_secret,
            transport=transport,
            timeout=options.request_timeout,
            max_rps=options.max_rps,
        )
        try:
            yield client
        finally:
            await client.aclose()

    def _context(
        self,
        workload: str,
        client: CwsClient,
        spec: WorkloadSpec | None,
        command: str,
        saved_settings: dict[str, Any] | None = None,
    ) -> tuple[RunContext, RunMetrics]:
        run_id = uuid.uuid4().hex[:12]
        bus = EventBus(run_id, workload)
        metrics = RunMetrics(started_at=self.clock.now())

        def record_phase(event: dict[str, Any]) -> None:
            if event["type"] == "node.state":
                metrics.mark_phase(event["node"], event["state"], self.clock.now())

        bus.subscribe(record_phase)
        for subscriber in self.subscribers:
            bus.subscribe(subscriber)

        def on_retry(endpoint: str, error: Exception, attempt: int) -> None:
            bus.emit("retry", action=endpoint, attempt=attempt, message=str(error))

        client._on_retry = on_retry
        state = self.state
        # What the run learns is stored once it ends, in one transaction.
        expectations = Expectations(dict(state.expected_durations()))
        request_deadlines = dict(DEFAULT_REQUEST_DEADLINES)
        max_attempts = DEFAULT_MAX_ATTEMPTS
        if spec is not None:
            request_deadlines.update(spec.deadlines)
            max_attempts = spec.max_attempts or DEFAULT_MAX_ATTEMPTS
        elif saved_settings:
            request_deadlines.update(saved_settings.get("deadlines") or {})
            max_attempts = saved_settings.get("max_attempts") or DEFAULT_MAX_ATTEMPTS
        context = RunContext(
            run_id=run_id,
            workload=workload,
            client=client,
            state=state,
            poller=Poller(client, self.clock, expectations),
            events=bus,
            clock=self.clock,
            request_deadlines=request_deadlines,
            ready_deadlines=dict(DEFAULT_READY_DEADLINES),
            max_attempts=max_attempts,
            owner_id=state.owner_id(workload),
        )
        return context, metrics

    # Plan

    async def plan(self, spec_path: str | Path, *, refresh: bool = False) -> Plan:
        spec = load_spec(spec_path)
        graph = build_graph(spec)
        await check_catalog_for_plan(self.client, spec)
        records = self.state.get_resources(spec.name)
        workload = self.state.get_workload(spec.name)
        old_graph = graph_from_records(workload.graph) if workload else None
        gone: set[str] = set()
        if refresh:
            async with self.client() as client:
                gone = await _missing_instances(client, records)
        return make_plan(spec.name, graph, records, old_graph, gone=gone)

    # Apply

    async def apply(
        self, spec_path: str | Path, options: RunOptions | None = None, *, stop: anyio.Event | None = None
    ) -> RunSummary:
        """Bring the workload in the file into being; return the run's summary."""
        options = options or RunOptions()
        spec = load_spec(spec_path)
        graph = build_graph(spec)
        state = self.state
        self.check_endpoint(spec.name)
        lock = state.acquire_lock(spec.name, "apply")
        try:
            async with self.client(options) as client:
                await _check_connection(client)
                await check_catalog(spec, client)
                return await self._apply_locked(spec, graph, client, options, stop)
        finally:
            state.release_lock(spec.name, lock.lock_id)

    async def _apply_locked(
        self,
        spec: WorkloadSpec,
        graph: nx.DiGraph,
        client: CwsClient,
        options: RunOptions,
        stop: anyio.Event | None,
    ) -> RunSummary:
        state = self.state
        context, metrics = self._context(spec.name, client, spec, "apply")
        operator = NodeOperator(context)
        records = state.get_resources(spec.name)
        recovering = bool(state.open_operations(spec.name))
        workload = state.get_workload(spec.name)
        old_graph = graph_from_records(workload.graph) if workload else nx.DiGraph()
        gone = await _missing_instances(client, records) if options.refresh else set()
        plan = make_plan(spec.name, graph, records, old_graph, gone=gone)
        context.events.emit("run.started", command="apply", counts=plan.counts(), message=plan.summary_line())

        # Until the run ends, the state keeps old and new nodes, so destroy can always find both.
        state.save_workload(
            spec.name, spec.path, _with_settings(graph_to_records(nx.compose(old_graph, graph)), spec, self.endpoint_identity), spec.outputs
        )
        for address in graph.nodes:
            node: Node = graph.nodes[address]["node"]
            context.groups.setdefault(node.resource, []).append(address)
            if plan.changes[address].action == NOOP:
                context.outputs[address] = records[address].instance

        run = GraphRun()
        async def run_phases() -> None:
            delete_run = await self._run_deletes(plan, operator, options, stop)
            run.results.update(delete_run.results)
            if delete_run.ok:
                await self._run_creates(spec, graph, plan, operator, records, options, stop, run)

        interrupted = await _run_until_stopped(run_phases, stop)

        orphans = 0
        if not interrupted and (recovering or _run_had_doubt(state, spec.name, context.run_id)):
            keep = {
                owned.instance_id
                for owned in state.owned_instances(spec.name)
                if owned.role == CURRENT
            }
            with anyio.CancelScope(shield=True):
                orphans = await self._sweep(operator, keep)

        failed = [result for result in run.results.values() if result.status == FAILED]
        if failed and options.rollback and not interrupted:
            await self._rollback(plan, graph, operator, options)

        if not failed and not interrupted and all(r.status == DONE for r in run.results.values()):
            state.save_workload(spec.name, spec.path, _with_settings(graph_to_records(graph), spec, self.endpoint_identity), spec.outputs)
            for change in plan.of(DELETE):
                state.delete_resource(spec.name, change.address)

        if interrupted:
            result = INTERRUPTED
        elif failed or not run.ok:
            result = RUN_FAILED
        else:
            result = SUCCEEDED
        metrics.finished_at = self.clock.now()
        metrics.api_calls.update(client.calls)
        metrics.retries.update(client.retries)
        return self._finish(context, "apply", result, run, graph, plan, metrics, orphans)

    async def _run_deletes(
        self, plan: Plan, operator: NodeOperator, options: RunOptions, stop: anyio.Event | None
    ) -> GraphRun:
        delete_graph = plan.delete_graph.reverse(copy=True)

        async def delete_node(address: str) -> None:
            node: Node = delete_graph.nodes[address]["node"]
            await operator.delete(address, node.type, node.resource_uri)

        return await self._run_nodes(delete_graph, delete_node, operator.context, options, stop)

    async def _run_creates(
        self,
        spec: WorkloadSpec,
        graph: nx.DiGraph,
        plan: Plan,
        operator: NodeOperator,
        records: dict[str, ResourceRecord],
        options: RunOptions,
        stop: anyio.Event | None,
        run: GraphRun,
    ) -> None:
        context = operator.context

        async def create_node(address: str) -> None:
            node: Node = graph.nodes[address]["node"]
            change = plan.changes[address]
            if change.action == NOOP:
                context.phase(address, ev.UNCHANGED, instance_id=records[address].instance_id)
                return
            record = records.get(address)
            if record is None or change.action == REPLACE:
                record = ResourceRecord(
                    workload=spec.name,
                    address=address,
                    type=node.type,
                    resource_uri=node.resource_uri,
                    fingerprint=node.fingerprint(),
                )
            record.fingerprint = node.fingerprint()
            record.resource_uri = node.resource_uri
            try:
                await operator.create(node, record)
            except CwsError as error:
                record.status = "failed"
                record.error = str(error)
                context.state.put_resource(record)
                context.phase(address, ev.FAILED, message=getattr(error, "reason", str(error)))
                raise

        for address in graph.nodes:
            context.phase(address, ev.WAITING)
        await self._run_nodes(graph, create_node, context, options, stop, run)

    async def _run_nodes(
        self,
        graph: nx.DiGraph,
        execute: Callable[[str], Awaitable[None]],
        context: RunContext,
        options: RunOptions,
        stop: anyio.Event | None,
        run: GraphRun | None = None,
    ) -> GraphRun:
        """Run the graph with the run's options, reporting skipped nodes as events."""
        return await run_graph(
            graph,
            execute,
            parallelism=options.parallelism,
            continue_on_error=options.continue_on_error,
            now=self.clock.now,
            stop=stop,
            run=run,
            on_skip=lambda address, reason: context.phase(address, ev.SKIPPED, message=reason),
        )

    async def _sweep(self, operator: NodeOperator, keep: set[str]) -> int:
        try:
            return await operator.sweep(keep)
        except CwsError as error:
            log.warning("sweep.failed", workload=operator.context.workload, error=str(error))
            return 0

    async def _rollback(self, plan: Plan, graph: nx.DiGraph, operator: NodeOperator, options: RunOptions) -> None:
        """Delete what this run created, in reverse dependency order."""
        created_here = {
            change.address for change in plan.changes.values() if change.action in (CREATE, REPLACE)
        }
        rollback_graph = graph.subgraph(created_here).copy().reverse(copy=True)

        async def delete_node(address: str) -> None:
            node: Node = graph.nodes[address]["node"]
            await operator.delete(address, node.type, node.resource_uri)

        with anyio.CancelScope(shield=True):
            await run_graph(rollback_graph, delete_node, parallelism=options.parallelism, continue_on_error=True)

    # Destroy

    async def destroy(
        self, workload: str | None = None, options: RunOptions | None = None, *, stop: anyio.Event | None = None
    ) -> RunSummary:
        """Delete every instance the state owns for the workload, dependents first."""
        options = options or RunOptions()
        state = self.state
        name = self.resolve_workload(workload)
        self.check_endpoint(name)
        record = state.get_workload(name)
        assert record is not None
        graph = graph_from_records(record.graph)
        lock = state.acquire_lock(name, "destroy")
        try:
            async with self.client(options) as client:
                await _check_connection(client)
                return await self._destroy_locked(name, graph, client, options, stop, record.graph.get("settings"))
        finally:
            state.release_lock(name, lock.lock_id)

    async def _destroy_locked(
        self,
        name: str,
        graph: nx.DiGraph,
        client: CwsClient,
        options: RunOptions,
        stop: anyio.Event | None,
        saved_settings: dict[str, Any] | None,
    ) -> RunSummary:
        state = self.state
        context, metrics = self._context(name, client, None, "destroy", saved_settings)
        operator = NodeOperator(context)
        records = state.get_resources(name)
        for address, record in records.items():
            if address not in graph:
                graph.add_node(
                    address,
                    node=Node(
                        address=address,
                        resource=address.split("[", 1)[0],
                        index=None,
                        type=record.type,
                        provider=record.resource_uri.split("/")[1],
                        region=record.resource_uri.split("/")[2],
                        resource_id=record.resource_uri.split("/")[3],
                        parameters={},
                    ),
                )
        owned_addresses = {owned.address for owned in state.owned_instances(name)}
        owned_addresses |= {operation.address for operation in state.open_operations(name)}
        context.events.emit("run.started", command="destroy", counts={"delete": len(graph)})
        reverse = graph.reverse(copy=True)

        async def delete_node(address: str) -> None:
            node: Node = reverse.nodes[address]["node"]
            if address not in owned_addresses and address not in records:
                context.phase(address, ev.DELETED, message="nothing was created")
                return
            try:
                await operator.delete(address, node.type, node.resource_uri)
            except CwsError as error:
                context.phase(address, ev.FAILED, message=getattr(error, "reason", str(error)))
                raise

        run = GraphRun()

        async def run_deletes() -> None:
            await self._run_nodes(reverse, delete_node, context, options, stop, run)

        interrupted = await _run_until_stopped(run_deletes, stop)

        orphans = 0
        if not interrupted:
            orphans = await self._sweep(operator, keep=set())
        leftover = state.owned_instances(name)
        if interrupted:
            result = INTERRUPTED
        elif run.ok and not leftover:
            result = SUCCEEDED
        else:
            result = RUN_FAILED
        if result == SUCCEEDED:
            state.forget_workload(name)
        metrics.finished_at = self.clock.now()
        metrics.api_calls.update(client.calls)
        metrics.retries.update(client.retries)
        return self._finish(context, "destroy", result, run, graph, None, metrics, orphans)

    # Summaries and read-only views

    def _finish(
        self,
        context: RunContext,
        command: str,
        result: str,
        run: GraphRun,
        graph: nx.DiGraph,
        plan: Plan | None,
        metrics: RunMetrics,
        orphans: int,
    ) -> RunSummary:
        counts: dict[str, int] = {}
        for node_result in run.results.values():
            counts[node_result.status] = counts.get(node_result.status, 0) + 1
        if plan is not None:
            counts["unchanged"] = len(plan.of(NOOP))
            counts["created"] = sum(
                1 for change in plan.changes.values()
                if change.action in (CREATE, REPLACE) and run.results.get(change.address) is not None
                and run.results[change.address].status == DONE
            )
        failures = [
            {"node": r.address, "code": r.code, "message": r.error}
            for r in run.results.values()
            if r.status == FAILED
        ]
        outputs = self.outputs(context.workload, show_secrets=False) if command == "apply" else {}
        summary = RunSummary(
            run_id=context.run_id,
            workload=context.workload,
            command=command,
            result=result,
            counts=counts,
            plan=plan.to_json() if plan else None,
            outputs=outputs,
            failures=failures,
            metrics=metrics.to_json(critical_path(graph, run)),
            orphans_deleted=orphans,
            timeline={
                address: [(phase, round(at - metrics.started_at, 4)) for phase, at in timeline.phases]
                for address, timeline in metrics.timelines.items()
            },
        )
        self.state.record_durations(context.poller.expectations.observed)
        finished_wall = time.time()
        self.state.record_run(
            context.run_id,
            context.workload,
            command,
            finished_wall - metrics.wall_seconds,
            finished_wall,
            result,
            summary.to_json(),
        )
        context.events.emit(
            "run.summary",
            command=command,
            result=result,
            counts=counts,
            wall_seconds=summary.metrics["wall_seconds"],
            critical_path_seconds=summary.metrics["critical_path_seconds"],
            api_calls=summary.metrics["api_calls"],
            api_calls_total=summary.metrics["api_calls_total"],
            outputs=outputs,
            failures=failures,
        )
        return summary

    def resolve_workload(self, workload: str | None) -> str:
        """Return the named workload, or the only one in the state; raise WorkloadNotFound otherwise."""
        names = self.state.list_workloads()
        if workload is not None:
            if workload not in names:
                known = ", ".join(names) or "none"
                fix = "name one of those" if names else "run 'cws-workload apply FILE' first"
                raise WorkloadNotFound(
                    f"workload '{workload}' is not in the state {self.settings.state_path} (workloads: {known}); "
                    f"{fix}, or point --state at another state file"
                )
            return workload
        if not names:
            raise WorkloadNotFound(
                f"the state {self.settings.state_path} contains no workload; run 'cws-workload apply FILE' first"
            )
        if len(names) > 1:
            raise WorkloadNotFound(
                f"the state contains several workloads ({', '.join(names)}); name the one you mean"
            )
        return names[0]

    def status(self, workload: str | None = None) -> dict[str, Any]:
        name = self.resolve_workload(workload)
        record = self.state.get_workload(name)
        assert record is not None
        graph = graph_from_records(record.graph)
        resources = self.state.get_resources(name)
        rows = []
        for address in nx.topological_sort(graph):
            node: Node = graph.nodes[address]["node"]
            resource = resources.get(address)
            rows.append(
                {
                    "address": address,
                    "type": node.type,
                    "resource_uri": (resource.instance.get("resourceUri") if resource else None)
                    or (resource.resource_uri if resource else node.resource_uri),
                    "status": resource.status if resource else PENDING,
                    "instance_id": resource.instance_id if resource else None,
                    "instance_status": resource.instance_status if resource else None,
                    "error": resource.error if resource else None,
                }
            )
        lock = self.state.get_lock(name)
        return {
            "workload": name,
            "spec": record.spec_path,
            "resources": rows,
            "lock": lock.describe() if lock else None,
            "last_run": _without_outputs(self.state.last_run(name)),
        }

    def outputs(self, workload: str | None = None, *, show_secrets: bool = False) -> dict[str, Any]:
        """Resolve the workload's outputs from the state; secret ones are masked unless asked."""
        name = self.resolve_workload(workload)
        record = self.state.get_workload(name)
        assert record is not None
        resources = self.state.get_resources(name)
        graph = graph_from_records(record.graph)
        context_outputs = {
            address: resource.instance
            for address, resource in resources.items()
            if resource.status == CREATED and resource.instance
        }
        groups: dict[str, list[str]] = {}
        for address in graph.nodes:
            groups.setdefault(graph.nodes[address]["node"].resource, []).append(address)
        values: dict[str, Any] = {}
        for output_name, template in record.outputs.items():
            if _is_secret_template(template) and not show_secrets:
                values[output_name] = "<sensitive>"
                continue
            values[output_name] = _resolve_offline(template, context_outputs, groups)
        return values

    def instance_attributes(self, workload: str | None, address: str) -> dict[str, Any]:
        name = self.resolve_workload(workload)
        resource = self.state.get_resources(name).get(address)
        if resource is None:
            known = ", ".join(sorted(self.state.get_resources(name))) or "none"
            raise WorkloadNotFound(f"no resource '{address}' in workload '{name}' (resources: {known})")
        return resource.instance


def _run_had_doubt(state: StateStore, workload: str, run_id: str) -> bool:
    """Return whether an instance may exist that the state does not keep as current.

    That is so when this run superseded an attempt, met an ambiguous or lost
    request, or when a superseded instance is still live; only then does apply
    need the sweep, which lists every request and instance of the account.
    """
    doubtful = (SUPERSEDED, AMBIGUOUS, LOST)
    if any(op.run_id == run_id and op.status in doubtful for op in state.operations(workload)):
        return True
    return any(owned.role != CURRENT for owned in state.owned_instances(workload))


def _with_settings(records: dict[str, Any], spec: WorkloadSpec, endpoint: str) -> dict[str, Any]:
    """Add the spec's run settings and the endpoint to the graph records, for runs without the spec."""
    records["settings"] = {"deadlines": spec.deadlines, "max_attempts": spec.max_attempts, "endpoint": endpoint}
    return records


async def _check_connection(client: CwsClient) -> None:
    try:
        await client.check_connection()
    except AuthenticationFailed as error:
        raise ConfigError(
            f"{client.endpoint} rejected the credentials of API key {client.api_key!r} "
            f"({error.status} {error.code}: {error.api_message}); "
            "check CWS_API_KEY and CWS_API_SECRET, --api-key, or the config profile"
        ) from None


async def _cancel_on(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    await stop.wait()
    scope.cancel()


async def _run_until_stopped(phases: Callable[[], Awaitable[None]], stop: anyio.Event | None) -> bool:
    """Run the phases, cancelling them once `stop` is set; return whether the run was interrupted.

    Calls that record ids are shielded inside the operations, so a cancel
    here never loses an id the API returned.
    """
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as watcher:
            if stop is not None:
                watcher.start_soon(_cancel_on, stop, scope)
            try:
                await phases()
            finally:
                watcher.cancel_scope.cancel()
    return scope.cancelled_caught or (stop is not None and stop.is_set())


async def _missing_instances(client: CwsClient, records: dict[str, ResourceRecord]) -> set[str]:
    """Return the addresses whose recorded instance is gone from the API."""
    gone: set[str] = set()
    for address, record in records.items():
        if record.status != CREATED or not record.instance_id:
            continue
        try:
            instance = await client.get_instance(record.instance_id)
        except NotFound:
            gone.add(address)
            continue
        except (ApiError, TransportError):
            raise
        if (instance.get("attributes") or {}).get("instanceStatus") in ("deleted", "deleting", "failed"):
            gone.add(address)
    return gone


def _is_secret_template(template: Any) -> bool:
    for _, text in walk_strings(template):
        try:
            if any(is_secret_reference(reference) for reference in iter_references(text)):
                return True
        except ValueError:
            continue
    return False


def _resolve_offline(template: Any, outputs: dict[str, dict[str, Any]], groups: dict[str, list[str]]) -> Any:
    """Resolve an output template from the state; an output whose resource has no instance is None."""
    try:
        return resolve_with(template, outputs, groups)
    except CwsError:
        return None


def _without_outputs(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    summary = dict(run.get("summary") or {})
    summary.pop("outputs", None)
    return {**run, "summary": summary}


__all__ = ["Engine", "RunOptions", "RunSummary", "SECRET_ATTRIBUTES", "DELETED"]
