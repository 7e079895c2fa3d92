"""Run output: a live table on a terminal, plain lines in a pipe, or NDJSON events."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import networkx as nx
import structlog
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator import events as ev
from orchestrator.graph import Node, build_graph, graph_from_records
from orchestrator.logs import redact
from orchestrator.spec import load_spec

if TYPE_CHECKING:
    from orchestrator.engine import Engine, RunSummary

FINAL_STATES = (ev.READY, ev.UNCHANGED, ev.DELETED, ev.FAILED, ev.SKIPPED)
STATE_STYLES = {
    ev.READY: "green",
    ev.UNCHANGED: "dim",
    ev.DELETED: "green",
    ev.FAILED: "bold red",
    ev.SKIPPED: "yellow",
    ev.WAITING: "dim",
}


class NdjsonWriter:
    """Writes each event as one JSON line, secrets redacted."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(redact(event), default=str) + "\n")
        self.stream.flush()


class PlainLines:
    """Writes one line per state change, for pipes and CI logs."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: dict[str, Any]) -> None:
        line = self.format(event)
        if line:
            self.stream.write(line + "\n")
            self.stream.flush()

    @staticmethod
    def format(event: dict[str, Any]) -> str | None:
        event_type = event["type"]
        if event_type == "node.state":
            if event["state"] == ev.WAITING:
                return None
            parts = [f"{event['node']}: {event['state']}"]
            if event.get("instance_id"):
                parts.append(f"instance {event['instance_id']}")
            if event.get("instance_status"):
                parts.append(f"status {event['instance_status']}")
            if event.get("message"):
                parts.append(event["message"])
            return ", ".join(parts)
        if event_type == "request.lost":
            return f"{event['node']}: request {event['request_id']} ({event['action']}) lost: {event.get('message', '')}".rstrip(": ")
        if event_type == "retry":
            return f"retry {event.get('attempt')}: {event.get('action')}: {event.get('message')}"
        if event_type == "instance.adopted":
            return f"{event['node']}: adopted instance {event['instance_id']} ({event.get('message', '')})"
        if event_type == "instance.orphan_deleted":
            return f"{event['node']}: deleted orphan instance {event['instance_id']}"
        if event_type == "run.started":
            # The plan summary in the event's message was printed before the run started.
            return f"{event.get('command')} {event['workload']}: started"
        return None


def expected_node_seconds(
    durations: Mapping[tuple[str, str], float], graph: nx.DiGraph, command: str
) -> dict[str, float]:
    """Estimate how long each node of an apply or destroy takes, from durations of earlier runs.

    `durations` maps (action, resource URI) to smoothed seconds, as the state's
    `expected_durations()` returns them. A create's estimate adds its create
    request, the wait until the instance is stable, and the follow-up action
    (rules for a group, the attachment of a volume). A delete's estimate adds
    the detach of an attached volume and the delete request. Nodes whose main
    request was never observed get no estimate.
    """
    estimates: dict[str, float] = {}
    for address in graph.nodes:
        node: Node = graph.nodes[address]["node"]
        if command == "destroy":
            actions = [f"{node.type}.delete"]
            if node.type == "vs" and node.attach_to:
                actions.append("vs.detach")
        else:
            actions = ["vm.create.image" if node.type == "image" else f"{node.type}.create", f"{node.type}.stable"]
            if node.type == "sg" and node.rules:
                actions.append("sg.add-access")
            if node.type == "vs" and node.attach_to:
                actions.append("vs.attach")
        if (actions[0], node.resource_uri) not in durations:
            continue
        estimates[address] = sum(durations.get((action, node.resource_uri), 0.0) for action in actions)
    return estimates


def apply_expectations(engine: Engine, spec_path: str | Path) -> dict[str, float]:
    """Return the estimated seconds of each node of the workload file, for the live view's ETA."""
    graph = build_graph(load_spec(spec_path))
    return expected_node_seconds(engine.state.expected_durations(), graph, "apply")


def destroy_expectations(engine: Engine, workload: str) -> dict[str, float]:
    """Return the estimated seconds of each node's delete, for the live view's ETA."""
    record = engine.state.get_workload(workload)
    if record is None:
        return {}
    graph = graph_from_records(record.graph)
    return expected_node_seconds(engine.state.expected_durations(), graph, "destroy")


