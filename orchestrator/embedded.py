"""The embedded default: the emulator reached in-process through an httpx transport.

This is the only engine module that imports the emulator.
"""

from __future__ import annotations

from pathlib import Path

import httpx

EMBEDDED_ENDPOINT = "http://embedded.cws"


class EmbeddedTransport(httpx.AsyncBaseTransport):
    """An ASGI transport to the emulator that turns its dropped-response fault into a transport error."""

    def __init__(self, db_path: Path, profile: str | None = None) -> None:
        from orchestrator.emulator import DroppedResponse, create_app

        db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dropped = DroppedResponse
        self._transport = httpx.ASGITransport(app=create_app(db_path, profile=profile))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._transport.handle_async_request(request)
        except self._dropped:
            raise httpx.RemoteProtocolError(
                "the embedded emulator dropped the connection after acting", request=request
            ) from None

    async def aclose(self) -> None:
        await self._transport.aclose()
