"""Soak: many apply/destroy cycles under injected faults and SIGKILLs, counting orphans and duplicates.

    python bench/soak.py --runs 500 --kill-every 2 --workers 3

Each cycle applies the 30-resource chaos workload (tests/data/chaos.yaml)
through the installed CLI against a served emulator with one fault kind
switched on, checks through the emulator's instance list that every resource
has exactly one live instance (the one the state records), destroys it with the
fault still on, and checks that nothing of it is left. Every `--kill-every`th
cycle kills the first apply with SIGKILL after a random number of events, then
applies again. The figures go into docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from bench.common import machine_description, machine_line, served_emulator  # noqa: E402
from orchestrator.config import DEMO_API_KEY, DEMO_API_SECRET  # noqa: E402
from orchestrator.operations import NODE_KEY, WORKLOAD_KEY  # noqa: E402
from orchestrator.state import SqliteStateStore  # noqa: E402

ADMIN_KEY = "soak-admin-key"
WORKLOAD_FILE = REPOSITORY / "tests" / "data" / "chaos.yaml"
RELIABILITY_PAGE = REPOSITORY / "docs" / "reliability.md"
PROFILE = REPOSITORY / "orchestrator" / "emulator" / "profiles" / "fast.yaml"
SECTION_START = "<!-- soak:start -->"
SECTION_END = "<!-- soak:end -->"

FAULT_KINDS: dict[str, dict[str, Any]] = {
    "lost_request_created": {"lost_request": 0.15, "lost_request_created": 1.0},
    "lost_request_not_created": {"lost_request": 0.15, "lost_request_created": 0.0},
    "dropped_response": {"dropped_response": 0.15},
    "server_error": {"server_error": 0.15},
    "throttle": {"throttle": 0.15},
    "slow_response": {"slow_response": 0.1, "slow_response_seconds": 0.5},
    "failed_request": {"failed_request": 0.05},
}
NO_FAULTS = {key: 0.0 for key in ("lost_request", "dropped_response", "server_error", "throttle", "slow_response", "failed_request")}
# Events one apply of the chaos workload emits, about; kill points are drawn below it.
EVENTS_PER_APPLY = 200


@dataclass
class CycleResult:
    index: int
    kind: str
    killed: bool = False
    applies: int = 0
    destroys: int = 0
    duplicates: int = 0
    missing: int = 0
    orphans: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Worker:
    """One served emulator and one state file, running cycles one after another."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory
        self.state = directory / "state.db"

    def set_faults(self, faults: dict[str, Any]) -> None:
        response = httpx.put(f"{self.url}/admin/faults", json=faults, headers={"X-CWS-Admin-Key": ADMIN_KEY}, timeout=30)
        response.raise_for_status()

    def injected(self) -> Counter[str]:
        response = httpx.get(f"{self.url}/admin/stats", headers={"X-CWS-Admin-Key": ADMIN_KEY}, timeout=30)
        response.raise_for_status()
        return Counter(response.json().get("faults", {}))

    def live_by_node(self, workload: str) -> dict[str, list[str]]:
        response = httpx.get(f"{self.url}/api/instance", auth=(DEMO_API_KEY, DEMO_API_SECRET), timeout=60)
        response.raise_for_status()
        grouped: dict[str, list[str]] = {}
        for instance in response.json():
            metadata = instance.get("metadata") or {}
            if metadata.get(WORKLOAD_KEY) != workload:
                continue
            if (instance.get("attributes") or {}).get("instanceStatus") == "deleted":
                continue
            grouped.setdefault(str(metadata.get(NODE_KEY)), []).append(instance["instanceId"])
        return grouped

    def cli(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "CWS_ENDPOINT": self.url, "CWS_STATE": str(self.state)}
        return subprocess.run(
            ["cws-workload", *arguments], capture_output=True, text=True, env=environment,
            stdin=subprocess.DEVNULL, timeout=600,
        )  # fmt: skip

    def apply_and_kill(self, spec: Path, events_before_kill: int) -> None:
        environment = {**os.environ, "CWS_ENDPOINT": self.url, "CWS_STATE": str(self.state)}
        process = subprocess.Popen(
            ["cws-workload", "apply", str(spec), "--output", "json"], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, env=environment,
        )  # fmt: skip
        assert process.stdout is not None
        seen = 0
        for _ in process.stdout:
            seen += 1
            if seen >= events_before_kill:
                process.send_signal(signal.SIGKILL)
                break
        process.stdout.close()
        process.wait(timeout=600)

    def run_cycle(self, index: int, kind: str, kill_after: int | None) -> CycleResult:
        started = time.monotonic()
        result = CycleResult(index=index, kind=kind, killed=kill_after is not None)
        workload = f"soak-{index}"
        spec = self.directory / f"{workload}.yaml"
        spec.write_text(WORKLOAD_FILE.read_text(encoding="utf-8").replace("WORKLOAD", workload), encoding="utf-8")
        before = self.injected()

        self.set_faults({**NO_FAULTS, **FAULT_KINDS[kind]})
        if kill_after is not None:
            self.apply_and_kill(spec, kill_after)
        applied = self.cli("apply", str(spec), "--quiet")
        result.applies += 1
        if applied.returncode != 0:
            # A failed request is a final answer for that run; the next apply finishes the job.
            self.set_faults(NO_FAULTS)
            applied = self.cli("apply", str(spec), "--quiet")
            result.applies += 1
        self.set_faults(NO_FAULTS)
        if applied.returncode != 0:
            result.problems.append(f"apply exited {applied.returncode}: {applied.stderr.strip()[-300:]}")

        live = self.live_by_node(workload)
        store = SqliteStateStore(self.state)
        try:
            records = store.get_resources(workload)
        finally:
            store.close()
        result.duplicates = sum(len(ids) - 1 for ids in live.values() if len(ids) > 1)
        result.missing = sum(1 for address in records if address not in live)
        for address, record in records.items():
            if address in live and record.instance_id not in live[address]:
                result.problems.append(f"{address}: state has {record.instance_id}, API has {live[address]}")

        self.set_faults({**NO_FAULTS, **FAULT_KINDS[kind]})
        destroyed = self.cli("destroy", workload, "--yes", "--quiet")
        result.destroys += 1
        self.set_faults(NO_FAULTS)
        if destroyed.returncode != 0:
            destroyed = self.cli("destroy", workload, "--yes", "--quiet")
            result.destroys += 1
        if destroyed.returncode != 0:
            result.problems.append(f"destroy exited {destroyed.returncode}: {destroyed.stderr.strip()[-300:]}")
        result.orphans = sum(len(ids) for ids in self.live_by_node(workload).values())
        result.faults = self.injected() - before
        result.seconds = time.monotonic() - started
        return result


