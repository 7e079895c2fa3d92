"""Clocks and the wire format of timestamps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""A callable that returns the current time in epoch seconds."""


class ManualClock:
    """A clock that moves only when `advance` is called, for tests of timed behaviour.

    Pass it as `create_app(..., clock=clock)` and call `advance(seconds)` to let
    sampled durations pass without waiting.
    """

    def __init__(self, start_at: float = 1_700_000_000.0) -> None:
        self._now = start_at
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds}) was called")
        with self._lock:
            self._now += seconds
            return self._now


def format_timestamp(epoch_seconds: float) -> str:
    """Format epoch seconds as ISO 8601 UTC with milliseconds, e.g. `2014-01-09T22:51:39.039Z`."""
    milliseconds = int(epoch_seconds * 1000)
    seconds, fraction = divmod(milliseconds, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:03d}Z"
