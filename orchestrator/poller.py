"""Following asynchronous requests: when to poll, and when a request counts as lost.

The first poll of a request goes out when the request is expected to finish:
the smoothed duration observed on earlier runs for the same action and
resource URI (kept in the state). With no observation yet, it goes out after
`FIRST_POLL_SECONDS`. After that, each interval is a fraction
(`BACKOFF_FRACTION`) of the time waited so far, with jitter, at least
`MIN_INTERVAL_SECONDS` and at most `MAX_INTERVAL_SECONDS`.

So a request that finishes at its expected time is noticed by the first poll,
and one that finishes later is noticed at most
max(MIN_INTERVAL_SECONDS, BACKOFF_FRACTION × (1 + JITTER_FRACTION) × time waited),
and never more than MAX_INTERVAL_SECONDS, after it finished.

When nothing is learnt yet and several requests of one action and resource
URI are followed at once, only the first is polled on that schedule. The
others wait until its duration is known and are then polled at their own
expected end. Meanwhile each waits `FOLLOWER_BACKOFF_FRACTION` of its time
waited between polls, so they spend few calls.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from orchestrator.client import CwsClient
from orchestrator.clock import Clock

FIRST_POLL_SECONDS = 0.2
MIN_INTERVAL_SECONDS = 0.1
MAX_INTERVAL_SECONDS = 5.0
BACKOFF_FRACTION = 0.2
FOLLOWER_BACKOFF_FRACTION = 1.0
JITTER_FRACTION = 0.1
# A first poll that already finds the request finished may have come late;
# the observation is shortened by this factor so the next run probes a little earlier.
EARLY_PROBE_FACTOR = 0.98
# Margin added to an expected duration before the first check.
EXPECTED_MARGIN_SECONDS = 0.05
EXPECTED_MARGIN_FRACTION = 0.02
# Weight of the newest observation in a smoothed duration; the SQLite state uses the same.
SMOOTHING = 0.3
# A first refresh of a booting VM or building image is timed to end this margin after the
# expected end, because one that ends just before it costs a whole retrieve more.
READY_MARGIN_SECONDS = 0.03
READY_MARGIN_FRACTION = 0.01
# A first refresh that finds the instance ready gives only an upper bound. The time learnt
# from it is the refresh's time less the margin, times this factor, so that the estimate
# drifts down slowly until a refresh comes too early and shows where the end is.
READY_PROBE_FACTOR = 0.999
# After a first refresh that came just before the expected end, the next waits this fraction of it.
NEAR_MISS_FRACTION = 0.02


class RequestLost(Exception):
    """A request still `in-progress` at its deadline."""

    def __init__(self, request: dict[str, Any], waited_seconds: float) -> None:
        super().__init__(f"request {request.get('requestId')} still in-progress after {waited_seconds:.1f} s")
        self.request = request
        self.waited_seconds = waited_seconds


class RequestVanished(Exception):
    """The API returned 404 for a request being followed, because another client cleaned it up."""


def request_seconds(request: dict[str, Any]) -> float | None:
    """Return how long a finished request took by the server's own stamps, or None without them.

    The server's `updated - created` leaves out this client's polling delay
    and event-loop lag, which would otherwise inflate what is learnt.
    """
    try:
        created = dt.datetime.fromisoformat(str(request["created"]).replace("Z", "+00:00"))
        updated = dt.datetime.fromisoformat(str(request["updated"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    seconds = (updated - created).total_seconds()
    return seconds if seconds >= 0 else None


def expected_delay(expected: float) -> float:
    """Return when to check a request expected to take `expected` seconds, counted from sending it.

    The server stamps `created` a little after the client sent the call, so a
    check at exactly the expected time often comes just before the request
    ends; the margin makes the first check the one that finds it done.
    """
    return expected + max(EXPECTED_MARGIN_SECONDS, EXPECTED_MARGIN_FRACTION * expected)


def ready_margin(expected: float) -> float:
    """Return how long after its expected end a boot or build is first checked."""
    return max(READY_MARGIN_SECONDS, READY_MARGIN_FRACTION * expected)


def follower_interval(waited: float) -> float:
    """Return the wait before the next poll of a request that waits for another's duration."""
    return min(MAX_INTERVAL_SECONDS, max(MIN_INTERVAL_SECONDS, FOLLOWER_BACKOFF_FRACTION * waited))


