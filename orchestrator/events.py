"""The run's event stream: one event per state change, fanned out to the live view, NDJSON and logs.

Every event is a flat JSON object with `schema`, `type`, `time` (ISO 8601 UTC),
`run_id` and `workload`, plus the fields of its type. docs/events.md lists the
types and their fields; `EVENT_SCHEMA` is the same contract as JSON Schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog

SCHEMA_VERSION = 1

# Node states shown to the user.
WAITING = "waiting"
CREATING = "creating"
REFRESHING = "refreshing"
CONFIGURING = "configuring"
READY = "ready"
UNCHANGED = "unchanged"
DELETING = "deleting"
DELETED = "deleted"
FAILED = "failed"
SKIPPED = "skipped"
NODE_STATES = (WAITING, CREATING, REFRESHING, CONFIGURING, READY, UNCHANGED, DELETING, DELETED, FAILED, SKIPPED)

EVENT_TYPES = (
    "run.started",
    "node.state",
    "request.sent",
    "request.finished",
    "request.lost",
    "retry",
    "instance.adopted",
    "instance.orphan_deleted",
    "run.summary",
)

log = structlog.get_logger("orchestrator")

Subscriber = Callable[[dict[str, Any]], None]


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventBus:
    """Stamps events with the run's ids and hands them to every subscriber in order."""

    def __init__(self, run_id: str, workload: str) -> None:
        self.run_id = run_id
        self.workload = workload
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "type": event_type,
            "time": utc_now_iso(),
            "run_id": self.run_id,
            "workload": self.workload,
        }
        event.update({key: value for key, value in fields.items() if value is not None})
        for subscriber in self._subscribers:
            subscriber(event)
        return event


def log_event(event: dict[str, Any]) -> None:
    """Subscriber that writes each event as one structlog line with its ids as keys."""
    fields = {key: value for key, value in event.items() if key not in ("schema", "type", "time")}
    event_type = event["type"]
    if event_type == "node.state":
        event_type = f"node.{event['state']}"
        fields.pop("state", None)
    level = "warning" if event_type in ("request.lost", "retry", "node.failed") else "info"
    getattr(log, level)(event_type, **fields)


EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cws-workload event",
    "type": "object",
    "required": ["schema", "type", "time", "run_id", "workload"],
    "properties": {
        "schema": {"const": SCHEMA_VERSION},
        "type": {"enum": list(EVENT_TYPES)},
        "time": {"type": "string"},
        "run_id": {"type": "string"},
        "workload": {"type": "string"},
        "node": {"type": "string"},
        "state": {"enum": list(NODE_STATES)},
        "action": {"type": "string"},
        "request_id": {"type": "string"},
        "instance_id": {"type": "string"},
        "instance_status": {"type": "string"},
        "attempt": {"type": "integer"},
        "message": {"type": "string"},
        "command": {"enum": ["apply", "destroy"]},
        "result": {"enum": ["succeeded", "failed", "interrupted"]},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "wall_seconds": {"type": "number"},
        "critical_path_seconds": {"type": "number"},
        "api_calls": {"type": "object", "additionalProperties": {"type": "integer"}},
        "api_calls_total": {"type": "integer"},
        "outputs": {"type": "object"},
        "failures": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["node", "message"],
                "properties": {
                    "node": {"type": "string"},
                    "code": {"type": ["string", "null"]},
                    "message": {"type": ["string", "null"]},
                },
            },
        },
    },
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "node.state"}}},
            "then": {"required": ["node", "state"]},
        },
        {
            "if": {"properties": {"type": {"enum": ["request.sent", "request.finished", "request.lost"]}}},
            "then": {"required": ["node", "action", "request_id"]},
        },
        {
            "if": {"properties": {"type": {"const": "run.started"}}},
            "then": {"required": ["command"]},
        },
        {
            "if": {"properties": {"type": {"const": "retry"}}},
            "then": {"required": ["action", "attempt"]},
        },
        {
            "if": {"properties": {"type": {"enum": ["instance.adopted", "instance.orphan_deleted"]}}},
            "then": {"required": ["node", "instance_id"]},
        },
        {
            "if": {"properties": {"type": {"const": "run.summary"}}},
            "then": {"required": ["command", "result", "counts", "wall_seconds", "api_calls"]},
        },
    ],
}
