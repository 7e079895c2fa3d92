"""Crash and interrupt tests: SIGKILL or SIGINT the CLI mid-apply, then apply and destroy again.

The kill points are event counts on the NDJSON stream, drawn from a seeded
generator, so each run kills at a known step of the apply.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from pathlib import Path

import pytest

from orchestrator.state import SqliteStateStore
from tests.chaos.conftest import CLI, dump, live_instances_by_node
from tests.chaos.test_faults import check_applied, write_workload

pytestmark = pytest.mark.skipif(CLI is None, reason="the cws-workload console script is not installed")

# Events one apply of the chaos workload emits, about; kill points are drawn below it.
EVENTS_PER_APPLY = 200


def cli_environment(emulator, state: Path) -> dict[str, str]:
    return {**os.environ, "CWS_ENDPOINT": emulator.url, "CWS_STATE": str(state)}


def apply_until(emulator, spec: Path, state: Path, events_before_signal: int, signal_number: int) -> tuple[int, int]:
    """Run apply and send a signal once it has written that many events; return (exit code, events seen)."""
    process = subprocess.Popen(
        [CLI, "apply", str(spec), "--output", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_environment(emulator, state),
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    seen = 0
    sent = False
    for line in process.stdout:
        json.loads(line)
        seen += 1
        if seen >= events_before_signal and not sent:
            process.send_signal(signal_number)
            sent = True
            if signal_number == signal.SIGKILL:
                break
    process.stdout.close()
    code = process.wait(timeout=120)
    process.stderr.close()
    return code, seen


def run_cli(emulator, state: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *arguments],
        capture_output=True,
        text=True,
        env=cli_environment(emulator, state),
        stdin=subprocess.DEVNULL,
        timeout=180,
    )


def kill_points(seed: int, count: int) -> list[int]:
    generator = random.Random(seed)
    return sorted(generator.randrange(2, EVENTS_PER_APPLY) for _ in range(count))


@pytest.mark.parametrize("kill_after", kill_points(seed=2026, count=3))
def test_sigkill_mid_apply_leaves_no_orphan(served_emulator, tmp_path, kill_after):
    workload = "crash"
    spec = write_workload(tmp_path, workload)
    state = tmp_path / "state.db"

    code, seen = apply_until(served_emulator, spec, state, kill_after, signal.SIGKILL)
    assert code in (-signal.SIGKILL, 0), f"apply exited {code} after {seen} events"

    resumed = run_cli(served_emulator, state, "apply", str(spec), "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    check_applied(served_emulator, state, workload)

    destroyed = run_cli(served_emulator, state, "destroy", workload, "--yes", "--quiet")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert live_instances_by_node(served_emulator, workload) == {}


def test_sigint_mid_apply_commits_and_releases_lock(served_emulator, tmp_path):
    workload = "interrupt"
    spec = write_workload(tmp_path, workload)
    state = tmp_path / "state.db"

    code, _ = apply_until(served_emulator, spec, state, 40, signal.SIGINT)
    assert code == 130

    store = SqliteStateStore(state)
    try:
        assert store.get_lock(workload) is None
        owned = store.owned_instances(workload)
    finally:
        store.close()
    live = live_instances_by_node(served_emulator, workload)
    owned_ids = {instance.instance_id for instance in owned}
    untracked = {node: ids for node, ids in live.items() if not set(ids) <= owned_ids}
    assert untracked == {}, "instances the state does not know: " + dump(untracked)

    resumed = run_cli(served_emulator, state, "apply", str(spec), "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    check_applied(served_emulator, state, workload)

    destroyed = run_cli(served_emulator, state, "destroy", workload, "--yes", "--quiet")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert live_instances_by_node(served_emulator, workload) == {}


def test_lock_held_by_live_run_fails_at_once(served_emulator, tmp_path):
    workload = "locked"
    spec = write_workload(tmp_path, workload)
    state = tmp_path / "state.db"
    store = SqliteStateStore(state)
    holder = store.acquire_lock(workload, "apply")
    store.close()

    blocked = run_cli(served_emulator, state, "apply", str(spec), "--quiet")
    assert blocked.returncode == 1
    assert f"workload '{workload}' is locked by apply by pid {os.getpid()}" in blocked.stderr
    assert holder.lock_id in blocked.stderr
    assert live_instances_by_node(served_emulator, workload) == {}

    released = run_cli(served_emulator, state, "force-unlock", workload, holder.lock_id)
    assert released.returncode == 0, released.stderr
    applied = run_cli(served_emulator, state, "apply", str(spec), "--quiet")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    destroyed = run_cli(served_emulator, state, "destroy", workload, "--yes", "--quiet")
    assert destroyed.returncode == 0, destroyed.stderr