def format_counts(summary: RunSummary) -> str:
    """Return the summary's node counts in the user's terms, e.g. "2 created, 1 unchanged, 1 failed".

    The scheduler counts every node that finished as `done`. For apply that
    total is split into created, unchanged and deleted (nodes removed from the
    file), and for destroy every done node was deleted.
    """
    counts = dict(summary.counts)
    done = counts.pop("done", 0)
    user_counts: dict[str, int] = {}
    if summary.command == "apply":
        created = counts.pop("created", 0)
        unchanged = counts.pop("unchanged", 0)
        user_counts["created"] = created
        user_counts["unchanged"] = unchanged
        user_counts["deleted"] = max(0, done - created - unchanged)
    else:
        user_counts["deleted"] = done
    for status, count in sorted(counts.items()):
        user_counts[status] = user_counts.get(status, 0) + count
    return ", ".join(f"{count} {status}" for status, count in user_counts.items() if count) or "nothing to do"


@dataclass
class _Row:
    name: str
    members: dict[str, str] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    expected: float | None = None


class LiveView:
    """A rich live table: one row per resource (copies of a `count` resource share a row).

    Each row shows the state, the time since the resource left `waiting`, and
    an ETA: its estimated seconds (see `expected_node_seconds`) minus the
    elapsed time, user_counts only when earlier runs observed that resource URI. A
    bar below counts finished nodes, lost requests and retries.
    """

    def __init__(self, console: Console, expected_seconds: dict[str, float] | None = None) -> None:
        self.console = console
        self.rows: dict[str, _Row] = {}
        self.expected_seconds = expected_seconds or {}
        self.started = time.monotonic()
        self.lost_requests = 0
        self.retries = 0
        self._logger_factory: Any = None
        # Events arrive on the event loop's thread while rich refreshes from its own thread.
        self._lock = threading.Lock()
        self.live = Live(self, console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> LiveView:
        self.started = time.monotonic()
        self.live.__enter__()
        # Live replaces sys.stderr with a proxy that prints above the table, but structlog
        # kept the stream it was configured with, and writing there would tear the table.
        self._logger_factory = structlog.get_config()["logger_factory"]
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
        return self

    def __exit__(self, *exc_info: object) -> None:
        structlog.configure(logger_factory=self._logger_factory)
        self.live.refresh()
        self.live.__exit__(*exc_info)  # type: ignore[arg-type]

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._record(event)

    def _record(self, event: dict[str, Any]) -> None:
        if event["type"] == "request.lost":
            self.lost_requests += 1
            return
        if event["type"] == "retry":
            self.retries += 1
            return
        if event["type"] != "node.state":
            return
        address = event["node"]
        group = address.split("[", 1)[0]
        row = self.rows.setdefault(group, _Row(group, expected=self.expected_seconds.get(address)))
        row.members[address] = event["state"]
        now = time.monotonic()
        if event["state"] not in (ev.WAITING, *FINAL_STATES) and row.started is None:
            row.started = now
        if all(state in FINAL_STATES for state in row.members.values()):
            row.finished = row.finished or now
        else:
            row.finished = None

    def _row_state(self, row: _Row) -> str:
        states = list(row.members.values())
        if len(set(states)) == 1:
            return states[0]
        counts: dict[str, int] = {}
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        return ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))

    def __rich__(self) -> Group:
        with self._lock:
            return self._render(time.monotonic())

    def _render(self, now: float) -> Group:
        table = Table(box=None, pad_edge=False, expand=False)
        table.add_column("resource")
        table.add_column("state")
        table.add_column("elapsed", justify="right")
        table.add_column("eta", justify="right")
        done = 0
        total = 0
        for row in self.rows.values():
            total += len(row.members)
            done += sum(1 for state in row.members.values() if state in FINAL_STATES)
            elapsed = ""
            eta = ""
            if row.started is not None:
                end = row.finished or now
                elapsed = f"{end - row.started:.1f}s"
                if row.finished is None and row.expected:
                    eta = f"{max(0.0, row.expected - (now - row.started)):.0f}s"
            label = row.name if len(row.members) == 1 else f"{row.name} ({len(row.members)})"
            state = self._row_state(row)
            table.add_row(label, Text(state, style=STATE_STYLES.get(state, "cyan")), elapsed, eta)

        footer = f" {done}/{total} done, {now - self.started:.1f}s"
        if self.lost_requests:
            footer += f", {self.lost_requests} lost request{'s' if self.lost_requests > 1 else ''}"
        if self.retries:
            footer += f", {self.retries} retr{'ies' if self.retries > 1 else 'y'}"
        bar = ProgressBar(total=max(total, 1), completed=done, width=40)
        progress = Table.grid()
        progress.add_row(bar, Text(footer))
        return Group(table, progress)
