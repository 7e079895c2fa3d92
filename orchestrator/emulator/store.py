"""SQLite storage of requests and instances.

Each object is one row: the columns the emulator queries on, plus the wire
document as JSON text (`doc`) and the emulator's own bookkeeping as JSON text
(`work` for a request, `internal` for an instance). Request documents are
stored with secrets already replaced by `<HIDDEN>`, so reads return them as
stored.

The database runs in WAL mode with a busy timeout, so several processes can
share one file: each reads what the others committed. Writers take the write
lock up front (`BEGIN IMMEDIATE`), so two processes never settle the same
request twice.

A `Store` is not thread-safe: its owner serialises calls.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MILLISECONDS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id  TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    instance_id TEXT,
    action      TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    due_at      REAL,
    finished_at REAL,
    fault       TEXT,
    doc         TEXT NOT NULL,
    work        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_owner ON requests (owner_id, created_at);
CREATE INDEX IF NOT EXISTS requests_by_due ON requests (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_by_finished ON requests (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS instances (
    instance_id   TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    provider      TEXT NOT NULL,
    region        TEXT NOT NULL,
    resource_uri  TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    deleted_at    REAL,
    doc           TEXT NOT NULL,
    internal      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_owner ON instances (owner_id, resource_type, created_at);
CREATE INDEX IF NOT EXISTS instances_by_deleted ON instances (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


def dump_json(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


@dataclass
class RequestRow:
    """A stored request: its queried columns, wire document and pending work."""

    request_id: str
    owner_id: str
    instance_id: str | None
    action: str
    status: str
    created_at: float
    due_at: float | None
    fault: str | None
    doc: dict[str, Any]
    work: dict[str, Any]


@dataclass
class InstanceRow:
    """A stored instance: its queried columns, wire document and internal state."""

    instance_id: str
    owner_id: str
    resource_type: str
    provider: str
    region: str
    resource_uri: str
    status: str
    created_at: float
    deleted_at: float | None
    doc: dict[str, Any]
    internal: dict[str, Any]


_REQUEST_COLUMNS = "request_id, owner_id, instance_id, action, status, created_at, due_at, fault, doc, work"
_INSTANCE_COLUMNS = (
    "instance_id, owner_id, resource_type, provider, region, resource_uri, status, created_at, deleted_at, doc, internal"
)


def _request_row(row: tuple[Any, ...]) -> RequestRow:
    request_id, owner_id, instance_id, action, status, created_at, due_at, fault, doc, work = row
    return RequestRow(
        request_id=request_id,
        owner_id=owner_id,
        instance_id=instance_id,
        action=action,
        status=status,
        created_at=created_at,
        due_at=due_at,
        fault=fault,
        doc=json.loads(doc),
        work=json.loads(work),
    )


def _instance_row(row: tuple[Any, ...]) -> InstanceRow:
    instance_id, owner_id, resource_type, provider, region, resource_uri, status, created_at, deleted_at, doc, internal = row
    return InstanceRow(
        instance_id=instance_id,
        owner_id=owner_id,
        resource_type=resource_type,
        provider=provider,
        region=region,
        resource_uri=resource_uri,
        status=status,
        created_at=created_at,
        deleted_at=deleted_at,
        doc=json.loads(doc),
        internal=json.loads(internal),
    )


class Store:
    """Requests, instances and id counters in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The store holds private keys and passwords in full, so only its owner may read it;
        # SQLite gives the -wal and -shm files the database file's mode.
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        # Autocommit mode: reads see the latest commit of any process, and
        # writes open their transaction explicitly with `transaction()`.
        self._connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MILLISECONDS}")
        self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.execute("PRAGMA synchronous = NORMAL")
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._connection.execute(statement)
            self._connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection, which also folds the WAL back into the database file."""
        self._connection.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block as one write transaction, taking the write lock at its start."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    # Requests

    def insert_request(self, row: RequestRow) -> str:
        """Insert a new request and return its document as stored."""
        doc = dump_json(row.doc)
        self._connection.execute(
            f"INSERT INTO requests ({_REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.request_id,
                row.owner_id,
                row.instance_id,
                row.action,
                row.status,
                row.created_at,
                row.due_at,
                row.fault,
                doc,
                dump_json(row.work),
            ),
        )
        return doc

    def request_document(self, owner_id: str, request_id: str) -> str | None:
        found = self._connection.execute(
            "SELECT doc FROM requests WHERE request_id = ? AND owner_id = ?", (request_id, owner_id)
        ).fetchone()
        return found[0] if found else None

    def request_documents(self, owner_id: str, *, in_progress_only: bool = False) -> list[str]:
        query = "SELECT doc FROM requests WHERE owner_id = ?"
        if in_progress_only:
            query += " AND status = 'in-progress'"
        rows = self._connection.execute(query + " ORDER BY created_at, rowid", (owner_id,)).fetchall()
        return [row[0] for row in rows]

    def remove_finished_requests(self, owner_id: str) -> int:
        cursor = self._connection.execute(
            "DELETE FROM requests WHERE owner_id = ? AND status != 'in-progress'", (owner_id,)
        )
        return cursor.rowcount

    def has_due_request(self, now: float) -> bool:
        found = self._connection.execute(
            "SELECT 1 FROM requests WHERE due_at IS NOT NULL AND due_at <= ? LIMIT 1", (now,)
        ).fetchone()
        return found is not None

    def due_requests(self, now: float) -> list[RequestRow]:
        """Requests due by `now` and not yet settled, in due order."""
        rows = self._connection.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at, rowid",
            (now,),
        ).fetchall()
        return [_request_row(row) for row in rows]

    def update_request(self, row: RequestRow, *, finished_at: float | None) -> None:
        """Write back a settled request; `due_at` None takes it out of the settling queue."""
        self._connection.execute(
            "UPDATE requests SET instance_id = ?, status = ?, due_at = ?, finished_at = ?, doc = ?, work = ? "
            "WHERE request_id = ?",
            (
                row.instance_id,
                row.status,
                row.due_at,
                finished_at,
                dump_json(row.doc),
                dump_json(row.work),
                row.request_id,
            ),
        )

    # Instances

    def instance(self, owner_id: str, instance_id: str) -> InstanceRow | None:
        found = self._connection.execute(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE instance_id = ? AND owner_id = ?",
            (instance_id, owner_id),
        ).fetchone()
        return _instance_row(found) if found else None

    def instance_document(self, owner_id: str, instance_id: str) -> str | None:
        found = self._connection.execute(
            "SELECT doc FROM instances WHERE instance_id = ? AND owner_id = ?", (instance_id, owner_id)
        ).fetchone()
        return found[0] if found else None

    def instance_documents(
        self,
        owner_id: str,
        *,
        resource_type: str | None = None,
        provider: str | None = None,
        region: str | None = None,
    ) -> list[str]:
        query = "SELECT doc FROM instances WHERE owner_id = ?"
        arguments: list[Any] = [owner_id]
        for column, value in (("resource_type", resource_type), ("provider", provider), ("region", region)):
            if value is not None:
                query += f" AND {column} = ?"
                arguments.append(value)
        rows = self._connection.execute(query + " ORDER BY created_at, rowid", arguments).fetchall()
        return [row[0] for row in rows]

    def find_instance_by_uri(self, owner_id: str, resource_type: str, resource_uri: str) -> InstanceRow | None:
        found = self._connection.execute(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances "
            "WHERE owner_id = ? AND resource_type = ? AND resource_uri = ? AND status != 'deleted' "
            "ORDER BY created_at DESC LIMIT 1",
            (owner_id, resource_type, resource_uri),
        ).fetchone()
        return _instance_row(found) if found else None

    def save_instance(self, row: InstanceRow) -> None:
        """Insert or replace an instance."""
        self._connection.execute(
            f"INSERT OR REPLACE INTO instances ({_INSTANCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.instance_id,
                row.owner_id,
                row.resource_type,
                row.provider,
                row.region,
                row.resource_uri,
                row.status,
                row.created_at,
                row.deleted_at,
                dump_json(row.doc),
                dump_json(row.internal),
            ),
        )

    def remove_deleted_instances(self, owner_id: str) -> int:
        cursor = self._connection.execute(
            "DELETE FROM instances WHERE owner_id = ? AND status = 'deleted'", (owner_id,)
        )
        return cursor.rowcount

    def live_vms_naming(self, owner_id: str, instance_id: str) -> list[InstanceRow]:
        """VMs whose stored status is not `deleted` and whose parameters name `instance_id` as key pair or security group."""
        rows = self._connection.execute(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances "
            "WHERE owner_id = ? AND resource_type = 'vm' AND status != 'deleted' AND ("
            "  json_extract(doc, '$.parameters.keyPairId') = ?"
            "  OR EXISTS (SELECT 1 FROM json_each(doc, '$.parameters.securityGroupIds') WHERE value = ?)"
            ") ORDER BY created_at",
            (owner_id, instance_id, instance_id),
        ).fetchall()
        return [_instance_row(row) for row in rows]

    def attached_volumes(self, owner_id: str, vm_instance_id: str) -> list[InstanceRow]:
        """Volumes whose stored status is `attached` to the VM `vm_instance_id`."""
        rows = self._connection.execute(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances "
            "WHERE owner_id = ? AND resource_type = 'vs' AND status = 'attached' "
            "AND json_extract(doc, '$.attributes.virtualMachineId') = ? ORDER BY created_at",
            (owner_id, vm_instance_id),
        ).fetchall()
        return [_instance_row(row) for row in rows]

    # Ids and retention

    def next_counter(self, name: str, first: int) -> int:
        """Return the next value of a named counter, `first` on its first use. Call inside a transaction."""
        self._connection.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + 1",
            (name, first),
        )
        return int(self._connection.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    def remove_expired(self, before: float) -> tuple[int, int]:
        """Remove requests finished and instances deleted before `before`; return how many of each."""
        requests = self._connection.execute("DELETE FROM requests WHERE finished_at < ?", (before,)).rowcount
        instances = self._connection.execute("DELETE FROM instances WHERE deleted_at < ?", (before,)).rowcount
        return requests, instances

    def has_expired(self, before: float) -> bool:
        found = self._connection.execute(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM requests WHERE finished_at < ?) "
            "OR EXISTS (SELECT 1 FROM instances WHERE deleted_at < ?)",
            (before, before),
        ).fetchone()
        return found is not None