def run_worker(
    worker_index: int, cycles: list[tuple[int, str, int | None]], deadline: float, results: list[CycleResult],
    lock: threading.Lock,
) -> None:
    directory = Path(tempfile.mkdtemp(prefix=f"cws-soak-{worker_index}-"))
    with served_emulator(PROFILE, directory / "emulator.db", admin_key=ADMIN_KEY, seed=worker_index + 1) as emulator:
        worker = Worker(emulator.url, directory)
        for index, kind, kill_after in cycles:
            if time.monotonic() > deadline:
                return
            result = worker.run_cycle(index, kind, kill_after)
            with lock:
                results.append(result)
                status = "ok" if not (result.problems or result.duplicates or result.orphans or result.missing) else "PROBLEM"
                print(
                    f"cycle {index:4d} {kind:<25} killed={result.killed!s:<5} {status} "
                    f"faults={sum(result.faults.values()):3d} {result.seconds:5.1f}s",
                    flush=True,
                )
                for problem in result.problems:
                    print(f"    {problem}", flush=True)


def write_report(
    results: list[CycleResult], arguments: argparse.Namespace, wall: float, arguments_machine: dict[str, Any]
) -> str:
    faults: Counter[str] = Counter()
    for result in results:
        faults.update(result.faults)
    by_kind: dict[str, list[CycleResult]] = {}
    for result in results:
        by_kind.setdefault(result.kind, []).append(result)
    rows = []
    for kind in sorted(by_kind):
        group = by_kind[kind]
        rows.append(
            f"| {kind} | {len(group)} | {sum(r.killed for r in group)} | {sum(sum(r.faults.values()) for r in group)} "
            f"| {sum(r.orphans for r in group)} | {sum(r.duplicates for r in group)} "
            f"| {sum(r.missing for r in group)} | {sum(len(r.problems) for r in group)} |"
        )
    command = "python bench/soak.py " + " ".join(
        f"--{name.replace('_', '-')} {value}" for name, value in vars(arguments).items()
    )
    runs = sum(r.applies + r.destroys + int(r.killed) for r in results)
    total_orphans = sum(r.orphans for r in results)
    total_duplicates = sum(r.duplicates for r in results)
    kills = sum(r.killed for r in results)
    lines = [
        SECTION_START,
        "## Soak figures",
        "",
        f"Command: `{command}`",
        "",
        machine_line(arguments_machine),
        "",
        f"Date {time.strftime('%Y-%m-%d')}; wall time {wall / 60:.1f} min.",
        "",
        f"**{len(results)} cycles of {runs} runs (apply and destroy invocations, killed ones included), "
        f"{kills} SIGKILLs, {sum(faults.values())} faults injected: "
        f"{total_orphans} orphans, {total_duplicates} duplicates.** "
        "Target: zero orphans and zero duplicates over at least 500 runs and 100 kills.",
        "",
        "| fault kind | cycles | kills | faults injected | orphans | duplicates | missing | other problems |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Faults injected by kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(faults.items())) + ".",
        "",
        "A cycle is one apply (plus a second apply after a SIGKILL, or after a failed request) and one",
        "destroy of the 30-resource chaos workload, with the fault switched on for both. *Orphans* are",
        "instances of the workload still live after destroy; *duplicates* are extra live instances of",
        "one resource after apply; *missing* are resources the state records with no live instance.",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="cycles to run (default 500)")
    parser.add_argument("--kill-every", type=int, default=2, help="every Nth cycle is killed once mid-apply")
    parser.add_argument("--workers", type=int, default=3, help="emulators and CLIs running side by side")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill points and fault order")
    parser.add_argument("--minutes", type=float, default=90.0, help="stop starting cycles after this long")
    arguments = parser.parse_args()

    generator = random.Random(arguments.seed)
    kinds = sorted(FAULT_KINDS)
    cycles = []
    for index in range(arguments.runs):
        kill_after = generator.randrange(2, EVENTS_PER_APPLY) if index % arguments.kill_every == 0 else None
        cycles.append((index, kinds[index % len(kinds)], kill_after))
    shares = [cycles[worker::arguments.workers] for worker in range(arguments.workers)]

    machine = machine_description()
    results: list[CycleResult] = []
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + arguments.minutes * 60
    with ThreadPoolExecutor(max_workers=arguments.workers) as pool:
        futures = [
            pool.submit(run_worker, worker, share, deadline, results, lock) for worker, share in enumerate(shares)
        ]
        for future in futures:
            future.result()
    wall = time.monotonic() - started

    section = write_report(sorted(results, key=lambda r: r.index), arguments, wall, machine)
    page = RELIABILITY_PAGE.read_text(encoding="utf-8") if RELIABILITY_PAGE.exists() else ""
    if SECTION_START in page and SECTION_END in page:
        page = page[: page.index(SECTION_START)] + section + page[page.index(SECTION_END) + len(SECTION_END) + 1 :]
    else:
        page = page.rstrip("\n") + "\n\n" + section
    RELIABILITY_PAGE.write_text(page, encoding="utf-8")
    print(section)
    print(json.dumps({"cycles": len(results), "wall_seconds": round(wall, 1)}))


if __name__ == "__main__":
    main()
