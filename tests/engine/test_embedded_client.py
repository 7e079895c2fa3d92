"""The client over the embedded emulator: in-process calls return what the ASGI transport returns."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from orchestrator.client import CwsClient
from orchestrator.embedded import EMBEDDED_ENDPOINT, EmbeddedTransport
from orchestrator.emulator import DEMO_API_KEY, DEMO_API_SECRET
from orchestrator.errors import BadRequest, NotFound

pytestmark = pytest.mark.anyio

KEY_PAIR_URI = "kp/hpcloud/nova/standard"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class AsgiOnly(httpx.AsyncBaseTransport):
    """Wraps the embedded transport but hides `call_in_process`, so the client builds httpx requests."""

    def __init__(self, inner: EmbeddedTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)


async def exercise(client: CwsClient) -> list[object]:
    """Run one key pair's calls and two rejected ones; return a summary of each result."""
    seen: list[object] = []
    request = await client.create_instance(KEY_PAIR_URI, {"metadata": {"name": "kp one"}})
    seen.append(sorted(request))
    fetched = await client.get_request(request["requestId"])
    seen.append(fetched["requestId"] == request["requestId"])
    with pytest.raises(NotFound) as missing:
        await client.get_instance("00000000-0000-4000-8000-000000000000")
    seen.append((missing.value.status, missing.value.code))
    with pytest.raises(BadRequest) as rejected:
        await client.create_instance("kp/nowhere/nova/standard", {"metadata": {"name": "x"}})
    seen.append((rejected.value.status, rejected.value.code, "nowhere" in str(rejected.value)))
    listed = await client.list_instances(resource_type="kp", provider="hpcloud")
    seen.append(isinstance(listed, list))
    return seen


async def test_in_process_calls_match_asgi_transport(tmp_path: Path) -> None:
    direct_transport = EmbeddedTransport(tmp_path / "direct" / "emulator.db", profile="fast")
    asgi_transport = EmbeddedTransport(tmp_path / "asgi" / "emulator.db", profile="fast")
    direct = CwsClient(EMBEDDED_ENDPOINT, DEMO_API_KEY, DEMO_API_SECRET, transport=direct_transport)
    through_asgi = CwsClient(EMBEDDED_ENDPOINT, DEMO_API_KEY, DEMO_API_SECRET, transport=AsgiOnly(asgi_transport))
    assert direct._call_in_process is not None
    assert through_asgi._call_in_process is None
    try:
        direct_seen = await exercise(direct)
        asgi_seen = await exercise(through_asgi)
    finally:
        await direct.aclose()
        await asgi_transport.aclose()
    assert direct_seen == asgi_seen
    assert direct_seen[2] == (404, "NOT_FOUND")
    assert direct_seen[3][:2] == (400, "UNKNOWN_PROVIDER")
    assert direct.calls == through_asgi.calls


async def test_in_process_path_is_percent_encoded(tmp_path: Path) -> None:
    transport = EmbeddedTransport(tmp_path / "emulator.db", profile="fast")
    client = CwsClient(EMBEDDED_ENDPOINT, DEMO_API_KEY, DEMO_API_SECRET, transport=transport)
    try:
        with pytest.raises(NotFound) as missing:
            await client.get_instance("no such id")
        with pytest.raises(NotFound) as marked:
            await client.get_instance("what?#%41")
    finally:
        await client.aclose()
    assert "no such id" in str(missing.value)
    # '?', '#' and '%' reach the server as part of the id, not as a query, fragment or escape.
    assert "what?#%41" in str(marked.value)
