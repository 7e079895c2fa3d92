"""The poller's schedule, driven by a manual clock: prompt notice with few calls."""

from datetime import UTC, datetime

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from orchestrator.clock import ManualClock
from orchestrator.poller import (
    BACKOFF_FRACTION,
    FIRST_POLL_SECONDS,
    JITTER_FRACTION,
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    READY_PROBE_FACTOR,
    Expectations,
    Poller,
    RequestLost,
    expected_delay,
    ready_margin,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class ScriptedRequests:
    """Stands in for the API: a request completes when the manual clock reaches finish_at.

    A served emulator cannot be driven by a manual clock from this side of the
    wire, so this is the one place the tests replace the client.
    """

    def __init__(self, clock: ManualClock, finish_at: float | None) -> None:
        self.clock = clock
        self.finish_at = finish_at
        self.polls: list[float] = []

    async def get_request(self, request_id: str) -> dict:
        self.polls.append(self.clock.now())
        done = self.finish_at is not None and self.clock.now() >= self.finish_at
        return {"requestId": request_id, "requestStatus": "completed" if done else "in-progress"}


async def drive(clock: ManualClock, until_done: anyio.Event, limit: int = 10_000) -> None:
    """Advance the clock to each sleeper's deadline in turn until the follower returns."""
    for _ in range(limit):
        await wait_all_tasks_blocked()
        if until_done.is_set():
            return
        deadline = clock.next_deadline()
        assert deadline is not None, "the follower is blocked without a timer"
        clock.advance(deadline - clock.now())
    raise AssertionError("follower did not finish")


async def follow(clock, api, expectations, deadline=600.0):
    poller = Poller(api, clock, expectations, seed=1)
    done = anyio.Event()
    outcome = {}

    async def run():
        try:
            outcome["request"] = await poller.follow(
                {"requestId": "r1", "requestStatus": "in-progress"},
                action="vm.create",
                resource_uri="vm/p/r/s",
                sent_at=clock.now(),
                deadline_at=clock.now() + deadline,
            )
        except RequestLost as error:
            outcome["lost"] = error
        done.set()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(run)
        await drive(clock, done)
    return outcome


async def test_known_duration_needs_one_poll():
    clock = ManualClock()
    api = ScriptedRequests(clock, finish_at=3.4)
    expectations = Expectations({("vm.create", "vm/p/r/s"): 3.4})
    outcome = await follow(clock, api, expectations)
    assert outcome["request"]["requestStatus"] == "completed"
    assert api.polls == [pytest.approx(expected_delay(3.4))]
    assert expectations.observed
    assert expectations.observed[0][0] == "vm.create"


async def test_unknown_duration_noticed_within_bound():
    clock = ManualClock()
    finish_at = 7.3
    api = ScriptedRequests(clock, finish_at=finish_at)
    outcome = await follow(clock, api, Expectations())
    assert outcome["request"]["requestStatus"] == "completed"
    assert api.polls[0] == pytest.approx(FIRST_POLL_SECONDS)
    lateness = api.polls[-1] - finish_at
    bound = max(MIN_INTERVAL_SECONDS, BACKOFF_FRACTION * (1 + JITTER_FRACTION) * finish_at)
    assert 0 <= lateness <= min(bound, MAX_INTERVAL_SECONDS) + 1e-9


async def test_long_request_polls_at_most_every_cap():
    clock = ManualClock()
    api = ScriptedRequests(clock, finish_at=400.0)
    await follow(clock, api, Expectations())
    gaps = [later - earlier for earlier, later in zip(api.polls, api.polls[1:])]
    assert max(gaps) <= MAX_INTERVAL_SECONDS + 1e-9
    assert api.polls[-1] - 400.0 <= MAX_INTERVAL_SECONDS + 1e-9


async def test_request_never_finishing_is_lost_at_deadline():
    clock = ManualClock()
    api = ScriptedRequests(clock, finish_at=None)
    outcome = await follow(clock, api, Expectations(), deadline=30.0)
    assert isinstance(outcome["lost"], RequestLost)
    assert api.polls[-1] == pytest.approx(30.0)


def test_ready_first_try_learns_less():
    expectations = Expectations()
    expectations.observe_ready("vm.stable", "vm/p/r/small", 10.0, None)
    learnt = [seconds for _, _, seconds in expectations.observed]
    expected = (10.0 - ready_margin(10.0)) * READY_PROBE_FACTOR
    assert learnt == [pytest.approx(expected)]
    assert learnt[0] < 10.0 - ready_margin(10.0)
    assert expectations.get("vm.stable", "vm/p/r/small") == pytest.approx(expected)


def test_ready_after_transient_learns_inside_bracket():
    expectations = Expectations()
    expectations.observe_ready("vm.stable", "vm/p/r/small", 8.0, 6.0)
    # A quarter of the way from the last transient refresh (6 s) to the ready one (8 s).
    assert expectations.get("vm.stable", "vm/p/r/small") == pytest.approx(6.5)


def test_ready_bracket_narrowed_by_earlier_ready():
    expectations = Expectations()
    expectations.observe_ready("vm.stable", "vm/p/r/small", 6.2, None)
    expectations.durations.clear()
    expectations.observe_ready("vm.stable", "vm/p/r/small", 8.0, 6.0)
    # The run already saw one ready at 6.2 s, so the bracket is 6 to 6.2 s and the margin decides.
    assert expectations.get("vm.stable", "vm/p/r/small") == pytest.approx(6.0 + ready_margin(6.0))


def test_transient_floor_raises_expectation():
    expectations = Expectations({("vm.stable", "vm/p/r/small"): 5.0})
    expectations.observe_transient("vm.stable", "vm/p/r/small", 6.0)
    assert expectations.get("vm.stable", "vm/p/r/small") > 6.0
    # A later ready observation learns the floor plus its margin, though 6.1 less its margin is below that.
    expectations.observe_ready("vm.stable", "vm/p/r/small", 6.1, None)
    assert expectations.get("vm.stable", "vm/p/r/small") > 6.0
    assert expectations.observed[0][2] == pytest.approx(6.0 + ready_margin(6.0))


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StampedRequests:
    """Stands in for the API with several requests, each sent at 0 and finishing at its own time."""

    def __init__(self, clock: ManualClock, finish_at: dict[str, float]) -> None:
        self.clock = clock
        self.finish_at = finish_at
        self.polls: dict[str, list[float]] = {request_id: [] for request_id in finish_at}

    async def get_request(self, request_id: str) -> dict:
        now = self.clock.now()
        self.polls[request_id].append(now)
        finish = self.finish_at[request_id]
        if now < finish:
            return {"requestId": request_id, "requestStatus": "in-progress", "created": stamp(0.0), "updated": stamp(0.0)}
        return {"requestId": request_id, "requestStatus": "completed", "created": stamp(0.0), "updated": stamp(finish)}


async def test_follower_waits_for_leader_duration():
    clock = ManualClock()
    api = StampedRequests(clock, {"first": 7.3, "second": 7.4})
    poller = Poller(api, clock, Expectations(), seed=1)
    done = {name: anyio.Event() for name in api.finish_at}

    async def run(name: str) -> None:
        await poller.follow(
            {"requestId": name, "requestStatus": "in-progress"},
            action="vm.create",
            resource_uri="vm/p/r/s",
            sent_at=0.0,
            deadline_at=600.0,
        )
        done[name].set()

    all_done = anyio.Event()

    async def wait_both() -> None:
        for event in done.values():
            await event.wait()
        all_done.set()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(run, "first")
        await wait_all_tasks_blocked()
        task_group.start_soon(run, "second")
        task_group.start_soon(wait_both)
        await drive(clock, all_done)

    first, second = api.polls["first"], api.polls["second"]
    assert len(second) * 2 < len(first)
    bound = max(MIN_INTERVAL_SECONDS, BACKOFF_FRACTION * (1 + JITTER_FRACTION) * 7.4)
    assert 0 <= second[-1] - 7.4 <= bound
    # The second request is polled once after the first one finished.
    assert len([at for at in second if at >= first[-1]]) == 1
