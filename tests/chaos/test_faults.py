"""Chaos suite: apply and destroy a 30-resource workload while the emulator injects each fault kind.

After every apply, each resource has exactly one live instance, the one the
state records; after destroy, none is left; and no private key or password
appears in the captured logs or events.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import pytest

import orchestrator
from orchestrator.config import resolve_settings
from orchestrator.engine import RunOptions
from orchestrator.logs import configure_logging
from orchestrator.state import SqliteStateStore
from tests.chaos.conftest import dump, live_instances_by_node, secrets_of, start_emulator, stop_emulator

DATA = Path(__file__).resolve().parents[1] / "data"

FAULT_KINDS = {
    "lost_request_created": {"lost_request": 0.15, "lost_request_created": 1.0},
    "lost_request_not_created": {"lost_request": 0.15, "lost_request_created": 0.0},
    "dropped_response": {"dropped_response": 0.15},
    "server_error": {"server_error": 0.15},
    "throttle": {"throttle": 0.15},
    "slow_response": {"slow_response": 0.1, "slow_response_seconds": 0.5},
    "failed_request": {"failed_request": 0.05},
}
NO_FAULTS = {
    "lost_request": 0.0,
    "dropped_response": 0.0,
    "server_error": 0.0,
    "throttle": 0.0,
    "slow_response": 0.0,
    "failed_request": 0.0,
}


def write_workload(directory: Path, name: str) -> Path:
    text = (DATA / "chaos.yaml").read_text(encoding="utf-8").replace("WORKLOAD", name)
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class Captured:
    """Collects every event and log line of a run, to search for secrets afterwards."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.logs = io.StringIO()

    def __call__(self, event: dict) -> None:
        self.events.append(json.loads(json.dumps(event, default=str)))

    def text(self) -> str:
        return self.logs.getvalue() + "\n".join(json.dumps(event) for event in self.events)


def run(command, *arguments, captured: Captured, **keywords):
    configure_logging("debug", stream=captured.logs)
    return anyio.run(lambda: command(*arguments, subscribers=[captured], **keywords))


def check_applied(emulator, state_path: Path, workload: str) -> None:
    store = SqliteStateStore(state_path)
    try:
        records = store.get_resources(workload)
    finally:
        store.close()
    live = live_instances_by_node(emulator, workload)
    assert sorted(live) == sorted(records), dump(live)
    duplicates = {node: ids for node, ids in live.items() if len(ids) != 1}
    assert duplicates == {}, "duplicates: " + dump(duplicates)
    mismatched = {
        address: (record.instance_id, live[address])
        for address, record in records.items()
        if [record.instance_id] != live[address]
    }
    assert mismatched == {}, "state and API disagree: " + dump(mismatched)


# Each fault kind runs with its own seed, so the suite covers several seeds in one pass.
@pytest.mark.parametrize(("kind", "seed"), [(kind, 11 + index) for index, kind in enumerate(sorted(FAULT_KINDS))])
def test_apply_destroy_under_fault(tmp_path, kind, seed):
    emulator = start_emulator(tmp_path / "emulator.db", seed=seed)
    try:
        workload = f"chaos-{kind.replace('_', '-')}"
        spec = write_workload(tmp_path, workload)
        settings = resolve_settings(endpoint=emulator.url, state=str(tmp_path / "state.db"))
        options = RunOptions(request_timeout=5.0)
        captured = Captured()

        emulator.set_faults(**FAULT_KINDS[kind])
        summary = run(orchestrator.apply_async, spec, captured=captured, settings=settings, options=options)
        if kind == "failed_request" and not summary.ok:
            assert summary.failures, summary
            assert any(failure["code"] == "PROVIDER_ERROR" for failure in summary.failures), summary.failures
            emulator.set_faults(**NO_FAULTS)
            summary = run(orchestrator.apply_async, spec, captured=captured, settings=settings, options=options)
        assert summary.ok, dump(summary.failures)
        injected = emulator.stats()
        emulator.set_faults(**NO_FAULTS)
        check_applied(emulator, tmp_path / "state.db", workload)

        emulator.set_faults(**FAULT_KINDS[kind])
        destroyed = run(orchestrator.destroy_async, workload, captured=captured, settings=settings, options=options)
        emulator.set_faults(**NO_FAULTS)
        if kind == "failed_request" and not destroyed.ok:
            destroyed = run(orchestrator.destroy_async, workload, captured=captured, settings=settings, options=options)
        assert destroyed.ok, dump(destroyed.failures)
        assert live_instances_by_node(emulator, workload) == {}

        text = captured.text()
        secrets = secrets_of(emulator)
        assert secrets, "the emulator should hold key pairs and VM passwords"
        leaked = [secret[:12] for secret in secrets if secret in text]
        assert leaked == [], "secrets found in logs or events"
        assert "faults" in injected or injected, injected
    finally:
        stop_emulator(emulator)
