"""How a run shows itself: a live table on a terminal, plain lines in a pipe, or NDJSON events."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator import events as ev
from orchestrator.logs import redact

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
            return f"{event.get('command')} {event['workload']}: {event.get('message', '')}".rstrip(": ")
        return None


@dataclass
class _Row:
    name: str
    members: dict[str, str] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    expected: float | None = None


class LiveView:
    """A rich live table: one row per resource (copies of a `count` resource share a row)."""

    def __init__(self, console: Console, expected_seconds: dict[str, float] | None = None) -> None:
        self.console = console
        self.rows: dict[str, _Row] = {}
        self.expected_seconds = expected_seconds or {}
        self.started = time.monotonic()
        self.live = Live(self, console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.live.refresh()
        self.live.__exit__(*exc_info)  # type: ignore[arg-type]

    def __call__(self, event: dict[str, Any]) -> None:
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
        if len(states) == 1:
            return states[0]
        counts: dict[str, int] = {}
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        return ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))

    def __rich__(self) -> Group:
        now = time.monotonic()
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
        bar = ProgressBar(total=max(total, 1), completed=done, width=40)
        footer = Text(f" {done}/{total} done, {now - self.started:.1f}s")
        progress = Table.grid()
        progress.add_row(bar, footer)
        return Group(table, progress)