def next_interval(waited: float, rng: random.Random) -> float:
    """Return the wait before the next poll of a request already waited on for `waited` seconds."""
    base = max(MIN_INTERVAL_SECONDS, waited * BACKOFF_FRACTION)
    jittered = base * (1 + rng.uniform(-JITTER_FRACTION, JITTER_FRACTION))
    return min(MAX_INTERVAL_SECONDS, max(MIN_INTERVAL_SECONDS, jittered))


@dataclass
class Expectations:
    """Smoothed durations in seconds by (action, resource URI), learnt across runs."""

    durations: dict[tuple[str, str], float] = field(default_factory=dict)
    # Every observation of this run, in order, for a state that stores them all at the end.
    observed: list[tuple[str, str, float]] = field(default_factory=list)
    # Keys with nothing learnt whose duration one followed request is finding out, and the
    # events set when a duration for a key is learnt during the run.
    exploring: set[tuple[str, str]] = field(default_factory=set)
    learnt_events: dict[tuple[str, str], anyio.Event] = field(default_factory=dict)

    # Per key, the longest duration this run has seen still under way (a lower bound)
    # and the shortest seen finished (an upper bound, when durations do not vary).
    floors: dict[tuple[str, str], float] = field(default_factory=dict)
    ceilings: dict[tuple[str, str], float] = field(default_factory=dict)

    def learnt_event(self, action: str, resource_uri: str) -> anyio.Event:
        """Return an event that is set once a duration for the key is known in this run."""
        key = (action, resource_uri)
        event = self.learnt_events.get(key)
        if event is None:
            event = self.learnt_events[key] = anyio.Event()
        if key in self.durations:
            event.set()
        return event

    def get(self, action: str, resource_uri: str) -> float | None:
        key = (action, resource_uri)
        duration = self.durations.get(key)
        floor = self.floors.get(key)
        if floor is None:
            return duration
        return max(duration or 0.0, floor + ready_margin(floor))

    def observe_transient(self, action: str, resource_uri: str, seconds: float) -> None:
        """Note that an instance was still transient `seconds` after it was created, by the server's clock."""
        key = (action, resource_uri)
        self.floors[key] = max(self.floors.get(key, 0.0), seconds)

    def observe_ready(
        self, action: str, resource_uri: str, seconds: float, last_transient: float | None
    ) -> None:
        """Fold in a boot or build seen finished `seconds` after the create, by the server's clock.

        `seconds` is an upper bound on the duration. Without `last_transient`
        the refresh was the first, timed a margin past the expected end, and
        that margin is taken off. With `last_transient`, the elapsed time of
        the refresh before, the duration lies between the two, and the run's
        other observations may narrow that interval. The point learnt is a
        quarter of the way up it, and at least a margin above its bottom.
        """
        key = (action, resource_uri)
        floor = self.floors.get(key)
        ceiling = min(seconds, self.ceilings.get(key, seconds))
        self.ceilings[key] = ceiling
        if last_transient is None:
            learnt = (seconds - ready_margin(seconds)) * READY_PROBE_FACTOR
            if floor is not None and floor < seconds:
                learnt = max(learnt, floor + ready_margin(floor))
        else:
            lower = max(last_transient, floor or 0.0)
            upper = ceiling if lower < ceiling else seconds
            learnt = lower + max(ready_margin(lower), (upper - lower) / 4) if lower < upper else seconds
        self.observe(action, resource_uri, learnt, first_try=False, server_stamped=True)

    def observe(
        self, action: str, resource_uri: str, seconds: float, *, first_try: bool, server_stamped: bool = False
    ) -> None:
        """Add one observed duration to `observed`, which the state folds into its smoothed one after the run.

        A duration from the server's own stamps also updates this run's
        estimates at once. One measured on this side includes polling delay and
        event-loop lag, which grow with the run's size, so it waits for the next run.
        """
        if first_try:
            seconds *= EARLY_PROBE_FACTOR
        if server_stamped:
            key = (action, resource_uri)
            previous = self.durations.get(key)
            self.durations[key] = seconds if previous is None else previous + SMOOTHING * (seconds - previous)
            event = self.learnt_events.get(key)
            if event is not None:
                event.set()
        self.observed.append((action, resource_uri, seconds))


