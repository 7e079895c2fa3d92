"""The CWS instance API over httpx: one method per call, errors translated, retries where safe.

Retries follow one rule. A call that certainly did not act (a refused
connection, `429`, `503`) is sent again after a backoff that honours
`Retry-After`. A call that may have acted (a time-out, a dropped connection,
another `5xx`) is sent again only when sending it twice is harmless: reads,
refreshes and deletes. Creates and actions raise instead, so the engine can
look for what the first attempt made before it sends another.
"""

from __future__ import annotations

import base64
import json as json_module
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import anyio
import httpx
import stamina
import structlog

from orchestrator.errors import (
    ApiError,
    AuthenticationFailed,
    BadRequest,
    Forbidden,
    NotFound,
    ServerError,
    Throttled,
    TransportError,
)

log = structlog.get_logger("orchestrator.client")

DEFAULT_TIMEOUT_SECONDS = 30.0
# HTTP calls open at once. Measured on 2 cores against the emulator, 8 kept one
# engine process's CPU per call lowest; waiting on requests is not bounded by it.
DEFAULT_CONCURRENT_CALLS = 8
# Retries of one call stop at whichever limit comes first.
RETRY_ATTEMPTS = 8
RETRY_TIMEOUT_SECONDS = 120.0
RETRY_WAIT_INITIAL_SECONDS = 0.1
RETRY_WAIT_MAX_SECONDS = 10.0
RETRY_WAIT_JITTER_SECONDS = 1.0
# Tries of the connection check that starts every apply and destroy.
PREFLIGHT_ATTEMPTS = 3
# Seconds the connection check waits for a response, shorter than other calls' time-out.
PREFLIGHT_TIMEOUT_SECONDS = 10.0

# Characters left as they are in a call's path; others are percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"

STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    403: Forbidden,
    404: NotFound,
    429: Throttled,
}


