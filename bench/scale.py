"""Apply and plan a 10,000-resource workload on the embedded emulator with near-zero latency.

Each measurement runs in a child process of its own, so its peak RSS
(`resource.getrusage`) counts that measurement alone:

- apply: `orchestrator.apply_async` on an empty state, the emulator
  in-process with bench/profiles/zero.yaml (every duration 1 ms): wall time,
  peak RSS, API calls, wall time per resource;
- scheduler: `scheduler.run_graph` over the same graph with a no-op node
  function, which is the scheduler's own overhead per resource;
- plan: spec load, graph build and `plan.make_plan` against an empty state,
  timed apart, then `Engine.plan` (which also checks the catalog) and the
  `cws-workload plan` command as a user runs it.

Writes the `scale` section of docs/benchmarks.md.

    python bench/scale.py                    # 10,000 resources, about 2 minutes
    python bench/scale.py --resources 2000   # a smaller run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

WALL_TARGET_SECONDS = 30.0
RSS_TARGET_MB = 300.0
PLAN_TARGET_SECONDS = 1.0
CHILD_TIMEOUT_SECONDS = 600


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=10_000, help="resources in the workload (default: 10000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated DAG (default: 1)")
    parser.add_argument("--parallelism", type=int, default=None, help="engine parallelism (default: the engine's)")
    parser.add_argument("--profile", type=Path, default=common.PROFILES_DIR / "zero.yaml", help="emulator profile")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing the page")
    parser.add_argument("--child", choices=("apply", "scheduler", "plan"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux; the figures are in MB of 10^6 bytes, like the target.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


# Children: each prints one JSON line on stdout.


def current_rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def child_apply(arguments: argparse.Namespace) -> dict[str, Any]:
    import threading

    import anyio

    import orchestrator
    from orchestrator.config import resolve_settings
    from orchestrator.engine import RunOptions

    common.quiet_engine_logs()
    rss_after_imports = peak_rss_mb()
    settings = resolve_settings(state=str(arguments.state), emulator_profile=str(arguments.profile))
    options = RunOptions() if arguments.parallelism is None else RunOptions(parallelism=arguments.parallelism)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.wait(0.25):
            samples.append((time.perf_counter() - started, current_rss_mb()))

    started = time.perf_counter()
    cpu_started = time.process_time()
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    summary = anyio.run(lambda: orchestrator.apply_async(arguments.spec, settings=settings, options=options))
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    # The resident size at each tenth of the run shows whether memory grows with the resources done.
    rss_by_tenth = [
        max((rss for at, rss in samples if at <= wall * tenth / 10), default=0.0) for tenth in range(1, 11)
    ]
    return {
        "result": summary.result,
        "failures": summary.failures[:3],
        "wall": wall,
        "cpu": time.process_time() - cpu_started,
        "engine_wall": summary.metrics["wall_seconds"],
        "calls_total": summary.metrics["api_calls_total"],
        "calls": summary.metrics["api_calls"],
        "parallelism": options.parallelism,
        "rss_after_imports": rss_after_imports,
        "peak_rss": peak_rss_mb(),
        "rss_by_tenth": rss_by_tenth,
    }


def child_scheduler(arguments: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from orchestrator.graph import build_graph
    from orchestrator.scheduler import DEFAULT_PARALLELISM, run_graph
    from orchestrator.spec import load_spec

    graph = build_graph(load_spec(arguments.spec))
    parallelism = arguments.parallelism or DEFAULT_PARALLELISM

    async def nothing(address: str) -> None:
        return None

    async def run() -> float:
        started = time.perf_counter()
        result = await run_graph(graph, nothing, parallelism=parallelism, now=time.monotonic)
        elapsed = time.perf_counter() - started
        if not result.ok:
            raise RuntimeError("the no-op graph run did not finish every node")
        return elapsed

    elapsed = anyio.run(run)
    return {"wall": elapsed, "nodes": graph.number_of_nodes(), "parallelism": parallelism, "peak_rss": peak_rss_mb()}


def child_plan(arguments: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from orchestrator.config import resolve_settings
    from orchestrator.engine import Engine
    from orchestrator.graph import build_graph
    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec

    common.quiet_engine_logs()
    started = time.perf_counter()
    spec = load_spec(arguments.spec)
    loaded = time.perf_counter()
    graph = build_graph(spec)
    built = time.perf_counter()
    plan = make_plan(spec.name, graph, {}, None)
    planned = time.perf_counter()
    engine = Engine(resolve_settings(state=str(arguments.state), emulator_profile=str(arguments.profile)))
    try:
        engine_started = time.perf_counter()
        engine_plan = anyio.run(lambda: engine.plan(arguments.spec))
        engine_seconds = time.perf_counter() - engine_started
    finally:
        engine.close()
    return {
        "load": loaded - started,
        "graph": built - loaded,
        "plan": planned - built,
        "creates": plan.counts().get("create", 0),
        "engine_plan": engine_seconds,
        "engine_creates": engine_plan.counts().get("create", 0),
        "peak_rss": peak_rss_mb(),
    }


def run_child(kind: str, arguments: argparse.Namespace, spec: Path, state: Path) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--spec", str(spec),
               "--state", str(state), "--profile", str(arguments.profile)]  # fmt: skip
    if arguments.parallelism is not None:
        command += ["--parallelism", str(arguments.parallelism)]
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return {"timed_out": True, "wall": time.perf_counter() - started}
    if completed.returncode != 0:
        raise RuntimeError(f"the {kind} measurement failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def cli_plan_seconds(spec: Path, state: Path, profile: Path) -> tuple[float, int]:
    environment = {**os.environ, "CWS_EMULATOR_PROFILE": str(profile)}
    started = time.perf_counter()
    completed = subprocess.run(
        ["cws-workload", "--state", str(state), "plan", str(spec)],
        capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS, env=environment, check=False,
    )  # fmt: skip
    return time.perf_counter() - started, completed.returncode


def render(arguments: argparse.Namespace, workload: common.BenchWorkload, results: dict[str, Any],
           machine: dict[str, Any], load_after: tuple[float, float, float]) -> str:
    apply_result, scheduler, plan = results["apply"], results["scheduler"], results["plan"]
    size = len(workload.nodes)
    lines = [
        "## Scale: 10,000 resources on the embedded emulator",
        "",
        f"Command: `{common.command_line()}`  ",
        f"Date: {common.today()}; engine: {machine['engine']}.  ",
        common.machine_line(machine, load_after),
        "",
        (f"Workload: {workload.describe()} (`common.generate_workload` with 2 % key pairs and security groups, "
        f"so the emulator's RSA key generation stays small). Emulator: embedded, in the same process, profile "
        f"`{arguments.profile.name}` (every request, boot and build takes 1 ms). Each row is measured in a child "
        "process of its own; peak RSS is that process's `ru_maxrss`, which includes the in-process emulator."),
        "",
    ]
    rows: list[list[Any]] = []
    if apply_result.get("timed_out"):
        rows.append(["apply wall time", f"timed out after {apply_result['wall']:.0f} s", f"≤ {WALL_TARGET_SECONDS:g} s",
                     "**missed**"])  # fmt: skip
    else:
        rows += [
            ["apply wall time", f"{apply_result['wall']:.1f} s ({apply_result['result']})",
             f"≤ {WALL_TARGET_SECONDS:g} s", common.verdict(apply_result["wall"], WALL_TARGET_SECONDS)],
            ["apply peak RSS", (f"{apply_result['peak_rss']:.0f} MB "
             f"({apply_result['rss_after_imports']:.0f} MB after imports)"),
             f"≤ {RSS_TARGET_MB:g} MB", common.verdict(apply_result["peak_rss"], RSS_TARGET_MB)],
            ["apply resident size by tenth of the run (max so far)",
             ", ".join(f"{rss:.0f}" for rss in apply_result["rss_by_tenth"]) + " MB", "", ""],
            ["apply wall time per resource", f"{1000 * apply_result['wall'] / size:.2f} ms", "", ""],
            ["apply CPU time (engine and emulator)", f"{apply_result['cpu']:.1f} s", "", ""],
            ["API calls", (f"{apply_result['calls_total']:,} ({apply_result['calls_total'] / apply_result['wall']:.0f} "
             "a second)"), "", ""],
        ]  # fmt: skip
    rows.append([
        "scheduler overhead per resource (`run_graph`, no-op nodes)",
        (f"{1e6 * scheduler['wall'] / scheduler['nodes']:.0f} µs ({scheduler['wall']:.2f} s for {scheduler['nodes']:,} "
        f"nodes, parallelism {scheduler['parallelism']})"), "", "",
    ])  # fmt: skip
    plan_total = plan["load"] + plan["graph"] + plan["plan"]
    rows += [
        ["plan: spec load + graph build + plan, empty state",
         f"{plan_total:.2f} s (load {plan['load']:.2f} s, graph {plan['graph']:.2f} s, plan {plan['plan']:.3f} s)",
         f"≤ {PLAN_TARGET_SECONDS:g} s", common.verdict(plan_total, PLAN_TARGET_SECONDS)],
        ["`Engine.plan` (adds the catalog check on the embedded emulator)", f"{plan['engine_plan']:.2f} s", "", ""],
        ["`cws-workload plan FILE` (adds interpreter start and imports)",
         f"{results['cli_plan'][0]:.2f} s (exit code {results['cli_plan'][1]})", "", ""],
    ]  # fmt: skip
    lines.append(common.markdown_table(["measure", "value", "target", "verdict"], rows))
    if not apply_result.get("timed_out"):
        lines += [
            "",
            f"Parallelism of the apply: {apply_result['parallelism']} (the engine's default unless `--parallelism` "
            "is given). Calls by endpoint: "
            + ", ".join(f"`{endpoint}` {count:,}" for endpoint, count in apply_result["calls"].items())
            + ".",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    arguments = parse_arguments()
    if arguments.child:
        measure = {"apply": child_apply, "scheduler": child_scheduler, "plan": child_plan}[arguments.child]
        print(json.dumps(measure(arguments)))
        return 0

    directory = common.OUT_DIR / "scale"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    workload = common.generate_workload(
        arguments.resources, arguments.seed, f"scale-{arguments.resources}", root_fraction=0.02
    )
    spec = workload.write(directory / "workload.yaml")
    machine = common.machine_description()
    print(f"{workload.describe()}", flush=True)
    results: dict[str, Any] = {}
    results["plan"] = run_child("plan", arguments, spec, directory / "plan" / "state.db")
    results["cli_plan"] = cli_plan_seconds(spec, directory / "cli-plan" / "state.db", arguments.profile)
    print(f"  plan {results['plan']}", flush=True)
    results["scheduler"] = run_child("scheduler", arguments, spec, directory / "scheduler" / "state.db")
    print(f"  scheduler {results['scheduler']}", flush=True)
    results["apply"] = run_child("apply", arguments, spec, directory / "apply" / "state.db")
    print(f"  apply {results['apply']}", flush=True)
    section = render(arguments, workload, results, machine, common.machine_description()["load_average"])
    if arguments.no_write:
        print(section)
    else:
        common.write_section("scale", section)
        print(f"wrote the scale section of {common.DOCS_PAGE.relative_to(common.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
