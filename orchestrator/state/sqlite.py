"""`StateStore` in one SQLite file (default `.cws/state.db`), readable only by its owner."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

from orchestrator.errors import ConfigError, LockError
from orchestrator.state.base import (
    UNRESOLVED_OPERATION_STATES,
    LockOwner,
    Operation,
    OwnedInstance,
    ResourceRecord,
    StateStore,
    WorkloadRecord,
)

log = structlog.get_logger("orchestrator.state")

SCHEMA_VERSION = 1
# Weight of the newest observation in the smoothed duration of an action; the poller uses the same.
DURATION_SMOOTHING = 0.3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workload_owners (
    name TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workloads (
    name TEXT PRIMARY KEY,
    spec_path TEXT,
    graph TEXT NOT NULL,
    outputs TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS resources (
    workload TEXT NOT NULL,
    address TEXT NOT NULL,
    type TEXT NOT NULL,
    resource_uri TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    instance_id TEXT,
    instance_status TEXT,
    instance TEXT NOT NULL,
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (workload, address)
);
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    workload TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    token TEXT,
    status TEXT NOT NULL,
    request_id TEXT,
    instance_id TEXT,
    error TEXT,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_by_node ON operations (workload, address, status);
CREATE TABLE IF NOT EXISTS owned_instances (
    workload TEXT NOT NULL,
    address TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    role TEXT NOT NULL,
    token TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workload, instance_id)
);
CREATE INDEX IF NOT EXISTS owned_by_node ON owned_instances (workload, address);
CREATE TABLE IF NOT EXISTS locks (
    workload TEXT PRIMARY KEY,
    lock_id TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    command TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS durations (
    action TEXT NOT NULL,
    resource_uri TEXT NOT NULL,
    samples INTEGER NOT NULL,
    smoothed REAL NOT NULL,
    PRIMARY KEY (action, resource_uri)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workload TEXT NOT NULL,
    command TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    result TEXT NOT NULL,
    summary TEXT NOT NULL
);
"""


