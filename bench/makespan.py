"""Makespan and API calls of `apply` on random layered DAGs against a served fixed-latency emulator.

For each size, one emulator (bench/profiles/makespan.yaml by default) serves
four runs of the same generated DAG under different workload names:

1. a cold apply on an empty state,
2. a warm apply on the same state, so its polls are timed from the durations
   the cold run learnt,
3. a seeded apply on a new state whose learnt durations are set to the
   profile's true ones, which separates how well the engine learns from how
   fast it runs,
4. a client that creates the same resources concurrently and polls every
   request once a second (`common.FixedPollClient`), for the call count.

The critical path comes from the profile's fixed durations
(`common.profile_critical_path`); the page reports apply wall time over it,
and calls per asynchronous operation. Writes the `makespan` section of
docs/benchmarks.md.

    python bench/makespan.py                 # 100 and 1,000 resources, about 6 minutes
    python bench/makespan.py --sizes 100     # one size
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

import orchestrator
from orchestrator.config import DEMO_API_KEY, DEMO_API_SECRET, resolve_settings
from orchestrator.engine import RunOptions
from orchestrator.state.sqlite import SqliteStateStore

RATIO_TARGET = 1.03
CALLS_PER_OPERATION_TARGET = 2.5
ADMIN_KEY = "bench-makespan"
# Each apply or client run is cancelled after this many seconds, so that the benchmark always ends.
RUN_TIMEOUT_SECONDS = 600
# Engine runs per size: an empty state, the state the cold run left, and a state seeded with the profile's durations.
ENGINE_RUNS = ("cold", "warm", "seeded")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="comma-separated resource counts (default: 100,1000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated DAGs (default: 1)")
    parser.add_argument("--depth", type=int, default=4, help="VM and image layers after the key pairs (default: 4)")
    parser.add_argument(
        "--parallelism", type=int, default=None, help="engine parallelism (default: twice the largest size)"
    )
    parser.add_argument(
        "--profile", type=Path, default=common.PROFILES_DIR / "makespan.yaml", help="fixed-duration emulator profile"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the client that polls every second")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing the page")
    return parser.parse_args()


def max_in_flight(timeline: dict[str, list[tuple[str, float]]]) -> int:
    """Return the largest number of nodes that were between `creating` and their last state at once."""
    edges: list[tuple[float, int]] = []
    for phases in timeline.values():
        started = next((at for state, at in phases if state == "creating"), None)
        if started is None:
            continue
        edges += [(started, 1), (phases[-1][1], -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += step
        peak = max(peak, running)
    return peak


# The profile duration that each of the engine's learnt actions corresponds to. A `stable` entry runs from the
# moment the engine saw the create finish to the moment a retrieve found the instance stable.
PROFILE_KEY_OF_ACTION = {
    "kp.create": "kp.create",
    "sg.create": "sg.create",
    "sg.add-access": "sg.add-access",
    "vm.create": "vm.create",
    "vm.stable": "vm.boot",
    "vm.retrieve": "vm.retrieve",
    "vm.create.image": "vm.create.image",
    "image.stable": "image.build",
    "image.retrieve": "image.retrieve",
}


def learnt_durations(state_path: Path) -> dict[tuple[str, str], float]:
    """Return the durations the engine expects by (action, resource URI), as its state stores them after a run."""
    store = SqliteStateStore(state_path)
    try:
        return dict(store.expected_durations())
    finally:
        store.close()


def seed_true_durations(state_path: Path, keys: list[tuple[str, str]], durations: common.FixedDurations) -> None:
    """Record the profile's true duration for each (action, resource URI) in a new state file."""
    store = SqliteStateStore(state_path)
    try:
        for action, resource_uri in keys:
            if action in PROFILE_KEY_OF_ACTION:
                store.record_duration(action, resource_uri, durations.of(PROFILE_KEY_OF_ACTION[action]))
    finally:
        store.close()


