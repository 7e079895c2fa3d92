"""A Gantt chart of one 100-resource apply, drawn from `RunSummary.timeline`.

Each row is one resource. Its spans are the time it waited for its
dependencies, the time its create was in flight (`creating`), the time an
action ran after the create (`configuring`, a security group's rule), and the
time the engine refreshed a booting VM or building image (`refreshing`). The run's critical
path, as the engine measured it, is outlined in red. The apply runs against a
served emulator with bench/profiles/makespan.yaml; by default a first apply
of the same DAG under another name teaches the state its durations, and the
chart shows the second (warm) apply.

Saves docs/images/gantt.png and writes the `gantt` section of docs/benchmarks.md.

    python bench/gantt.py               # warm apply, about 1 minute 20 seconds
    python bench/gantt.py --run cold    # the first apply on an empty state
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

import orchestrator
from orchestrator.config import resolve_settings
from orchestrator.engine import RunOptions

IMAGE_PATH = common.REPO / "docs" / "images" / "gantt.png"
STATE_COLORS = {
    "waiting": "#d9d9d9",
    "creating": "#4c78a8",
    "configuring": "#9d67c7",
    "refreshing": "#f2a541",
}
CRITICAL_COLOR = "#d62728"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=100, help="resources in the workload (default: 100)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated DAG (default: 1)")
    parser.add_argument("--run", choices=("warm", "cold"), default="warm", help="which apply to draw (default: warm)")
    parser.add_argument(
        "--profile", type=Path, default=common.PROFILES_DIR / "makespan.yaml", help="fixed-duration emulator profile"
    )
    parser.add_argument("--no-write", action="store_true", help="save the PNG but print the section")
    return parser.parse_args()


def spans_of(phases: list[tuple[str, float]]) -> list[tuple[str, float, float]]:
    """Turn a node's (state, time) list into (state, start, end) spans of the drawn states."""
    spans = []
    for (state, start), (_, end) in itertools.pairwise(phases):
        if state in STATE_COLORS and end > start:
            spans.append((state, start, end))
    return spans


def draw(timeline: dict[str, list[tuple[str, float]]], critical: list[str], title: str, marks: dict[str, float],
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    def first_start(address: str) -> float:
        phases = timeline[address]
        return next((at for state, at in phases if state != "waiting"), phases[-1][1])

    rows = sorted(timeline, key=lambda address: (first_start(address), address))
    height = max(4.0, 0.14 * len(rows) + 1.6)
    figure, axes = plt.subplots(figsize=(11, height), dpi=110)
    critical_set = set(critical)
    for row, address in enumerate(rows):
        for state, start, end in spans_of(timeline[address]):
            on_path = address in critical_set and state != "waiting"
            axes.barh(
                row, end - start, left=start, height=0.72, color=STATE_COLORS[state],
                edgecolor=CRITICAL_COLOR if on_path else "none", linewidth=1.8 if on_path else 0,
            )  # fmt: skip
    axes.set_yticks(range(len(rows)))
    labels = axes.set_yticklabels(rows, fontsize=5.5)
    for label, address in zip(labels, rows, strict=True):
        if address in critical_set:
            label.set_color(CRITICAL_COLOR)
            label.set_fontweight("bold")
    axes.invert_yaxis()
    axes.set_ylim(len(rows) - 0.4, -0.6)
    for name, seconds in marks.items():
        axes.axvline(seconds, color="#555555", linestyle="--", linewidth=0.9)
        axes.text(seconds, -0.9, f" {name} {seconds:.1f} s", fontsize=7, color="#333333", va="bottom", rotation=0)
    end = max(phases[-1][1] for phases in timeline.values())
    axes.set_xlim(0, max(end, *marks.values()) * 1.02)
    axes.set_xlabel("seconds since the run started")
    axes.set_title(title, fontsize=10, pad=16)
    axes.grid(axis="x", color="#eeeeee", linewidth=0.6)
    axes.set_axisbelow(True)
    handles = [Patch(facecolor=color, label=state) for state, color in STATE_COLORS.items()]
    handles.append(Patch(facecolor="white", edgecolor=CRITICAL_COLOR, linewidth=1.4, label="critical path"))
    axes.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.95)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


async def apply_once(spec: Path, state: Path, url: str, parallelism: int) -> tuple[Any, float]:
    settings = resolve_settings(endpoint=url, state=str(state))
    started = time.perf_counter()
    summary = await orchestrator.apply_async(spec, settings=settings, options=RunOptions(parallelism=parallelism))
    if not summary.ok:
        raise RuntimeError(f"apply of {spec} ended {summary.result}: {summary.failures[:3]}")
    return summary, time.perf_counter() - started


def main() -> int:
    arguments = parse_arguments()
    common.quiet_engine_logs()
    directory = common.OUT_DIR / "gantt"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    machine = common.machine_description()
    durations = common.load_fixed_durations(arguments.profile)
    workload = common.generate_workload(arguments.resources, arguments.seed, "gantt-warm")
    profile_seconds, _ = common.profile_critical_path(workload, durations)
    parallelism = 2 * arguments.resources
    with common.served_emulator(arguments.profile, directory / "emulator.db") as emulator:
        if arguments.run == "warm":
            learning_spec = workload.renamed("gantt-learn").write(directory / "learn.yaml")
            anyio.run(apply_once, learning_spec, directory / "state.db", emulator.url, parallelism)
        spec = workload.renamed(f"gantt-{arguments.run}").write(directory / "workload.yaml")
        summary, wall = anyio.run(apply_once, spec, directory / "state.db", emulator.url, parallelism)

    critical = summary.metrics["critical_path"]
    title = (
        f"{arguments.run} apply of {workload.describe()}\n"
        f"wall {wall:.1f} s, critical path from the profile {profile_seconds:.1f} s"
    )
    draw(summary.timeline, critical, title, {"profile's critical path": profile_seconds}, IMAGE_PATH)
    print(f"saved {IMAGE_PATH.relative_to(common.REPO)}", flush=True)

    run_description = (
        "the second apply of the DAG on one state file, whose polls are timed from the durations the first "
        "apply learnt" if arguments.run == "warm" else "the first apply on an empty state"
    )
    lines = [
        "## Timeline of one apply",
        "",
        f"Command: `{common.command_line()}`  ",
        f"Date: {common.today()}; engine: {machine['engine']}.  ",
        common.machine_line(machine, common.machine_description()["load_average"]),
        "",
        (f"The chart shows {run_description}. The workload has {workload.describe()}. It ran on a served "
        f"emulator with `{arguments.profile.name}` (the durations of the makespan section), parallelism "
        f"{parallelism}. "
        "Each row is one resource, in the order the resources started. Grey is the time a resource waited "
        "for its dependencies, blue its create in flight (request and first read), purple the action that "
        "adds a security group's rule, and orange the refreshes of a booting VM or building image. The "
        "resources outlined in red are the run's critical path as the engine measured it "
        f"({' → '.join(critical)}, {summary.metrics['critical_path_seconds']:.1f} s); the dashed line is the "
        f"critical path the profile's durations imply ({profile_seconds:.1f} s). Apply wall time: {wall:.1f} s."),
        "",
        "![Gantt chart of one apply](images/gantt.png)",
    ]
    section = "\n".join(lines) + "\n"
    if arguments.no_write:
        print(section)
    else:
        common.write_section("gantt", section)
        print(f"wrote the gantt section of {common.DOCS_PAGE.relative_to(common.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
