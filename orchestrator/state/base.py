"""The state interface: what exists, what was sent, and who holds the lock.

The engine talks only to `StateStore`. `SqliteStateStore` implements it for one
user; a store shared by a team (PostgreSQL) implements the same methods.

Three records carry the safety guarantees:
- an *operation* is the write-ahead journal entry of one create, delete or
  action: written before the call is sent, updated with the request id the
  moment the API returns it;
- an *owned instance* is every instance id the API ever returned for a node,
  or that was found by a create's client token; destroy deletes all of them;
- a *resource* is the node's current view: its live instance and attributes.
"""

from __future__ import annotations

import abc
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Resource status values.
PENDING = "pending"
CREATING = "creating"
CREATED = "created"
FAILED = "failed"
DELETING = "deleting"
DELETED = "deleted"

# Operation status values.
INTENT = "intent"
SENT = "sent"
COMPLETED = "completed"
OPERATION_FAILED = "failed"
LOST = "lost"
AMBIGUOUS = "ambiguous"
SUPERSEDED = "superseded"
UNRESOLVED_OPERATION_STATES = (INTENT, SENT, AMBIGUOUS, LOST)

# Owned-instance roles.
CURRENT = "current"
SUPERSEDED_INSTANCE = "superseded"


@dataclass
class ResourceRecord:
    """A node's last known state: its current instance and what it exposes to references."""

    workload: str
    address: str
    type: str
    resource_uri: str
    fingerprint: str
    status: str = PENDING
    instance_id: str | None = None
    instance_status: str | None = None
    instance: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    updated_at: float = 0.0


@dataclass
class Operation:
    """One journal entry: an intent to call the API, and what the call returned."""

    id: int
    run_id: str
    workload: str
    address: str
    action: str
    attempt: int
    token: str | None
    status: str
    request_id: str | None = None
    instance_id: str | None = None
    error: str | None = None
    started_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class OwnedInstance:
    workload: str
    address: str
    instance_id: str
    resource_type: str
    role: str
    token: str | None
    deleted: bool = False


@dataclass
class LockOwner:
    lock_id: str
    host: str
    pid: int
    started_at: float
    command: str

    def describe(self) -> str:
        return f"{self.command} by pid {self.pid} on {self.host} (lock id {self.lock_id})"

    def is_gone(self) -> bool:
        """Return True when the owner ran on this host and its process no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


@dataclass
class WorkloadRecord:
    name: str
    spec_path: str | None
    graph: dict[str, Any]
    outputs: dict[str, Any]
    updated_at: float


class StateStore(abc.ABC):
    """Everything the engine persists. Every write is durable when the method returns."""

    # Workloads

    @abc.abstractmethod
    def save_workload(self, name: str, spec_path: str | None, graph: dict[str, Any], outputs: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def owner_id(self, name: str) -> str:
        """Return the workload's random owner id, made on first use and kept for good."""

    @abc.abstractmethod
    def get_workload(self, name: str) -> WorkloadRecord | None: ...

    @abc.abstractmethod
    def list_workloads(self) -> list[str]: ...

    @abc.abstractmethod
    def forget_workload(self, name: str) -> None:
        """Remove a destroyed workload's graph and resources; keep its run history."""

    # Resources

    @abc.abstractmethod
    def get_resources(self, workload: str) -> dict[str, ResourceRecord]: ...

    @abc.abstractmethod
    def put_resource(self, record: ResourceRecord) -> None: ...

    @abc.abstractmethod
    def delete_resource(self, workload: str, address: str) -> None: ...

    # Journal

    @abc.abstractmethod
    def begin_operation(
        self, run_id: str, workload: str, address: str, action: str, attempt: int, token: str | None
    ) -> Operation:
        """Record the intent to send a call, before it is sent."""

    @abc.abstractmethod
    def update_operation(
        self,
        operation_id: int,
        *,
        status: str | None = None,
        request_id: str | None = None,
        instance_id: str | None = None,
        error: str | None = None,
    ) -> None: ...

    @abc.abstractmethod
    def open_operations(self, workload: str, address: str | None = None) -> list[Operation]:
        """Return operations whose outcome is not known: intent, sent, ambiguous or lost."""

    @abc.abstractmethod
    def operations(self, workload: str, address: str | None = None) -> list[Operation]: ...

    # Owned instances

    @abc.abstractmethod
    def add_owned_instance(self, instance: OwnedInstance) -> None: ...

    @abc.abstractmethod
    def owned_instances(self, workload: str, address: str | None = None, *, live_only: bool = True) -> list[OwnedInstance]: ...

    @abc.abstractmethod
    def mark_instance_deleted(self, workload: str, instance_id: str) -> None: ...

    @abc.abstractmethod
    def set_instance_role(self, workload: str, instance_id: str, role: str) -> None: ...

    # Locks

    @abc.abstractmethod
    def acquire_lock(self, workload: str, command: str) -> LockOwner:
        """Take the workload's lock or raise LockError naming the holder."""

    @abc.abstractmethod
    def release_lock(self, workload: str, lock_id: str) -> None: ...

    @abc.abstractmethod
    def force_unlock(self, workload: str, lock_id: str) -> LockOwner:
        """Release a lock whatever its owner; raise LockError when the id does not match."""

    @abc.abstractmethod
    def get_lock(self, workload: str) -> LockOwner | None: ...

    # Observed durations, for polling and ETAs

    @abc.abstractmethod
    def record_duration(self, action: str, resource_uri: str, seconds: float) -> None: ...

    def record_durations(self, observations: Iterable[tuple[str, str, float]]) -> None:
        """Fold many (action, resource URI, seconds) observations in, in order."""
        for action, resource_uri, seconds in observations:
            self.record_duration(action, resource_uri, seconds)

    @abc.abstractmethod
    def expected_durations(self) -> dict[tuple[str, str], float]:
        """Return the smoothed duration in seconds of each (action, resource URI) seen."""

    # Runs

    @abc.abstractmethod
    def record_run(self, run_id: str, workload: str, command: str, started_at: float, finished_at: float, result: str, summary: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def last_run(self, workload: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def close(self) -> None: ...