async def engine_run(
    spec_path: Path, state_path: Path, url: str, parallelism: int, emulator: common.ServedEmulator
) -> dict[str, Any]:
    settings = resolve_settings(endpoint=url, state=str(state_path))
    served_before = emulator.stats()["calls"]
    started = time.perf_counter()
    with anyio.fail_after(RUN_TIMEOUT_SECONDS):
        summary = await orchestrator.apply_async(
            spec_path, settings=settings, options=RunOptions(parallelism=parallelism)
        )
    wall = time.perf_counter() - started
    served_after = emulator.stats()["calls"]
    if not summary.ok:
        raise RuntimeError(f"apply of {spec_path} ended {summary.result}: {summary.failures[:3]}")
    calls = summary.metrics["api_calls"]
    return {
        "wall": wall,
        "engine_wall": summary.metrics["wall_seconds"],
        "observed_critical_path": summary.metrics["critical_path_seconds"],
        "calls": calls,
        "calls_total": summary.metrics["api_calls_total"],
        "served_total": sum(served_after.values()) - sum(served_before.values()),
        "operations": common.count_operations(calls),
        "in_flight": max_in_flight(summary.timeline),
        "learnt": learnt_durations(state_path),
    }


async def poll_every_second(client: common.FixedPollClient, workload: common.BenchWorkload) -> float:
    with anyio.fail_after(RUN_TIMEOUT_SECONDS):
        return await client.apply(workload, concurrent=True)


def measure_size(size: int, arguments: argparse.Namespace, parallelism: int) -> dict[str, Any]:
    directory = common.OUT_DIR / "makespan" / str(size)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    durations = common.load_fixed_durations(arguments.profile)
    workload = common.generate_workload(size, arguments.seed, f"makespan-{size}-cold", depth=arguments.depth)
    critical_seconds, critical_nodes = common.profile_critical_path(workload, durations)
    overlapped_seconds, _ = common.profile_critical_path(workload, durations, overlap_refresh=True)
    cold_spec = workload.write(directory / "cold.yaml")
    warm_spec = workload.renamed(f"makespan-{size}-warm").write(directory / "warm.yaml")
    seeded_spec = workload.renamed(f"makespan-{size}-seeded").write(directory / "seeded.yaml")
    state_path = directory / "state.db"

    result: dict[str, Any] = {
        "size": size,
        "workload": workload.describe(),
        "critical_path": critical_seconds,
        "critical_nodes": critical_nodes,
        "overlapped_critical_path": overlapped_seconds,
    }
    with common.served_emulator(arguments.profile, directory / "emulator.db", admin_key=ADMIN_KEY) as emulator:
        print(f"{size} resources: {workload.describe()}; critical path {critical_seconds:.2f} s", flush=True)
        result["cold"] = anyio.run(engine_run, cold_spec, state_path, emulator.url, parallelism, emulator)
        print(f"  cold apply {result['cold']['wall']:.2f} s", flush=True)
        result["warm"] = anyio.run(engine_run, warm_spec, state_path, emulator.url, parallelism, emulator)
        print(f"  warm apply {result['warm']['wall']:.2f} s", flush=True)
        seeded_state = directory / "seeded-state.db"
        seed_true_durations(seeded_state, list(result["cold"]["learnt"]), durations)
        result["seeded"] = anyio.run(engine_run, seeded_spec, seeded_state, emulator.url, parallelism, emulator)
        print(f"  seeded apply {result['seeded']['wall']:.2f} s", flush=True)
        if not arguments.no_baseline:
            client = common.FixedPollClient(emulator.url, DEMO_API_KEY, DEMO_API_SECRET)
            wall = anyio.run(poll_every_second, client, workload.renamed(f"makespan-{size}-poll"))
            result["baseline"] = {
                "wall": wall,
                "calls_total": sum(client.calls.values()),
                "operations": client.operations,
            }
            print(f"  1-second poll client {wall:.2f} s", flush=True)
    return result


