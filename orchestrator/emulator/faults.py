"""Fault injection: which calls go wrong, drawn from a seeded generator, and the counts of what happened.

Call faults are drawn per call as one roll over exclusive outcomes, in this
order: `throttle` (429, not acted on), `server_error` (equal odds of 503 before
acting and 500 after acting), `dropped_response` (acted on, then the connection
is dropped). `slow_response` is drawn on its own roll. Request faults are drawn
when a request is created: `lost_request` (never finishes, and with
probability `lost_request_created` takes effect anyway) or `failed_request`.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import structlog

from orchestrator.emulator.profile import FaultSettings
from orchestrator.emulator.service import FAILED_FAULT, LOST, LOST_APPLIED

logger = structlog.get_logger("orchestrator.emulator")


@dataclass(frozen=True)
class CallFaults:
    """The faults drawn for one call."""

    before_acting: str | None = None  # "throttle" or "unavailable"
    after_acting: str | None = None  # "internal_error" or "dropped_response"
    slow: bool = False
    request_fault: str | None = None  # service.LOST, LOST_APPLIED or FAILED_FAULT


NO_FAULTS = CallFaults()


class FaultInjector:
    """Draws faults for calls from the current settings, which can change at run time."""

    def __init__(self, settings: FaultSettings, seed: int | None) -> None:
        self._settings = settings
        self._rng = random.Random(f"faults:{seed}") if seed is not None else random.Random()
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def update(self, changes: Any) -> FaultSettings:
        """Apply a partial update of the fault settings; raises `ProfileError` on a bad value."""
        with self._lock:
            self._settings = self._settings.updated(changes, "faults")
            settings = self._settings
        logger.info("faults.updated", **{key: value for key, value in settings.to_dict().items() if value})
        return settings

    def count_call(self, endpoint: str) -> None:
        self.calls[endpoint] += 1

    def draw(self, action: str, *, creates_request: bool) -> CallFaults:
        """Draw the faults of one call on `action`; calls that create no request get no request fault."""
        settings = self._settings
        if not settings.applies_to(action) or not _any_fault(settings):
            return NO_FAULTS

        with self._lock:
            rng = self._rng
            before_acting = after_acting = None
            roll = rng.random()
            if roll < settings.throttle:
                before_acting = "throttle"
            elif roll < settings.throttle + settings.server_error:
                if rng.random() < 0.5:
                    before_acting = "unavailable"
                else:
                    after_acting = "internal_error"
            elif roll < settings.throttle + settings.server_error + settings.dropped_response:
                after_acting = "dropped_response"

            # Skipped while slow_response is 0, so that a profile without slow
            # responses draws the other faults as if this fault did not exist.
            slow = settings.slow_response > 0 and rng.random() < settings.slow_response

            request_fault = None
            if creates_request and before_acting is None:
                roll = rng.random()
                if roll < settings.lost_request:
                    request_fault = LOST_APPLIED if rng.random() < settings.lost_request_created else LOST
                elif roll < settings.lost_request + settings.failed_request:
                    request_fault = FAILED_FAULT

        faults = CallFaults(before_acting, after_acting, slow, request_fault)
        for kind in (before_acting, after_acting, request_fault, "slow_response" if slow else None):
            if kind is not None:
                self.injected[kind] += 1
                logger.info("fault.injected", kind=kind, action=action)
        return faults

    def stats(self) -> dict[str, Any]:
        return {"calls": dict(self.calls), "faults": dict(self.injected)}


def _any_fault(settings: FaultSettings) -> bool:
    return any(
        (
            settings.throttle,
            settings.server_error,
            settings.dropped_response,
            settings.slow_response,
            settings.lost_request,
            settings.failed_request,
        )
    )

