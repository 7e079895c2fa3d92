"""Run metrics: wall time, the critical path of observed durations, and API calls by endpoint."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from orchestrator.scheduler import GraphRun


@dataclass
class NodeTimeline:
    """When a node became ready to start, started, and finished, and its phases in between."""

    address: str
    ready_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    phases: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class RunMetrics:
    started_at: float
    finished_at: float = 0.0
    timelines: dict[str, NodeTimeline] = field(default_factory=dict)
    api_calls: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)

    def mark_phase(self, address: str, phase: str, at: float) -> None:
        timeline = self.timelines.setdefault(address, NodeTimeline(address))
        timeline.phases.append((phase, at))

    @property
    def wall_seconds(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    def to_json(self, critical_path: tuple[float, list[str]]) -> dict[str, Any]:
        seconds, path = critical_path
        return {
            "wall_seconds": round(self.wall_seconds, 3),
            "critical_path_seconds": round(seconds, 3),
            "critical_path": path,
            "api_calls": dict(sorted(self.api_calls.items())),
            "api_calls_total": sum(self.api_calls.values()),
            "retries": dict(sorted(self.retries.items())),
        }


def critical_path(graph: nx.DiGraph, run: GraphRun) -> tuple[float, list[str]]:
    """Return the longest chain of observed node durations through the graph, and its nodes.

    A node's duration is the time from its start to its end in this run; nodes
    that did not run count as zero.
    """
    longest: dict[str, float] = {}
    previous: dict[str, str | None] = {}
    for address in nx.topological_sort(graph):
        result = run.results.get(address)
        duration = 0.0
        if result is not None and result.started_at is not None and result.finished_at is not None:
            duration = max(0.0, result.finished_at - result.started_at)
        best_predecessor = None
        best = 0.0
        for predecessor in graph.predecessors(address):
            if longest[predecessor] > best or best_predecessor is None:
                best, best_predecessor = longest[predecessor], predecessor
        longest[address] = best + duration
        previous[address] = best_predecessor
    if not longest:
        return 0.0, []
    end = max(longest, key=lambda address: longest[address])
    path = [end]
    while previous[path[-1]] is not None:
        path.append(previous[path[-1]])  # type: ignore[arg-type]
    return longest[end], list(reversed(path))