def render(results: list[dict[str, Any]], arguments: argparse.Namespace, parallelism: int, machine: dict[str, Any],
           load_after: tuple[float, float, float]) -> str:
    durations = common.load_fixed_durations(arguments.profile)
    d = durations.of
    lines = [
        "## Makespan and API calls",
        "",
        f"Command: `{common.command_line()}`  ",
        f"Date: {common.today()}; engine: {machine['engine']}.  ",
        common.machine_line(machine, load_after),
        "",
        (f"Setup: one served emulator per size (`cws-workload emulator serve` on 127.0.0.1) with the profile "
        f"`{arguments.profile.relative_to(common.REPO) if arguments.profile.is_relative_to(common.REPO) else arguments.profile}`, "
        f"which has fixed durations and no faults. Durations: kp.create {d('kp.create'):g} s, sg.create {d('sg.create'):g} s + "
        f"sg.add-access {d('sg.add-access'):g} s, vm.create {d('vm.create'):g} s + vm.boot {d('vm.boot'):g} s + "
        f"vm.retrieve {d('vm.retrieve'):g} s, vm.create.image {d('vm.create.image'):g} s + "
        f"image.build {d('image.build'):g} s + image.retrieve {d('image.retrieve'):g} s. "
        f"Parallelism {parallelism}, more than the number of resources, so no node ever waits for a slot. "
        "The workloads are random layered DAGs (`common.generate_workload`): key pairs and security groups, "
        "then VMs reading a key pair and up to two groups, images of those VMs, VMs booting from those images, "
        "and images of those."),
        "",
        ("The critical path is the longest chain of per-node durations taken from the profile. A VM is its "
        "create, its boot and one retrieve that finds it running. An image is its create, its build and one "
        "retrieve, and a security group its create and its add-access. A client that knows the durations can "
        "send that retrieve before the boot ends, so the least possible makespan is shorter: see the last "
        "column of the first table (retrieves overlapped). So a ratio below 1 is possible against the first "
        "figure."),
        "",
        ("Apply wall time is measured around `orchestrator.apply_async` (spec load, state, connection check "
        "and the run). The engine runs three times per size, each time under a fresh workload name. The cold "
        "run starts on an empty state. The warm run uses the same state file, with the durations the cold run "
        "learnt. The seeded run uses a new state file whose learnt durations were set to the profile's true "
        "ones before the run (a VM's `vm.stable` to its boot time, an image's `image.stable` to its build "
        "time). The seeded run shows what the engine "
        "reaches when its expectations are exact, apart from how it learns them. "
        f"Target: wall / critical path ≤ {RATIO_TARGET} at 1,000 resources."),
        "",
    ]
    rows = []
    for result in results:
        for run in ENGINE_RUNS:
            measured = result[run]
            ratio = measured["wall"] / result["critical_path"]
            rows.append([
                f"{result['size']:,}", f"cws-workload, {run}", f"{measured['wall']:.2f}", f"{result['critical_path']:.2f}",
                f"{ratio:.3f}", common.verdict(ratio, RATIO_TARGET) if result["size"] >= 1000 else f"({common.verdict(ratio, RATIO_TARGET)})",
                f"{measured['observed_critical_path']:.2f}", measured["in_flight"], f"{result['overlapped_critical_path']:.2f}",
            ])  # fmt: skip
        if "baseline" in result:
            ratio = result["baseline"]["wall"] / result["critical_path"]
            rows.append([
                f"{result['size']:,}", "1-second poll client", f"{result['baseline']['wall']:.2f}",
                f"{result['critical_path']:.2f}", f"{ratio:.3f}", "(reference)", "", "", "",
            ])  # fmt: skip
    lines.append(common.markdown_table(
        ["resources", "run", "apply wall (s)", "critical path (s)", "wall / critical path",
         f"target ≤ {RATIO_TARGET}", "engine's observed critical path (s)", "max nodes in flight",
         "critical path, retrieves overlapped (s)"],
        rows,
    ))  # fmt: skip
    lines += [
        "",
        ("The target applies at 1,000 resources; verdicts in brackets are for the 100-resource runs. The "
        "1-second poll client (described below) is shown for reference. The engine's "
        "observed critical path is the longest chain of node durations as the engine measured them in that run "
        "(`RunSummary.metrics['critical_path_seconds']`)."),
        "",
        "### API calls per operation",
        "",
        ("An operation is one asynchronous request the engine follows: a create, a refresh, an action or a "
        "delete. Calls are every API call of the run as the engine's client counted them, connection check and "
        "polls included; the emulator's own count (`GET /admin/stats`) is shown as a cross-check. The "
        "1-second client is `common.FixedPollClient`, measured on the same emulator and DAG: it creates the "
        "same resources concurrently in dependency order, polls each request every second, and refreshes a "
        f"booting VM or building image until a retrieve finds it stable. Target: ≤ {CALLS_PER_OPERATION_TARGET} "
        "calls per operation on average."),
        "",
    ]
    rows = []
    for result in results:
        for run in ENGINE_RUNS:
            measured = result[run]
            per_operation = measured["calls_total"] / measured["operations"]
            rows.append([
                f"{result['size']:,}", f"cws-workload, {run}", f"{measured['wall']:.2f}", measured["operations"],
                measured["calls_total"], measured["served_total"], f"{per_operation:.2f}",
                common.verdict(per_operation, CALLS_PER_OPERATION_TARGET),
                f"{measured['calls_total'] / result['size']:.2f}",
            ])  # fmt: skip
        if "baseline" in result:
            baseline = result["baseline"]
            per_operation = baseline["calls_total"] / baseline["operations"]
            rows.append([
                f"{result['size']:,}", "1-second poll client", f"{baseline['wall']:.2f}", baseline["operations"],
                baseline["calls_total"], "", f"{per_operation:.2f}", "(reference)",
                f"{baseline['calls_total'] / result['size']:.2f}",
            ])  # fmt: skip
    lines.append(common.markdown_table(
        ["resources", "client", "wall (s)", "operations", "calls", "calls the emulator served",
         "calls per operation", f"target ≤ {CALLS_PER_OPERATION_TARGET}", "calls per resource"],
        rows,
    ))  # fmt: skip
    lines += [
        "",
        "### Durations the engine learnt",
        "",
        ("The engine times its first poll of a request, and its first refresh of a booting VM or building "
        "image, from the durations it observed on earlier runs (smoothed, stored in the state). The table "
        "compares what the state held after each run with the profile's true durations. The engine's "
        "`stable` entries are counted on the server's clock, from the instance's `created` stamp to the end "
        "of the refresh that found it stable, so they compare with the boot or build time."),
        "",
    ]
    header = ["engine action", "profile (s)"] + [
        f"learnt after {result['size']:,} {run} (s)" for result in results for run in ("cold", "warm")
    ]
    rows = []
    for action, profile_key in PROFILE_KEY_OF_ACTION.items():
        row: list[Any] = [f"`{action}`", f"{d(profile_key):g} ({profile_key})"]
        for result in results:
            for run in ("cold", "warm"):
                learnt = [seconds for (name, _), seconds in result[run]["learnt"].items() if name == action]
                row.append(f"{learnt[0]:.2f}" if learnt else "")
        rows.append(row)
    lines.append(common.markdown_table(header, rows))
    lines += ["", "Calls by endpoint of the engine's runs:", ""]
    endpoints = sorted({endpoint for result in results for run in ENGINE_RUNS for endpoint in result[run]["calls"]})
    header = ["endpoint"] + [f"{result['size']:,} {run}" for result in results for run in ENGINE_RUNS]
    rows = [
        [f"`{endpoint}`"] + [result[run]["calls"].get(endpoint, 0) for result in results for run in ENGINE_RUNS]
        for endpoint in endpoints
    ]
    lines.append(common.markdown_table(header, rows))
    return "\n".join(lines) + "\n"


def main() -> int:
    arguments = parse_arguments()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    parallelism = arguments.parallelism or 2 * max(sizes)
    common.quiet_engine_logs()
    machine = common.machine_description()
    results = [measure_size(size, arguments, parallelism) for size in sizes]
    section = render(results, arguments, parallelism, machine, common.machine_description()["load_average"])
    if arguments.no_write:
        print(section)
    else:
        common.write_section("makespan", section)
        print(f"wrote the makespan section of {common.DOCS_PAGE.relative_to(common.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
