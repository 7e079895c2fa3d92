"""`cws-workload emulator serve` as a subprocess: it prints its URL, serves, and stops cleanly on a signal."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from orchestrator.emulator import DEMO_API_KEY, DEMO_API_SECRET

STOP_TIMEOUT_SECONDS = 30


def serve_command() -> list[str]:
    executable = shutil.which("cws-workload")
    if executable is not None:
        return [executable]
    return [sys.executable, "-c", "from orchestrator.cli import main; main()"]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_on_signal(tmp_path: Path, stop_signal: signal.Signals) -> None:
    profile = tmp_path / "zero.yaml"
    profile.write_text(yaml.safe_dump({"key_bits": 1024, "durations": {"default": {"fixed": {"seconds": 0}}}}), encoding="utf-8")
    db_path = tmp_path / "state" / "emulator.db"
    process = subprocess.Popen(
        [*serve_command(), "emulator", "serve", "--port", "0", "--db", str(db_path), "--profile", str(profile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Emulator listening on http://127.0.0.1:"), first
        url = first.split()[-1]
        credentials = process.stdout.readline()
        assert DEMO_API_KEY in credentials
        assert DEMO_API_SECRET in credentials

        client = httpx.Client(base_url=url, auth=(DEMO_API_KEY, DEMO_API_SECRET), timeout=10)
        created = client.post("/api/resource/kp/hpcloud/nova/standard", json={"metadata": {"name": "kept"}}).json()
        instance_id = client.get(f"/api/request/{created['requestId']}").json()[0]["instanceId"]
        client.close()

        process.send_signal(stop_signal)
        assert process.wait(timeout=STOP_TIMEOUT_SECONDS) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.stderr is not None
    assert "Emulator stopped" in process.stderr.read()
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = connection.execute("SELECT status FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    assert stored == ("created",)


def test_serve_rejects_unknown_profile(tmp_path: Path) -> None:
    completed = subprocess.run(
        [*serve_command(), "emulator", "serve", "--port", "0", "--db", str(tmp_path / "e.db"), "--profile", "warp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "unknown profile 'warp'" in completed.stderr
