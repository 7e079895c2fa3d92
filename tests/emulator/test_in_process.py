"""The app served in-process through httpx.ASGITransport, and one SQLite file shared by two apps."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from orchestrator.emulator import DEMO_API_KEY, DEMO_API_SECRET, DroppedResponse, ManualClock, create_app
from tests.emulator.conftest import ZERO_DURATIONS

KEY_PAIR_URI = "/api/resource/kp/hpcloud/nova/standard"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def in_process_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://emulator", auth=(DEMO_API_KEY, DEMO_API_SECRET)
    )


@pytest.mark.anyio
async def test_asgi_transport_life_cycle(tmp_path: Path) -> None:
    clock = ManualClock()
    app = create_app(tmp_path / "nested" / "emulator.db", profile="tutorial", clock=clock, seed=3)
    async with in_process_client(app) as client:
        created = (await client.post(KEY_PAIR_URI, json={"metadata": {"name": "KP1"}})).json()
        assert created["requestStatus"] == "in-progress"

        clock.advance(1)
        completed = (await client.get(f"/api/request/{created['requestId']}")).json()[0]
        assert completed["requestStatus"] == "completed"
        instance = (await client.get(f"/api/instance/{completed['instanceId']}")).json()
        assert instance["attributes"]["instanceStatus"] == "created"
        assert (await client.get("/openapi.json")).status_code == 200
    app.state.emulator.close()
    assert (tmp_path / "nested" / "emulator.db").is_file()


@pytest.mark.anyio
async def test_dropped_response_raised_in_process(tmp_path: Path) -> None:
    app = create_app(tmp_path / "emulator.db", profile=ZERO_DURATIONS, seed=1, admin_key="key")
    async with in_process_client(app) as client:
        changed = await client.put("/admin/faults", json={"dropped_response": 1.0}, headers={"X-CWS-Admin-Key": "key"})
        assert changed.status_code == 200

        with pytest.raises(DroppedResponse) as raised:
            await client.post(KEY_PAIR_URI, json={})
        assert isinstance(raised.value, httpx.RemoteProtocolError)

        await client.put("/admin/faults", json={"dropped_response": 0.0}, headers={"X-CWS-Admin-Key": "key"})
        requests = (await client.get("/api/request")).json()
        assert len(requests) == 1
        assert requests[0]["requestStatus"] == "completed"
    app.state.emulator.close()


@pytest.mark.anyio
async def test_two_apps_share_one_file(tmp_path: Path) -> None:
    db_path = tmp_path / "shared.db"
    first = create_app(db_path, profile=ZERO_DURATIONS)
    second = create_app(db_path, profile=ZERO_DURATIONS)
    async with in_process_client(first) as one, in_process_client(second) as two:
        created = (await one.post(KEY_PAIR_URI, json={"metadata": {"name": "shared"}})).json()

        # The second app settles the request the first created.
        seen = (await two.get(f"/api/request/{created['requestId']}")).json()[0]
        assert seen["requestStatus"] == "completed"
        instance_id = seen["instanceId"]

        from_first = (await one.get(f"/api/instance/{instance_id}")).json()
        assert from_first["metadata"] == {"name": "shared"}
        deleted = (await two.delete(f"/api/instance/{instance_id}")).json()
        assert (await one.get(f"/api/request/{deleted['requestId']}")).json()[0]["results"] == {"instanceStatus": "deleted"}
    first.state.emulator.close()
    second.state.emulator.close()


@pytest.mark.anyio
async def test_restart_keeps_store(tmp_path: Path) -> None:
    db_path = tmp_path / "emulator.db"
    app = create_app(db_path, profile=ZERO_DURATIONS)
    async with in_process_client(app) as client:
        created = (await client.post(KEY_PAIR_URI, json={})).json()
        instance_id = (await client.get(f"/api/request/{created['requestId']}")).json()[0]["instanceId"]
    app.state.emulator.close()

    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    reopened = create_app(db_path, profile=ZERO_DURATIONS)
    async with in_process_client(reopened) as client:
        assert (await client.get(f"/api/instance/{instance_id}")).status_code == 200
        created = (await client.post(KEY_PAIR_URI, json={})).json()
        assert created["requestId"] != instance_id
    reopened.state.emulator.close()