def _create_private_file(path: Path) -> None:
    """Create the database file with mode 0600 so its secrets are never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        descriptor = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(descriptor)
    os.chmod(path, 0o600)


_RECORD_DURATION = (
    "INSERT INTO durations (action, resource_uri, samples, smoothed) VALUES (?, ?, 1, ?) "
    "ON CONFLICT (action, resource_uri) DO UPDATE SET samples = samples + 1, "
    "smoothed = smoothed + ? * (excluded.smoothed - smoothed)"
)


class SqliteStateStore(StateStore):
    """State in a SQLite file in WAL mode; every write commits before the method returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            _create_private_file(self.path)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(SCHEMA)
            self._check_schema_version()
        except sqlite3.DatabaseError as error:
            raise ConfigError(
                f"cannot open the state file {self.path}: {error}; "
                "point --state at a valid state file or a new path"
            ) from None
        except OSError as error:
            raise ConfigError(f"cannot create the state file {self.path}: {error}") from None
        for suffix in ("-wal", "-shm"):
            sidecar = Path(str(self.path) + suffix)
            if sidecar.exists():
                os.chmod(sidecar, 0o600)

    def _check_schema_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row["value"]) > SCHEMA_VERSION:
            raise ConfigError(
                f"the state file {self.path} has schema version {row['value']}, newer than this "
                f"cws-workload supports ({SCHEMA_VERSION}); upgrade cws-workload"
            )

    def close(self) -> None:
        self._db.close()

    # Workloads

    def save_workload(
        self, name: str, spec_path: str | None, graph: dict[str, Any], outputs: dict[str, Any]
    ) -> None:
        self._db.execute(
            "INSERT INTO workloads (name, spec_path, graph, outputs, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET spec_path = excluded.spec_path, graph = excluded.graph, "
            "outputs = excluded.outputs, updated_at = excluded.updated_at",
            (name, spec_path, json.dumps(graph), json.dumps(outputs), time.time()),
        )

    def owner_id(self, name: str) -> str:
        row = self._db.execute("SELECT owner_id FROM workload_owners WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return str(row["owner_id"])
        owner = uuid.uuid4().hex
        self._db.execute("INSERT OR IGNORE INTO workload_owners (name, owner_id) VALUES (?, ?)", (name, owner))
        return self.owner_id(name)

    def get_workload(self, name: str) -> WorkloadRecord | None:
        row = self._db.execute("SELECT * FROM workloads WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return WorkloadRecord(
            name=row["name"],
            spec_path=row["spec_path"],
            graph=json.loads(row["graph"]),
            outputs=json.loads(row["outputs"]),
            updated_at=row["updated_at"],
        )

    def list_workloads(self) -> list[str]:
        return [row["name"] for row in self._db.execute("SELECT name FROM workloads ORDER BY name")]

    def forget_workload(self, name: str) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM workloads WHERE name = ?", (name,))
            self._db.execute("DELETE FROM resources WHERE workload = ?", (name,))

    # Resources

    def get_resources(self, workload: str) -> dict[str, ResourceRecord]:
        rows = self._db.execute("SELECT * FROM resources WHERE workload = ?", (workload,))
        return {row["address"]: _resource_from_row(row) for row in rows}

    def put_resource(self, record: ResourceRecord) -> None:
        record.updated_at = time.time()
        self._db.execute(
            "INSERT INTO resources (workload, address, type, resource_uri, fingerprint, status, "
            "instance_id, instance_status, instance, error, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (workload, address) DO UPDATE SET type = excluded.type, "
            "resource_uri = excluded.resource_uri, fingerprint = excluded.fingerprint, "
            "status = excluded.status, instance_id = excluded.instance_id, "
            "instance_status = excluded.instance_status, instance = excluded.instance, "
            "error = excluded.error, updated_at = excluded.updated_at",
            (
                record.workload,
                record.address,
                record.type,
                record.resource_uri,
                record.fingerprint,
                record.status,
                record.instance_id,
                record.instance_status,
                json.dumps(record.instance),
                record.error,
                record.updated_at,
            ),
        )

    def delete_resource(self, workload: str, address: str) -> None:
        self._db.execute("DELETE FROM resources WHERE workload = ? AND address = ?", (workload, address))

    # Journal

    def begin_operation(
        self, run_id: str, workload: str, address: str, action: str, attempt: int, token: str | None
    ) -> Operation:
        now = time.time()
        cursor = self._db.execute(
            "INSERT INTO operations (run_id, workload, address, action, attempt, token, status, "
            "started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'intent', ?, ?)",
            (run_id, workload, address, action, attempt, token, now, now),
        )
        return Operation(
            id=int(cursor.lastrowid or 0),
            run_id=run_id,
            workload=workload,
            address=address,
            action=action,
            attempt=attempt,
            token=token,
            status="intent",
            started_at=now,
            updated_at=now,
        )

    def update_operation(
        self,
        operation_id: int,
        *,
        status: str | None = None,
        request_id: str | None = None,
        instance_id: str | None = None,
        error: str | None = None,
    ) -> None:
        self._db.execute(
            "UPDATE operations SET status = COALESCE(?, status), request_id = COALESCE(?, request_id), "
            "instance_id = COALESCE(?, instance_id), error = COALESCE(?, error), updated_at = ? "
            "WHERE id = ?",
            (status, request_id, instance_id, error, time.time(), operation_id),
        )

    def open_operations(self, workload: str, address: str | None = None) -> list[Operation]:
        placeholders = ", ".join("?" for _ in UNRESOLVED_OPERATION_STATES)
        query = f"SELECT * FROM operations WHERE workload = ? AND status IN ({placeholders})"
        arguments: list[Any] = [workload, *UNRESOLVED_OPERATION_STATES]
        if address is not None:
            query += " AND address = ?"
            arguments.append(address)
        return [_operation_from_row(row) for row in self._db.execute(query + " ORDER BY id", arguments)]

    def operations(self, workload: str, address: str | None = None) -> list[Operation]:
        query = "SELECT * FROM operations WHERE workload = ?"
        arguments: list[Any] = [workload]
        if address is not None:
            query += " AND address = ?"
            arguments.append(address)
        return [_operation_from_row(row) for row in self._db.execute(query + " ORDER BY id", arguments)]

    # Owned instances

    def add_owned_instance(self, instance: OwnedInstance) -> None:
        self._db.execute(
            "INSERT INTO owned_instances (workload, address, instance_id, resource_type, role, token, deleted) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workload, instance_id) DO UPDATE SET "
            "role = excluded.role, token = COALESCE(excluded.token, owned_instances.token)",
            (
                instance.workload,
                instance.address,
                instance.instance_id,
                instance.resource_type,
                instance.role,
                instance.token,
                int(instance.deleted),
            ),
        )

    def owned_instances(
        self, workload: str, address: str | None = None, *, live_only: bool = True
    ) -> list[OwnedInstance]:
        query = "SELECT * FROM owned_instances WHERE workload = ?"
        arguments: list[Any] = [workload]
        if address is not None:
            query += " AND address = ?"
            arguments.append(address)
        if live_only:
            query += " AND deleted = 0"
        return [
            OwnedInstance(
                workload=row["workload"],
                address=row["address"],
                instance_id=row["instance_id"],
                resource_type=row["resource_type"],
                role=row["role"],
                token=row["token"],
                deleted=bool(row["deleted"]),
            )
            for row in self._db.execute(query, arguments)
        ]

    def mark_instance_deleted(self, workload: str, instance_id: str) -> None:
        self._db.execute(
            "UPDATE owned_instances SET deleted = 1 WHERE workload = ? AND instance_id = ?",
            (workload, instance_id),
        )

    def set_instance_role(self, workload: str, instance_id: str, role: str) -> None:
        self._db.execute(
            "UPDATE owned_instances SET role = ? WHERE workload = ? AND instance_id = ?",
            (role, workload, instance_id),
        )

    # Locks

    def acquire_lock(self, workload: str, command: str) -> LockOwner:
        owner = LockOwner(
            lock_id=str(uuid.uuid4()),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=time.time(),
            command=command,
        )
        try:
            self._db.execute(
                "INSERT INTO locks (workload, lock_id, host, pid, started_at, command) VALUES (?, ?, ?, ?, ?, ?)",
                (workload, owner.lock_id, owner.host, owner.pid, owner.started_at, owner.command),
            )
        except sqlite3.IntegrityError:
            holder = self.get_lock(workload)
            if holder is None:
                return self.acquire_lock(workload, command)
            if holder.is_gone():
                # The holder ran on this host and its process has ended (a crash or
                # kill -9), so no run can be using the lock any more.
                taken = self._db.execute(
                    "UPDATE locks SET lock_id = ?, host = ?, pid = ?, started_at = ?, command = ? "
                    "WHERE workload = ? AND lock_id = ?",
                    (owner.lock_id, owner.host, owner.pid, owner.started_at, owner.command, workload, holder.lock_id),
                )
                if taken.rowcount == 1:
                    log.warning(
                        "lock.taken_over",
                        workload=workload,
                        previous_lock_id=holder.lock_id,
                        previous_pid=holder.pid,
                        previous_command=holder.command,
                    )
                    return owner
                return self.acquire_lock(workload, command)
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.started_at))
            hint = (
                f"its process is gone, so release it with: cws-workload force-unlock {workload} {holder.lock_id}"
                if holder.is_gone()
                else "wait for it to finish, or, if that process is gone, run: "
                f"cws-workload force-unlock {workload} {holder.lock_id}"
            )
            raise LockError(
                f"workload '{workload}' is locked by {holder.describe()} since {since}; {hint}"
            ) from None
        return owner

    def release_lock(self, workload: str, lock_id: str) -> None:
        self._db.execute("DELETE FROM locks WHERE workload = ? AND lock_id = ?", (workload, lock_id))

    def force_unlock(self, workload: str, lock_id: str) -> LockOwner:
        holder = self.get_lock(workload)
        if holder is None:
            raise LockError(f"workload '{workload}' is not locked; nothing to release")
        if holder.lock_id != lock_id:
            raise LockError(
                f"lock id {lock_id} does not match the lock on '{workload}' ({holder.lock_id}); "
                "copy the id from the error that named the lock"
            )
        self.release_lock(workload, lock_id)
        return holder

    def get_lock(self, workload: str) -> LockOwner | None:
        row = self._db.execute("SELECT * FROM locks WHERE workload = ?", (workload,)).fetchone()
        if row is None:
            return None
        return LockOwner(
            lock_id=row["lock_id"],
            host=row["host"],
            pid=row["pid"],
            started_at=row["started_at"],
            command=row["command"],
        )

    # Durations

    def record_duration(self, action: str, resource_uri: str, seconds: float) -> None:
        self._db.execute(_RECORD_DURATION, (action, resource_uri, seconds, DURATION_SMOOTHING))

    def record_durations(self, observations: Iterable[tuple[str, str, float]]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                _RECORD_DURATION,
                [(action, uri, seconds, DURATION_SMOOTHING) for action, uri, seconds in observations],
            )

    def expected_durations(self) -> dict[tuple[str, str], float]:
        return {
            (row["action"], row["resource_uri"]): row["smoothed"]
            for row in self._db.execute("SELECT action, resource_uri, smoothed FROM durations")
        }

    # Runs

    def record_run(
        self,
        run_id: str,
        workload: str,
        command: str,
        started_at: float,
        finished_at: float,
        result: str,
        summary: dict[str, Any],
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO runs (run_id, workload, command, started_at, finished_at, result, summary) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, workload, command, started_at, finished_at, result, json.dumps(summary)),
        )

    def last_run(self, workload: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM runs WHERE workload = ? ORDER BY finished_at DESC LIMIT 1", (workload,)
        ).fetchone()
        if row is None:
            return None
        return {
            "run_id": row["run_id"],
            "command": row["command"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "result": row["result"],
            "summary": json.loads(row["summary"]),
        }


def _resource_from_row(row: sqlite3.Row) -> ResourceRecord:
    return ResourceRecord(
        workload=row["workload"],
        address=row["address"],
        type=row["type"],
        resource_uri=row["resource_uri"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        instance_id=row["instance_id"],
        instance_status=row["instance_status"],
        instance=json.loads(row["instance"]),
        error=row["error"],
        updated_at=row["updated_at"],
    )


def _operation_from_row(row: sqlite3.Row) -> Operation:
    return Operation(
        id=row["id"],
        run_id=row["run_id"],
        workload=row["workload"],
        address=row["address"],
        action=row["action"],
        attempt=row["attempt"],
        token=row["token"],
        status=row["status"],
        request_id=row["request_id"],
        instance_id=row["instance_id"],
        error=row["error"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
    )
