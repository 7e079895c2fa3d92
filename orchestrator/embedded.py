"""The embedded default: the emulator reached in-process through an httpx transport.

This is the only engine module that imports the emulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

EMBEDDED_HOST = "embedded.cws"
EMBEDDED_ENDPOINT = f"http://{EMBEDDED_HOST}"


class EmbeddedTransport(httpx.AsyncBaseTransport):
    """An ASGI transport to the emulator that turns its dropped-response fault into a transport error."""

    def __init__(self, db_path: Path, profile: str | None = None) -> None:
        from orchestrator.emulator import DroppedResponse, create_app

        db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dropped = DroppedResponse
        self._app = create_app(db_path, profile=profile)
        self._transport = httpx.ASGITransport(app=self._app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._transport.handle_async_request(request)
        except self._dropped:
            raise httpx.RemoteProtocolError(
                "the embedded emulator dropped the connection after acting", request=request
            ) from None

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def call_in_process(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Run one call through the emulator's ASGI app; return its status, headers and body.

        This is what `handle_async_request` does, without building and parsing
        httpx's request, URL and response objects, which cost more CPU than
        the emulator spends on most calls. `target` is the path with its query
        string; `headers` are lower-case. A dropped response raises
        httpx.RemoteProtocolError, as through `handle_async_request`.
        """
        path, _, query = target.partition("?")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "headers": headers,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "server": (EMBEDDED_HOST, 80),
            "client": ("127.0.0.1", 123),
            "root_path": "",
        }
        sent_body = False
        status = 500
        response_headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if sent_body:
                return {"type": "http.disconnect"}
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        try:
            await self._app(scope, receive, send)
        except self._dropped:
            raise httpx.RemoteProtocolError("the embedded emulator dropped the connection after acting") from None
        return status, response_headers, b"".join(parts)