class RateLimiter:
    """A token bucket: at most `rate` calls a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1, int(rate))
        self._clock = clock
        self._tokens = float(self.burst)
        self._updated = clock()
        self._lock = anyio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await anyio.sleep((1 - self._tokens) / self.rate)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _not_acted(error: Exception) -> bool | float:
    """Backoff hook for calls that are unsafe to repeat: retry only what surely did not act."""
    if isinstance(error, Throttled):
        return error.retry_after if error.retry_after is not None else True
    if isinstance(error, ServerError) and error.status == 503:
        return error.retry_after if error.retry_after is not None else True
    if isinstance(error, TransportError):
        return not error.maybe_acted
    return False


def _transient(error: Exception) -> bool | float:
    """Backoff hook for calls that are safe to repeat: retry every transient failure."""
    if isinstance(error, (Throttled, ServerError)):
        return error.retry_after if error.retry_after is not None else True
    return isinstance(error, TransportError)


class CwsClient:
    """An async client of one CWS endpoint and account.

    `transport` replaces the network, e.g. with an `httpx.ASGITransport` of the
    embedded emulator. `calls` counts calls by endpoint, retries included.
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        api_secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_rps: float | None = None,
        max_concurrent_calls: int = DEFAULT_CONCURRENT_CALLS,
        retry_attempts: int = RETRY_ATTEMPTS,
        retry_timeout: float = RETRY_TIMEOUT_SECONDS,
        on_retry: Callable[[str, Exception, int], None] | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.api_key = api_key
        # Calls go straight to the transport: httpx.AsyncClient's redirect, cookie
        # and auth layers cost more CPU per call than the emulator spends serving it.
        self._transport = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_concurrent_calls, max_keepalive_connections=max_concurrent_calls)
        )
        credentials = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode("ascii")
        # Lower-case byte pairs, as both httpx and an ASGI app take them.
        self._headers = [
            (b"host", urlsplit(self.endpoint).netloc.encode("ascii")),
            (b"accept", b"application/json"),
            (b"user-agent", b"cws-workload"),
            (b"authorization", f"Basic {credentials}".encode("ascii")),
        ]
        self._timeout = timeout
        # A transport that runs the API in this process may offer `call_in_process`
        # (see orchestrator/embedded.py), which skips httpx's request and response objects.
        self._call_in_process = getattr(transport, "call_in_process", None)
        self._limiter = RateLimiter(max_rps) if max_rps else None
        # Calls wait here rather than in httpx's pool, whose scan of queued requests
        # costs time on every response once hundreds are queued.
        self._in_flight = anyio.Semaphore(max_concurrent_calls)
        self._retry_attempts = retry_attempts
        self._retry_timeout = retry_timeout
        self._on_retry = on_retry
        self.calls: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> CwsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # Requests

    async def get_request(self, request_id: str) -> dict[str, Any]:
        body = await self._call("GET", f"/request/{request_id}", "GET /request/{id}", safe=True)
        if isinstance(body, list):
            if not body:
                raise NotFound(404, "NOT_FOUND", "empty request list", "GET", f"/request/{request_id}")
            return body[0]
        return body

    async def list_requests(self, *, cleanup: bool = False) -> list[dict[str, Any]]:
        params = {"cleanup": "true"} if cleanup else None
        return await self._call("GET", "/request", "GET /request", params=params, safe=True)

    # Instances

    async def get_instance(self, instance_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/instance/{instance_id}", "GET /instance/{id}", safe=True)

    async def refresh_instance(self, instance_id: str) -> dict[str, Any]:
        """Start a `{type}.retrieve` request that reads the status from the provider."""
        return await self._call(
            "GET",
            f"/instance/{instance_id}",
            "GET /instance/{id}?refresh",
            params={"refresh": "true"},
            safe=True,
        )

    async def list_instances(
        self,
        *,
        resource_type: str | None = None,
        provider: str | None = None,
        region: str | None = None,
        cleanup: bool = False,
    ) -> list[dict[str, Any]]:
        params = {
            key: value
            for key, value in (
                ("resourceType", resource_type),
                ("provider", provider),
                ("region", region),
                ("cleanup", "true" if cleanup else None),
            )
            if value is not None
        }
        return await self._call("GET", "/instance", "GET /instance", params=params or None, safe=True)

    async def create_instance(self, resource_uri: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send a create; may raise an ambiguous error after the server acted."""
        return await self._call("POST", f"/resource/{resource_uri}", "POST /resource", json=body, safe=False)

    async def create_image(self, vm_instance_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(
            "POST",
            f"/instance/{vm_instance_id}",
            "POST /instance/{id}?action=image",
            params={"action": "image"},
            json=body,
            safe=False,
        )

    async def instance_action(self, instance_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(
            "PUT",
            f"/instance/{instance_id}",
            f"PUT /instance/{{id}}?action={action}",
            params={"action": action},
            json=body,
            safe=False,
        )

    async def delete_instance(self, instance_id: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/instance/{instance_id}", "DELETE /instance/{id}", safe=True)

    async def check_connection(self) -> None:
        """Make one cheap authenticated call, so a wrong URL or key fails before any work starts.

        Raise TransportError when the endpoint cannot be reached after a few
        tries, and AuthenticationFailed when the credentials are rejected.
        """
        # No instance has this id, so a 404 shows that the endpoint responds and accepts the credentials.
        probe = "/instance/00000000-0000-4000-8000-000000000000"
        async for attempt in stamina.retry_context(
            on=_transient, attempts=PREFLIGHT_ATTEMPTS, timeout=RETRY_TIMEOUT_SECONDS, wait_initial=0.2, wait_max=2.0
        ):
            with attempt:
                try:
                    await self._send_once("GET", probe, "GET /instance/{id}", None, None, timeout=PREFLIGHT_TIMEOUT_SECONDS)
                except NotFound:
                    return
                except TransportError as error:
                    if "timed out" in str(error):
                        raise TransportError(
                            f"{self.endpoint} accepted the connection but sent no response within "
                            f"{PREFLIGHT_TIMEOUT_SECONDS:.0f} s; check that it is a CWS instance API endpoint "
                            "and that it is not overloaded",
                            method=error.method,
                            url=error.url,
                            maybe_acted=False,
                        ) from None
                    raise

    async def get_catalog(self) -> dict[str, Any] | None:
        """Return the endpoint's catalog, or None when it offers none."""
        try:
            return await self._call("GET", "/catalog", "GET /catalog", safe=True)
        except (NotFound, BadRequest):
            return None

    # Transport

    async def _call(
        self,
        method: str,
        path: str,
        endpoint_name: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        safe: bool,
    ) -> Any:
        retry_on = _transient if safe else _not_acted
        # Most calls succeed at once, so the first attempt is sent without the retry machinery.
        try:
            return await self._send_once(method, path, endpoint_name, params, json)
        except Exception as error:
            retryable = retry_on(error)
            if not retryable or self._retry_attempts <= 1:
                raise
            if self._on_retry is not None:
                self._on_retry(endpoint_name, error, 1)
        # The hook returns a float for a Retry-After header, else True.
        first_wait = (
            retryable
            if isinstance(retryable, float)
            else RETRY_WAIT_INITIAL_SECONDS + random.uniform(0, RETRY_WAIT_JITTER_SECONDS)
        )
        await anyio.sleep(first_wait)
        attempt_number = 1
        async for attempt in stamina.retry_context(
            on=retry_on,
            attempts=self._retry_attempts - 1,
            timeout=max(0.0, self._retry_timeout - first_wait),
            wait_initial=RETRY_WAIT_INITIAL_SECONDS,
            wait_max=RETRY_WAIT_MAX_SECONDS,
            wait_jitter=RETRY_WAIT_JITTER_SECONDS,
        ):
            with attempt:
                attempt_number += 1
                self.retries[endpoint_name] += 1
                try:
                    return await self._send_once(method, path, endpoint_name, params, json)
                except Exception as error:
                    retryable = retry_on(error)
                    if self._on_retry is not None and retryable and attempt_number < self._retry_attempts:
                        self._on_retry(endpoint_name, error, attempt_number)
                    raise
        raise AssertionError("unreachable: stamina re-raises the last error")

    async def _send_once(
        self,
        method: str,
        path: str,
        endpoint_name: str,
        params: dict[str, str] | None,
        json: dict[str, Any] | None,
        *,
        timeout: float | None = None,
    ) -> Any:
        if self._limiter is not None:
            await self._limiter.acquire()
        self.calls[endpoint_name] += 1
        # Ids and resource URIs go into the path; a '?', '#' or '%' in one must reach the server as written.
        path = quote(path, safe=_PATH_SAFE)
        url = self.endpoint + "/api" + path
        seconds = self._timeout if timeout is None else timeout
        headers = self._headers
        content = None
        if json is not None:
            content = json_module.dumps(json).encode()
            headers = [
                *headers,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode("ascii")),
            ]
        query = "?" + urlencode(params) if params else ""
        response: httpx.Response | None = None
        try:
            async with self._in_flight:
                if self._call_in_process is not None:
                    status, response_headers, body = await self._call_in_process(
                        method, "/api" + path + query, headers, content or b""
                    )
                else:
                    request = httpx.Request(
                        method,
                        url + query,
                        headers=headers,
                        content=content,
                        extensions={
                            "timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
                        },
                    )
                    response = await self._transport.handle_async_request(request)
                    try:
                        body = await response.aread()
                    finally:
                        await response.aclose()
                    status = response.status_code
        except httpx.ConnectError as error:
            raise TransportError(
                f"cannot connect to {self.endpoint}: {error or 'connection refused'}; "
                "check that the endpoint is running and the URL is right",
                method=method,
                url=url,
                maybe_acted=False,
            ) from None
        except httpx.TimeoutException as error:
            raise TransportError(
                f"{method} {url} timed out ({type(error).__name__})",
                method=method,
                url=url,
                maybe_acted=not isinstance(error, (httpx.ConnectTimeout, httpx.PoolTimeout)),
            ) from None
        except httpx.TransportError as error:
            raise TransportError(
                f"{method} {url} got no complete response: {error or type(error).__name__}",
                method=method,
                url=url,
                maybe_acted=True,
            ) from None

        if status >= 400:
            if response is None:
                response = httpx.Response(status, headers=response_headers, content=body)
            raise _api_error(response, method, url)
        try:
            return json_module.loads(body)
        except ValueError:
            raise TransportError(
                f"{method} {url} returned a body that is not JSON (status {status})",
                method=method,
                url=url,
                maybe_acted=True,
            ) from None


def _api_error(response: httpx.Response, method: str, url: str) -> ApiError:
    code, message = "HTTP_ERROR", response.reason_phrase or "error"
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code = str(error.get("code", code))
        message = str(error.get("message", message))
    except ValueError:
        pass
    status = response.status_code
    retry_after = _retry_after(response)
    if status == 429:
        return Throttled(status, code, message, method, url, retry_after=retry_after)
    if status >= 500:
        return ServerError(status, code, message, method, url, retry_after=retry_after)
    error_class = STATUS_ERRORS.get(status, ApiError)
    return error_class(status, code, message, method, url)
