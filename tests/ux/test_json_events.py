"""`--output json`: NDJSON events that validate against EVENT_SCHEMA, ending in a run.summary."""

from __future__ import annotations

import json

import jsonschema
import pytest

from orchestrator.events import EVENT_SCHEMA, SCHEMA_VERSION

from .conftest import TUTORIAL

TUTORIAL_NODES = {"kp1", "vm1", "image1"}

# The fields of schema version 1 as documented in docs/events.md. Consumers rely on
# them, so changing one needs a new SCHEMA_VERSION; enums may only gain values.
VERSION_1_FIELDS = {
    "schema": {"const": 1},
    "type": {"enum": ["run.started", "node.state", "request.sent", "request.finished", "request.lost", "retry",
                      "instance.adopted", "instance.orphan_deleted", "run.summary"]},
    "time": {"type": "string"},
    "run_id": {"type": "string"},
    "workload": {"type": "string"},
    "node": {"type": "string"},
    "state": {"enum": ["waiting", "creating", "refreshing", "configuring", "ready", "unchanged", "deleting",
                       "deleted", "failed", "skipped"]},
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
}


def parse_events(stdout: str) -> list[dict]:
    """Parse NDJSON, failing on the first line that is not one JSON object valid under EVENT_SCHEMA."""
    validator = jsonschema.Draft202012Validator(EVENT_SCHEMA)
    events = []
    for number, line in enumerate(stdout.splitlines(), start=1):
        event = json.loads(line)
        errors = [error.message for error in validator.iter_errors(event)]
        assert errors == [], f"line {number}: {line}"
        events.append(event)
    return events


def test_event_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(EVENT_SCHEMA)


@pytest.mark.parametrize("field", sorted(VERSION_1_FIELDS))
def test_version_1_field_kept(field):
    if SCHEMA_VERSION != 1:
        pytest.skip(f"EVENT_SCHEMA is version {SCHEMA_VERSION}; compare it with that version's fields")
    published = VERSION_1_FIELDS[field]
    current = EVENT_SCHEMA["properties"].get(field)

    assert current is not None, f"field {field!r} was removed without raising SCHEMA_VERSION"
    if "enum" in published:
        assert set(current["enum"]) >= set(published["enum"])
    else:
        assert current == published


def test_apply_and_destroy_stream_valid_events(cli):
    applied = cli("apply", str(TUTORIAL), "--output", "json")

    assert applied.returncode == 0, applied.stderr
    events = parse_events(applied.stdout)
    assert events[0]["type"] == "run.started"
    assert events[-1]["type"] == "run.summary"
    assert [event["type"] for event in events].count("run.summary") == 1
    assert {event["schema"] for event in events} == {SCHEMA_VERSION}
    assert len({event["run_id"] for event in events}) == 1
    states = {}
    for event in events:
        if event["type"] == "node.state":
            states.setdefault(event["node"], []).append(event["state"])
    assert set(states) == TUTORIAL_NODES
    for node, sequence in states.items():
        assert sequence[0] == "waiting", node
        assert "creating" in sequence, node
        assert sequence[-1] == "ready", node
    summary = events[-1]
    assert summary["command"] == "apply"
    assert summary["result"] == "succeeded"
    assert summary["counts"]["created"] == 3
    assert summary["outputs"]["image_uri"].startswith("image/hpcloud/nova/ami-")
    # Only events reach stdout: no plan lines and no text summary.
    assert "apply tutorial: succeeded" not in applied.stdout

    destroyed = cli("destroy", "--yes", "--output", "json")

    assert destroyed.returncode == 0, destroyed.stderr
    events = parse_events(destroyed.stdout)
    final_states = {event["node"]: event["state"] for event in events if event["type"] == "node.state"}
    assert final_states == {node: "deleted" for node in TUTORIAL_NODES}
    assert events[-1]["type"] == "run.summary"
    assert events[-1]["command"] == "destroy"
    assert events[-1]["result"] == "succeeded"


def test_plan_json_is_one_line(cli):
    result = cli("plan", str(TUTORIAL), "--output", "json")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    plan = json.loads(lines[0])
    assert plan["workload"] == "tutorial"
    assert plan["counts"] == {"create": 3, "replace": 0, "delete": 0, "noop": 0}
    assert [change["address"] for change in plan["changes"]] == ["kp1", "vm1", "image1"]
    assert {change["action"] for change in plan["changes"]} == {"create"}
