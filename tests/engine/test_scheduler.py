"""The scheduler starts each node as soon as its own predecessors are done.

Nodes here wait on events the test sets, and the test checks progress after
every task is blocked, so no test depends on timing.
"""

import anyio
import networkx as nx
import pytest
from anyio import wait_all_tasks_blocked

from orchestrator.operations import NodeFailed
from orchestrator.scheduler import DONE, FAILED, SKIPPED, run_graph

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Gate:
    """Lets a test decide when each node finishes, and records the order of starts."""

    def __init__(self, graph: nx.DiGraph, failing: tuple[str, ...] = ()) -> None:
        self.release = {address: anyio.Event() for address in graph.nodes}
        self.started: list[str] = []
        self.failing = failing

    async def execute(self, address: str) -> None:
        self.started.append(address)
        await self.release[address].wait()
        if address in self.failing:
            raise NodeFailed(address, "failed on purpose", "TEST")


async def test_dependent_starts_before_unrelated_branch_finishes():
    # a → b, and c → d: b must start when a ends, while c is still running.
    graph = nx.DiGraph([("a", "b"), ("c", "d")])
    gate = Gate(graph)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(lambda: run_graph(graph, gate.execute))
        await wait_all_tasks_blocked()
        assert sorted(gate.started) == ["a", "c"]

        gate.release["a"].set()
        await wait_all_tasks_blocked()
        assert "b" in gate.started
        assert "d" not in gate.started

        for address in ("b", "c", "d"):
            gate.release[address].set()


async def test_node_waits_for_its_last_predecessor():
    graph = nx.DiGraph([("a", "c"), ("b", "c")])
    gate = Gate(graph)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(lambda: run_graph(graph, gate.execute))
        await wait_all_tasks_blocked()
        gate.release["a"].set()
        await wait_all_tasks_blocked()
        assert "c" not in gate.started
        gate.release["b"].set()
        await wait_all_tasks_blocked()
        assert gate.started[-1] == "c"
        gate.release["c"].set()


async def test_parallelism_bounds_nodes_in_flight():
    graph = nx.DiGraph()
    graph.add_nodes_from(["a", "b", "c"])
    gate = Gate(graph)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(lambda: run_graph(graph, gate.execute, parallelism=2))
        await wait_all_tasks_blocked()
        assert len(gate.started) == 2
        gate.release[gate.started[0]].set()
        await wait_all_tasks_blocked()
        assert len(gate.started) == 3
        for event in gate.release.values():
            event.set()


async def test_failure_stops_new_starts_and_skips_dependents():
    # a fails while c runs; c finishes; b (after a) and d (after c) never start.
    graph = nx.DiGraph([("a", "b"), ("c", "d")])
    gate = Gate(graph, failing=("a",))
    results = {}

    async def run() -> None:
        results["run"] = await run_graph(graph, gate.execute)

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(run)
        await wait_all_tasks_blocked()
        gate.release["a"].set()
        await wait_all_tasks_blocked()
        gate.release["c"].set()
    run_result = results["run"]
    assert run_result.results["a"].status == FAILED
    assert run_result.results["c"].status == DONE
    assert run_result.results["b"].status == SKIPPED
    assert run_result.results["d"].status == SKIPPED
    assert sorted(gate.started) == ["a", "c"]


async def test_continue_on_error_keeps_independent_branch():
    graph = nx.DiGraph([("a", "b"), ("c", "d")])
    gate = Gate(graph, failing=("a",))
    for event in gate.release.values():
        event.set()
    run_result = await run_graph(graph, gate.execute, continue_on_error=True)
    assert run_result.results["b"].status == SKIPPED
    assert run_result.results["d"].status == DONE
    assert "skipped because a did not finish" == run_result.results["b"].error


async def test_stop_event_starts_nothing_new():
    graph = nx.DiGraph([("a", "b")])
    gate = Gate(graph)
    stop = anyio.Event()
    results = {}

    async def run() -> None:
        results["run"] = await run_graph(graph, gate.execute, stop=stop)

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(run)
        await wait_all_tasks_blocked()
        stop.set()
        gate.release["a"].set()
    assert results["run"].results["a"].status == DONE
    assert results["run"].results["b"].status == SKIPPED
    assert gate.started == ["a"]
