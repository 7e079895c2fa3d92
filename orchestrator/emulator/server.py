"""Serving the emulator under uvicorn, in the foreground or from a background thread."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator
from pathlib import Path

import structlog
import uvicorn
from fastapi import FastAPI

from orchestrator.emulator.app import create_app
from orchestrator.emulator.errors import DroppedResponse
from orchestrator.emulator.profile import Profile

logger = structlog.get_logger("orchestrator.emulator")

DEFAULT_DB_PATH = Path(".cws/emulator.db")
GRACEFUL_SHUTDOWN_SECONDS = 5


class _HideDroppedResponses(logging.Filter):
    """Drop uvicorn's traceback for the dropped-response fault, which the app raises on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedResponse))


_HIDE_DROPPED_RESPONSES = _HideDroppedResponses()


class EmulatorServer(uvicorn.Server):
    """A uvicorn server for an emulator app that reports its URL once listening.

    `run()` blocks until `stop()` is called or, when run in the main thread,
    until SIGINT or SIGTERM arrives. From another thread, wait on `ready`
    before using `url`.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_ready: Callable[[str], None] | None = None,
        access_log: bool = False,
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            access_log=access_log,
            # Leave the process's logging configuration alone.
            log_config=None,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            # The emulator is served directly, never behind a proxy, and these
            # headers cost measurable time per call.
            proxy_headers=False,
            server_header=False,
            date_header=False,
        )
        super().__init__(config)
        self.app = app
        self.url: str | None = None
        self.ready = threading.Event()
        self._on_ready = on_ready
        logging.getLogger("uvicorn.error").addFilter(_HIDE_DROPPED_RESPONSES)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{port}"
        logger.info("emulator.listening", url=self.url)
        self.ready.set()
        if self._on_ready is not None:
            self._on_ready(self.url)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn 0.29 and later raise a caught SIGTERM again once shut down,
        # which would end the process before the store is closed. This
        # version only sets the server's exit flag.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Ask the server to finish its open calls and return from `run()`; safe from any thread."""
        self.should_exit = True


def _log_to_stderr() -> None:
    """Send structlog's lines to stderr, INFO and above, unless the program configured structlog itself.

    structlog's default writes to stdout, which a parent process may read only
    until the URL appears: once that pipe's buffer is full, every log call, and
    so the server, would block.
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    db_path: str | Path = DEFAULT_DB_PATH,
    profile: str | Path | Profile | None = None,
    seed: int | None = None,
    admin_key: str | None = None,
    on_ready: Callable[[str], None] | None = None,
    *,
    catalog_path: str | Path | None = None,
) -> None:
    """Serve the emulator under uvicorn until SIGINT or SIGTERM, then close the store.

    `on_ready(url)` is called once the server listens, with the real port when
    `port` is 0. Raises `ProfileError` or `CatalogError` before listening when
    the profile or catalog is invalid. Logs go to stderr unless structlog is
    already configured.
    """
    _log_to_stderr()
    app = create_app(db_path, profile=profile, seed=seed, admin_key=admin_key, catalog_path=catalog_path)
    server = EmulatorServer(app, host, port, on_ready=on_ready)
    try:
        server.run()
    finally:
        app.state.emulator.close()
        logger.info("emulator.stopped", db_path=str(db_path))
