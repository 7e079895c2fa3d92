"""A served emulator in its own process, with an admin key to switch faults at run time."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from orchestrator.config import DEMO_API_KEY, DEMO_API_SECRET

CLI = shutil.which("cws-workload")
ADMIN_KEY = "chaos-admin-key"


@dataclass
class ServedEmulator:
    url: str
    process: subprocess.Popen
    db_path: Path

    def set_faults(self, **faults: object) -> dict:
        response = httpx.put(
            f"{self.url}/admin/faults",
            json=faults,
            headers={"X-CWS-Admin-Key": ADMIN_KEY},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        response = httpx.get(f"{self.url}/admin/stats", headers={"X-CWS-Admin-Key": ADMIN_KEY}, timeout=10)
        response.raise_for_status()
        return response.json()

    def instances(self) -> list[dict]:
        """Return every instance of the demo account, read with faults switched off."""
        response = httpx.get(f"{self.url}/api/instance", auth=(DEMO_API_KEY, DEMO_API_SECRET), timeout=30)
        response.raise_for_status()
        return response.json()


SERVE_SCRIPT = """
import sys
from orchestrator.emulator import serve
db, seed, profile, admin_key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
serve(db_path=db, seed=seed, profile=profile, admin_key=admin_key,
      on_ready=lambda url: print("listening on", url, flush=True))
"""


def start_emulator(db_path: Path, seed: int, profile: str = "fast") -> ServedEmulator:
    """Start `orchestrator.emulator.serve` in a child process and wait for its URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(db_path), str(seed), profile, ADMIN_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("listening on "):
            return ServedEmulator(url=line.split()[2], process=process, db_path=db_path)
    process.kill()
    raise RuntimeError(f"the emulator exited with {process.wait()} before listening")


def stop_emulator(emulator: ServedEmulator) -> None:
    emulator.process.send_signal(signal.SIGTERM)
    try:
        emulator.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        emulator.process.kill()


@pytest.fixture
def served_emulator(tmp_path: Path) -> Iterator[ServedEmulator]:
    emulator = start_emulator(tmp_path / "emulator.db", seed=7)
    try:
        yield emulator
    finally:
        stop_emulator(emulator)


def live_instances_by_node(emulator: ServedEmulator, workload: str) -> dict[str, list[str]]:
    """Group the workload's instances that are not deleted by the node that created them."""
    from orchestrator.operations import NODE_KEY, WORKLOAD_KEY

    grouped: dict[str, list[str]] = {}
    for instance in emulator.instances():
        metadata = instance.get("metadata") or {}
        if metadata.get(WORKLOAD_KEY) != workload:
            continue
        if (instance.get("attributes") or {}).get("instanceStatus") == "deleted":
            continue
        grouped.setdefault(metadata.get(NODE_KEY, "?"), []).append(instance["instanceId"])
    return grouped


def secrets_of(emulator: ServedEmulator) -> list[str]:
    """Return every private key and password the emulator holds, to look for in logs."""
    found = []
    for instance in emulator.instances():
        attributes = instance.get("attributes") or {}
        for key in ("privateKey", "password"):
            value = attributes.get(key)
            if isinstance(value, str) and value and value != "<HIDDEN>":
                found.append(value)
    return found


def dump(value: object) -> str:
    return json.dumps(value, indent=2, default=str)
