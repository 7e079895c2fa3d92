"""Persistent state behind one interface; SQLite is the implementation shipped."""

from orchestrator.state.base import (
    LockOwner,
    Operation,
    OwnedInstance,
    ResourceRecord,
    StateStore,
    WorkloadRecord,
)
from orchestrator.state.sqlite import SqliteStateStore

__all__ = [
    "LockOwner",
    "Operation",
    "OwnedInstance",
    "ResourceRecord",
    "SqliteStateStore",
    "StateStore",
    "WorkloadRecord",
]