class Poller:
    """Follows requests of one run with the schedule described in this module's docstring."""

    def __init__(self, client: CwsClient, clock: Clock, expectations: Expectations, seed: int | None = None):
        self.client = client
        self.clock = clock
        self.expectations = expectations
        self._rng = random.Random(seed)

    async def follow(
        self,
        request: dict[str, Any],
        *,
        action: str,
        resource_uri: str,
        sent_at: float,
        deadline_at: float,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a request until it is completed or failed and return it.

        Raise RequestLost at the deadline and RequestVanished on 404.
        """
        request_id = request["requestId"]
        if request.get("requestStatus") not in (None, "in-progress"):
            return request
        expected = self.expectations.get(action, resource_uri)
        key = (action, resource_uri)
        leads = expected is None and key not in self.expectations.exploring
        if leads:
            self.expectations.exploring.add(key)
        try:
            return await self._poll(request_id, action, resource_uri, sent_at, deadline_at, on_poll, expected, leads)
        finally:
            if leads:
                self.expectations.exploring.discard(key)

    async def _poll(
        self,
        request_id: str,
        action: str,
        resource_uri: str,
        sent_at: float,
        deadline_at: float,
        on_poll: Callable[[dict[str, Any]], None] | None,
        expected: float | None,
        leads: bool,
    ) -> dict[str, Any]:
        from orchestrator.errors import NotFound

        next_poll = sent_at + (expected_delay(expected) if expected is not None else FIRST_POLL_SECONDS)
        polls = 0
        while True:
            if expected is None and not leads:
                await self._sleep_or_learn(min(next_poll, deadline_at), action, resource_uri)
                expected = self.expectations.get(action, resource_uri)
                if expected is not None:
                    # Another request of the same kind finished first: poll at this one's expected end.
                    await self.clock.sleep_until(min(next_poll, sent_at + expected_delay(expected), deadline_at))
            else:
                await self.clock.sleep_until(min(next_poll, deadline_at))
            try:
                current = await self.client.get_request(request_id)
            except NotFound:
                raise RequestVanished(request_id) from None
            polls += 1
            if on_poll is not None:
                on_poll(current)
            now = self.clock.now()
            if current.get("requestStatus") != "in-progress":
                stamped = request_seconds(current)
                if stamped is not None:
                    self.expectations.observe(action, resource_uri, stamped, first_try=False, server_stamped=True)
                else:
                    self.expectations.observe(action, resource_uri, now - sent_at, first_try=polls == 1)
                return current
            if now >= deadline_at:
                raise RequestLost(current, now - sent_at)
            if expected is None and not leads:
                next_poll = now + follower_interval(now - sent_at)
            else:
                next_poll = now + next_interval(now - sent_at, self._rng)

    async def _sleep_or_learn(self, deadline: float, action: str, resource_uri: str) -> None:
        """Sleep until `deadline`, or until a duration for the action and resource URI is learnt."""
        learnt = self.expectations.learnt_event(action, resource_uri)
        if learnt.is_set():
            return
        async with anyio.create_task_group() as group:

            async def wake_when_learnt() -> None:
                await learnt.wait()
                group.cancel_scope.cancel()

            group.start_soon(wake_when_learnt)
            await self.clock.sleep_until(deadline)
            group.cancel_scope.cancel()
