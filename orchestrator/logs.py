"""structlog set-up for the CLI: key-value or JSON lines on stderr, with secrets removed."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import stamina.instrumentation
import structlog

# Keys whose values never reach a log line, wherever they are nested.
SECRET_KEYS = frozenset({"privateKey", "password", "api_secret", "secret", "pass", "authorization"})
HIDDEN = "<HIDDEN>"


def redact(value: Any) -> Any:
    """Return a copy of value with every secret key's value replaced by <HIDDEN>."""
    if isinstance(value, Mapping):
        return {
            key: HIDDEN if isinstance(key, str) and key in SECRET_KEYS else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _redact_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return redact(event_dict)


def configure_logging(level: str = "warning", *, json_lines: bool = False, stream: TextIO | None = None) -> None:
    """Route structlog to `stream` (stderr by default) at `level`, secrets redacted."""
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.WARNING
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    )
    # Retries are reported as `retry` events of the run, so stamina's own log lines would repeat them.
    stamina.instrumentation.set_on_retry_hooks([])
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
