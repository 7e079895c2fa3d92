"""Exceptions of the emulator.

    EmulatorError              configuration that cannot be loaded
    ├── CatalogError           an invalid catalog file
    └── ProfileError           an invalid or unknown latency and fault profile
    ApiError                   an HTTP error response: status, code and message
    DroppedResponse            the dropped-response fault, raised in-process
                               (an httpx.RemoteProtocolError)

`ApiError` never leaves the app: the app renders it as the error body
`{"error": {"code", "message"}}`. `DroppedResponse` does leave it, on purpose.
"""

from __future__ import annotations

import httpx


class EmulatorError(Exception):
    """Configuration of the emulator that cannot be loaded."""


class CatalogError(EmulatorError):
    """An invalid catalog file."""


class ProfileError(EmulatorError):
    """An invalid or unknown latency and fault profile."""


class ApiError(Exception):
    """An error response of the instance API.

    `headers` are added to the response, e.g. `Retry-After` on `429` and `503`.
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class DroppedResponse(httpx.RemoteProtocolError):
    """The emulator acted on a call and then dropped the connection.

    Under uvicorn the client sees a broken connection: the status line and a
    `Content-Length` arrive, the body never does, and httpx raises
    `RemoteProtocolError`. Served in-process through `httpx.ASGITransport`, the
    app raises this subclass of that same exception after sending the status
    line, so client code that handles a broken connection handles both.
    """
