"""Fixtures shared by every test package: a served emulator and a manual clock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.emulator import DEMO_API_KEY, DEMO_API_SECRET, ManualClock
from orchestrator.emulator.clock import Clock
from orchestrator.emulator.profile import Profile

EMULATOR_ADMIN_KEY = "test-admin-key"
ADMIN_HEADERS = {"X-CWS-Admin-Key": EMULATOR_ADMIN_KEY}
STARTUP_TIMEOUT_SECONDS = 30
SHUTDOWN_TIMEOUT_SECONDS = 30


@dataclass
class RunningEmulator:
    """An emulator served by uvicorn on 127.0.0.1 from a background thread."""

    url: str
    admin_key: str | None
    db_path: Path
    server: Any
    thread: threading.Thread
    clients: list[httpx.Client] = field(default_factory=list)

    def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change fault settings through the admin path and return them all."""
        response = httpx.put(f"{self.url}/admin/faults", json=changes, headers=ADMIN_HEADERS, timeout=10)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/admin/stats", headers=ADMIN_HEADERS, timeout=10)
        response.raise_for_status()
        return response.json()

    def client(self, api_key: str = DEMO_API_KEY, secret: str = DEMO_API_SECRET) -> httpx.Client:
        """Return an httpx client on this emulator, authenticated as the demo account by default."""
        client = httpx.Client(base_url=self.url, auth=(api_key, secret), timeout=10)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.stop()
        self.thread.join(timeout=SHUTDOWN_TIMEOUT_SECONDS)
        self.server.app.state.emulator.close()
        assert not self.thread.is_alive(), "the emulator server thread did not stop"


def start_emulator_server(
    db_path: Path,
    *,
    profile: str | Path | Profile | None = "fast",
    seed: int | None = 7,
    clock: Clock | None = None,
    catalog_path: Path | None = None,
    admin_key: str | None = EMULATOR_ADMIN_KEY,
) -> RunningEmulator:
    """Start an emulator under uvicorn on a free port and return once it listens.

    `admin_key` None starts it without an admin path.
    """
    from orchestrator.emulator import EmulatorServer, create_app

    app = create_app(
        db_path, profile=profile, seed=seed, clock=clock, catalog_path=catalog_path, admin_key=admin_key
    )
    server = EmulatorServer(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="emulator-server", daemon=True)
    thread.start()
    if not server.ready.wait(timeout=STARTUP_TIMEOUT_SECONDS):
        server.stop()
        raise RuntimeError(f"the emulator did not listen within {STARTUP_TIMEOUT_SECONDS} s")
    assert server.url is not None
    return RunningEmulator(url=server.url, admin_key=admin_key, db_path=Path(db_path), server=server, thread=thread)


@pytest.fixture
def emulator_server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningEmulator]]:
    """Start emulators with chosen options; each is stopped at the end of the test.

    Takes the keyword arguments of `start_emulator_server`; `db_path` defaults to
    a fresh file in the test's temporary folder.
    """
    started: list[RunningEmulator] = []

    def start(db_path: Path | None = None, **options: Any) -> RunningEmulator:
        path = db_path if db_path is not None else tmp_path / f"emulator-{len(started)}.db"
        emulator = start_emulator_server(path, **options)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator_server(emulator_server_factory: Callable[..., RunningEmulator]) -> RunningEmulator:
    """An emulator with the fast profile, seed 7 and an admin key, on a fresh database."""
    return emulator_server_factory()


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that moves only on `advance(seconds)`, to pass to `create_app(clock=...)`."""
    return ManualClock()
