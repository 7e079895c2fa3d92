"""Helpers for the emulator tests: an API client that moves the emulator's clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from orchestrator.emulator import ManualClock
from orchestrator.emulator.profile import Distribution, Profile
from tests.conftest import RunningEmulator

ZERO_DURATIONS = Profile(name="zero", durations={"default": Distribution("fixed", (0.0,))}, key_bits=1024)
"""A profile where every request settles on the next call and nothing boots or builds."""

# Longer than any duration of the tutorial profile, so one advance finishes anything.
PAST_TUTORIAL_DURATIONS_SECONDS = 400


@dataclass
class Api:
    """Calls of the instance API on a served emulator whose clock the test moves."""

    client: httpx.Client
    clock: ManualClock
    emulator: RunningEmulator

    def create(self, resource_uri: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post(f"/api/resource/{resource_uri}", json=body or {})
        assert response.status_code == 200, response.text
        return response.json()

    def request(self, request_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/request/{request_id}")
        assert response.status_code == 200, response.text
        documents = response.json()
        assert isinstance(documents, list)
        assert len(documents) == 1
        return documents[0]

    def finish(self, request: dict[str, Any], after_seconds: float = PAST_TUTORIAL_DURATIONS_SECONDS) -> dict[str, Any]:
        """Move the clock by `after_seconds`, then return the request, which must have finished."""
        self.clock.advance(after_seconds)
        finished = self.request(request["requestId"])
        assert finished["requestStatus"] != "in-progress", finished
        return finished

    def instance(self, instance_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/instance/{instance_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def refresh(self, instance_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/instance/{instance_id}", params={"refresh": "true"})
        assert response.status_code == 200, response.text
        return response.json()

    def delete(self, instance_id: str) -> dict[str, Any]:
        response = self.client.delete(f"/api/instance/{instance_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def act(self, instance_id: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.put(f"/api/instance/{instance_id}", params={"action": action}, json=body or {})
        assert response.status_code == 200, response.text
        return response.json()

    def provision(self, resource_uri: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create an instance and refresh it until it leaves its transient status; return it."""
        created = self.finish(self.create(resource_uri, body))
        assert created["requestStatus"] == "completed", created
        instance_id = created["instanceId"]
        if self.instance(instance_id)["attributes"]["transientStatus"]:
            self.finish(self.refresh(instance_id))
        return self.instance(instance_id)


@pytest.fixture
def api(emulator_server_factory: Callable[..., RunningEmulator], manual_clock: ManualClock) -> Api:
    """The tutorial profile on a served emulator with a manual clock, as the demo account."""
    emulator = emulator_server_factory(profile="tutorial", clock=manual_clock)
    return Api(client=emulator.client(), clock=manual_clock, emulator=emulator)
