"""Shared pieces of the benchmarks in bench/.

- `served_emulator`: runs `cws-workload emulator serve` on 127.0.0.1 with an
  ephemeral port in a subprocess and yields its URL.
- `generate_workload`: a random layered DAG of key pairs, security groups,
  VMs and images, reproducible from a seed, written as a workload file.
- `profile_critical_path`: the longest chain of per-node durations that a
  fixed-duration emulator profile implies for such a workload.
- `FixedPollClient`: a plain client that creates the same resources the way
  the tutorial does, polling every request once a second.
- `write_section`: replaces one benchmark's section of docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
PROFILES_DIR = BENCH_DIR / "profiles"
OUT_DIR = BENCH_DIR / "out"
DOCS_PAGE = REPO / "docs" / "benchmarks.md"

# Sections of docs/benchmarks.md, in page order.
SECTION_ORDER = ("makespan", "scale", "peers", "gantt")
PAGE_HEADER = """# Benchmarks

Each section below is written by one script in `bench/` and replaced when that
script runs again. Every figure is measured by the command shown in its
section, on the machine described there; nothing on this page is edited by
hand. The workloads are random layered DAGs generated from a seed
(`bench/common.py`), applied against the project's emulator.
"""

PROVIDER = "hpcloud"
REGION = "nova"
PUBLIC_IMAGE_URI = f"image/{PROVIDER}/{REGION}/ami-00000075"
VM_RESOURCE = "standard.small"
SSH_RULE = {"protocol": "tcp", "from-port": 22, "to-port": 22, "cidr-ip": "0.0.0.0/0"}

LISTENING_PATTERN = re.compile(r"Emulator listening on (http://\S+)")
ADMIN_KEY_HEADER = "X-CWS-Admin-Key"


# The machine


def machine_description() -> dict[str, Any]:
    """Return the engine's revision, and the core count, CPU model, total memory and load of this machine."""
    cpu_model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
                break
    return {
        # Read when the benchmark starts, because the checkout may change while it runs.
        "engine": engine_revision(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "load_average": os.getloadavg(),
    }


def machine_line(before: dict[str, Any], after_load: tuple[float, float, float] | None = None) -> str:
    """Describe the machine and its 1-minute load average before (and after) the measurement."""
    load = f"load average {before['load_average'][0]:.2f} before"
    if after_load is not None:
        load += f", {after_load[0]:.2f} after"
    return (
        f"Machine: `nproc` {before['nproc']}, {before['cpu_model']}, {before['memory_gib']} GiB of memory; "
        f"{load} (other work shares this machine)."
    )


def command_line() -> str:
    """Return the command that started this benchmark, as a user would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_path = script.relative_to(REPO)
    except ValueError:
        script_path = script
    return shlex.join(["python", str(script_path), *sys.argv[1:]])


def engine_revision() -> str:
    """Return the commit of the checkout and whether orchestrator/ differs from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "orchestrator"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes in orchestrator/" if changed else "")


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def quiet_engine_logs() -> None:
    """Keep the engine's and the embedded emulator's info lines off the benchmark's output."""
    from orchestrator.logs import configure_logging

    configure_logging("error")


# docs/benchmarks.md


def _marker(name: str, end: bool) -> str:
    return f"<!-- {name}:{'end' if end else 'start'} -->"


def write_section(name: str, body: str, page: Path = DOCS_PAGE) -> None:
    """Replace the section `name` of the benchmarks page with `body`, leaving the rest of the page as it is.

    A section sits between `<!-- NAME:start -->` and `<!-- NAME:end -->`. A
    new section goes before the next section of `SECTION_ORDER` already on
    the page, or at the end. Sections written by other scripts stay where
    they are.
    """
    if name not in SECTION_ORDER:
        raise ValueError(f"unknown section {name!r}; expected one of {', '.join(SECTION_ORDER)}")
    text = page.read_text(encoding="utf-8") if page.exists() else PAGE_HEADER
    block = f"{_marker(name, False)}\n{body.strip(chr(10))}\n{_marker(name, True)}"
    start, end = text.find(_marker(name, False)), text.find(_marker(name, True))
    if start >= 0 and end > start:
        text = text[:start] + block + text[end + len(_marker(name, True)):]
    else:
        later = [text.find(_marker(other, False)) for other in SECTION_ORDER[SECTION_ORDER.index(name) + 1:]]
        later = [position for position in later if position >= 0]
        if later:
            position = min(later)
            text = text[:position] + block + "\n\n" + text[position:]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text, encoding="utf-8")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(value: float, target: float, *, at_most: bool = True) -> str:
    met = value <= target if at_most else value >= target
    return "met" if met else "**missed**"


# The served emulator


@dataclass
class ServedEmulator:
    url: str
    admin_key: str | None
    log_path: Path
    pid: int

    def stats(self) -> dict[str, Any]:
        """Return the emulator's `GET /admin/stats`: calls served by endpoint and faults injected."""
        if self.admin_key is None:
            raise RuntimeError("the emulator was started without an admin key, so /admin/stats is not served")
        response = httpx.get(f"{self.url}/admin/stats", headers={ADMIN_KEY_HEADER: self.admin_key}, timeout=10)
        response.raise_for_status()
        return response.json()


@contextmanager
def served_emulator(
    profile: Path,
    db_path: Path,
    *,
    admin_key: str | None = None,
    seed: int | None = None,
    startup_seconds: float = 60.0,
) -> Iterator[ServedEmulator]:
    """Run `cws-workload emulator serve` on 127.0.0.1 with an ephemeral port; yield its URL; stop it.

    The server's output goes to a log file next to the database. Raises
    RuntimeError with the log's tail when the server exits or prints no URL
    within `startup_seconds`.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    log_path = db_path.with_suffix(".log")
    command = [
        "cws-workload", "emulator", "serve",
        "--host", "127.0.0.1", "--port", "0",
        "--profile", str(profile), "--db", str(db_path),
    ]  # fmt: skip
    if seed is not None:
        command += ["--seed", str(seed)]
    environment = dict(os.environ)
    if admin_key is not None:
        # The environment keeps the key out of process lists.
        environment["CWS_EMULATOR_ADMIN_KEY"] = admin_key
    # The finally block below closes the log once the server and its reader thread have stopped.
    log_file = open(log_path, "w", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL, text=True,
        cwd=db_path.parent, env=environment,
    )  # fmt: skip
    found: list[str] = []
    listening = threading.Event()

    def drain() -> None:
        # Reads the server's stdout until it closes, so that the server never blocks on a full pipe.
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            log_file.flush()
            match = LISTENING_PATTERN.search(line)
            if match and not found:
                found.append(match.group(1))
                listening.set()
        listening.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        listening.wait(startup_seconds)
        if not found:
            raise RuntimeError(
                f"`{shlex.join(command)}` printed no 'Emulator listening on' line within {startup_seconds:.0f} s "
                f"(exit code {process.poll()}); its log {log_path} ends with:\n{_tail(log_path)}"
            )
        url = found[0].rstrip("/")
        if httpx.URL(url).host != "127.0.0.1":
            raise RuntimeError(f"the emulator listens on {url}, not on 127.0.0.1")
        yield ServedEmulator(url=url, admin_key=admin_key, log_path=log_path, pid=process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        reader.join(timeout=5)
        log_file.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(cannot read the log: {error})"


# Workloads


@dataclass
class BenchNode:
    """One resource of a generated workload and the resources it reads."""

    name: str
    type: str
    layer: int
    key_pair: str | None = None
    security_groups: list[str] = field(default_factory=list)
    # The image node a VM boots from; None boots the catalog's public image.
    boot_image: str | None = None
    # The VM node an image is made from.
    source_vm: str | None = None
    rules: bool = False

    def dependencies(self) -> list[str]:
        found = [self.key_pair, *self.security_groups, self.boot_image, self.source_vm]
        return [name for name in found if name is not None]


@dataclass
class BenchWorkload:
    """A generated workload; `nodes` is in dependency order (every node after what it reads)."""

    name: str
    seed: int
    nodes: dict[str, BenchNode]

    def counts(self) -> Counter[str]:
        return Counter(node.type for node in self.nodes.values())

    def describe(self) -> str:
        counts = self.counts()
        edges = sum(len(node.dependencies()) for node in self.nodes.values())
        layers = 1 + max(node.layer for node in self.nodes.values())
        kinds = ", ".join(f"{counts[kind]:,} {kind}" for kind in ("kp", "sg", "vm", "image") if counts[kind])
        return f"{len(self.nodes):,} resources ({kinds}), {edges:,} edges, {layers} layers, seed {self.seed}"

    def document(self) -> dict[str, Any]:
        resources: dict[str, Any] = {}
        for node in self.nodes.values():
            resource: dict[str, Any] = {"type": node.type}
            if node.type in ("kp", "sg"):
                resource["resource"] = "standard"
            elif node.type == "vm":
                resource["resource"] = VM_RESOURCE
                resource["imageUri"] = (
                    f"${{{node.boot_image}.resourceUri}}" if node.boot_image else PUBLIC_IMAGE_URI
                )
                if node.key_pair:
                    resource["keyPairId"] = f"${{{node.key_pair}.instanceId}}"
                if node.security_groups:
                    resource["securityGroupIds"] = [f"${{{name}.instanceId}}" for name in node.security_groups]
            else:
                resource["from"] = f"${{{node.source_vm}.instanceId}}"
            if node.rules:
                resource["rules"] = [dict(SSH_RULE)]
            resource["metadata"] = {"name": node.name}
            resources[node.name] = resource
        return {
            "workload": self.name,
            "defaults": {"provider": PROVIDER, "region": REGION},
            "resources": resources,
        }

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"# Generated by bench/common.py: {self.describe()}.\n"
            + yaml.safe_dump(self.document(), sort_keys=False, width=200),
            encoding="utf-8",
        )
        return path

    def renamed(self, name: str) -> BenchWorkload:
        return BenchWorkload(name=name, seed=self.seed, nodes=self.nodes)


def generate_workload(
    total: int,
    seed: int,
    name: str,
    *,
    depth: int = 4,
    root_fraction: float = 0.1,
    key_pair_share: float = 0.5,
) -> BenchWorkload:
    """Generate a random layered DAG of `total` resources.

    Layer 0 contains key pairs and security groups (`root_fraction` of the total,
    `key_pair_share` of them key pairs, at least one of each). Then `depth`
    layers alternate VMs and images. Every VM reads one key pair and zero to
    two security groups of layer 0; a VM past the first VM layer boots from a
    random image of the layer before it. Every image is made from a random VM
    of the layer before it. Choices are uniform, so some nodes fan out to many
    readers and others to none. Security groups carry one access rule, which
    the engine adds with an action after the create.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    roots = max(2, round(total * root_fraction))
    if total < roots + depth:
        raise ValueError(f"{total} resources are too few for {depth} layers after {roots} key pairs and groups")
    rng = random.Random(seed)
    key_pairs = max(1, round(roots * key_pair_share))
    groups = max(1, roots - key_pairs)
    remaining = total - key_pairs - groups
    widths = [remaining // depth + (1 if layer < remaining % depth else 0) for layer in range(depth)]

    nodes: dict[str, BenchNode] = {}
    counters: Counter[str] = Counter()

    def add(node_type: str, layer: int, **fields: Any) -> BenchNode:
        counters[node_type] += 1
        prefix = "img" if node_type == "image" else node_type
        node = BenchNode(name=f"{prefix}{counters[node_type]:05d}", type=node_type, layer=layer, **fields)
        nodes[node.name] = node
        return node

    kp_names = [add("kp", 0).name for _ in range(key_pairs)]
    sg_names = [add("sg", 0, rules=True).name for _ in range(groups)]
    previous: list[str] = []
    for index, width in enumerate(widths):
        layer = index + 1
        current: list[str] = []
        for _ in range(width):
            if layer % 2 == 1:
                chosen_groups = rng.sample(sg_names, k=min(len(sg_names), rng.randint(0, 2)))
                node = add(
                    "vm",
                    layer,
                    key_pair=rng.choice(kp_names),
                    security_groups=sorted(chosen_groups),
                    boot_image=rng.choice(previous) if previous else None,
                )
            else:
                node = add("image", layer, source_vm=rng.choice(previous))
            current.append(node.name)
        previous = current
    return BenchWorkload(name=name, seed=seed, nodes=nodes)


# Critical path from a profile


@dataclass
class FixedDurations:
    """Per-action durations in seconds of a profile whose every distribution is `fixed`."""

    profile_path: Path
    seconds: dict[str, float]

    def of(self, key: str) -> float:
        return self.seconds[key]


def load_fixed_durations(profile_path: Path) -> FixedDurations:
    """Read a profile's scaled durations; raise ValueError unless every one is fixed."""
    from orchestrator.emulator.actions import PHASES, REQUEST_ACTIONS
    from orchestrator.emulator.profile import load_profile

    profile = load_profile(profile_path)
    not_fixed = [key for key, distribution in profile.durations.items() if distribution.kind != "fixed"]
    if not_fixed:
        raise ValueError(f"{profile_path}: durations {', '.join(not_fixed)} are not fixed; the critical path needs fixed ones")
    rng = random.Random(0)
    seconds = {key: profile.sample_seconds(key, rng) for key in (*REQUEST_ACTIONS, *PHASES)}
    return FixedDurations(profile_path, seconds)


def node_seconds(node: BenchNode, durations: FixedDurations, *, overlap_refresh: bool = False) -> float:
    """Return the time one node takes when every request is noticed the moment it finishes.

    A VM is its create, its boot and one retrieve that finds it running, and
    an image its create, its build and one retrieve. With `overlap_refresh`,
    the retrieve is sent before the boot or build ends so that it finishes
    just as the instance becomes stable, which is the least time possible.
    """
    d = durations.of
    if node.type == "kp":
        return d("kp.create")
    if node.type == "sg":
        return d("sg.create") + (d("sg.add-access") if node.rules else 0.0)
    if node.type == "vm":
        create, settle, retrieve = d("vm.create"), d("vm.boot"), d("vm.retrieve")
    else:
        create, settle, retrieve = d("vm.create.image"), d("image.build"), d("image.retrieve")
    return create + (max(settle, retrieve) if overlap_refresh else settle + retrieve)


def profile_critical_path(
    workload: BenchWorkload, durations: FixedDurations, *, overlap_refresh: bool = False
) -> tuple[float, list[str]]:
    """Return the longest chain of node durations through the workload, and its nodes."""
    finish: dict[str, float] = {}
    previous: dict[str, str | None] = {}
    for node in workload.nodes.values():
        start, before = 0.0, None
        for dependency in node.dependencies():
            if finish[dependency] > start:
                start, before = finish[dependency], dependency
        finish[node.name] = start + node_seconds(node, durations, overlap_refresh=overlap_refresh)
        previous[node.name] = before
    end = max(finish, key=lambda name: finish[name])
    path = [end]
    while previous[path[-1]] is not None:
        path.append(previous[path[-1]])  # type: ignore[arg-type]
    return finish[end], list(reversed(path))


def count_operations(api_calls: dict[str, int]) -> int:
    """Count the asynchronous requests among the engine's calls: creates, refreshes, actions and deletes."""
    operation_prefixes = ("POST ", "PUT ", "DELETE ", "GET /instance/{id}?refresh")
    return sum(count for endpoint, count in api_calls.items() if endpoint.startswith(operation_prefixes))


# A client that polls every second


class PollGaveUp(RuntimeError):
    """A request or an instance did not finish within the client's limit."""


@dataclass
class FixedPollClient:
    """Creates a workload's resources the tutorial's way: send, then poll the request every `interval` s.

    A transient instance (a booting VM, an image being built) is refreshed
    with a new retrieve request, itself polled every `interval` s, until the
    retrieve reports a stable status. The image URI that a VM boots from is
    read with one `GET /api/instance/{id}`. Every call is counted by endpoint.
    """

    base_url: str
    api_key: str
    api_secret: str
    interval: float = 1.0
    max_polls: int = 600
    calls: Counter[str] = field(default_factory=Counter)
    operations: int = 0
    _uri_needed: set[str] = field(default_factory=set)

    async def apply(self, workload: BenchWorkload, *, concurrent: bool) -> float:
        """Create every resource, concurrently in dependency order or one at a time; return the wall seconds."""
        outputs: dict[str, dict[str, Any]] = {}
        self._uri_needed = {node.boot_image for node in workload.nodes.values() if node.boot_image}
        started = time.monotonic()
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=self.base_url + "/api", auth=(self.api_key, self.api_secret), timeout=30, limits=limits
        ) as http:
            if concurrent:
                done = {name: anyio.Event() for name in workload.nodes}

                async def run(node: BenchNode) -> None:
                    for dependency in node.dependencies():
                        await done[dependency].wait()
                    await self._create(http, node, outputs)
                    done[node.name].set()

                async with anyio.create_task_group() as group:
                    for node in workload.nodes.values():
                        group.start_soon(run, node)
            else:
                for node in workload.nodes.values():
                    await self._create(http, node, outputs)
        return time.monotonic() - started

    async def _call(self, http: httpx.AsyncClient, name: str, method: str, path: str, **keywords: Any) -> Any:
        self.calls[name] += 1
        response = await http.request(method, path, **keywords)
        response.raise_for_status()
        return response.json()

    async def _follow(self, http: httpx.AsyncClient, request: dict[str, Any]) -> dict[str, Any]:
        self.operations += 1
        for _ in range(self.max_polls):
            await anyio.sleep(self.interval)
            body = await self._call(http, "GET /request/{id}", "GET", f"/request/{request['requestId']}")
            current = body[0] if isinstance(body, list) else body
            if current.get("requestStatus") == "failed":
                raise PollGaveUp(f"request {request['requestId']} failed: {current.get('results')}")
            if current.get("requestStatus") != "in-progress":
                return current
        raise PollGaveUp(f"request {request['requestId']} still in-progress after {self.max_polls} polls")

    async def _create(self, http: httpx.AsyncClient, node: BenchNode, outputs: dict[str, dict[str, Any]]) -> None:
        metadata = {"name": node.name}
        if node.type == "image":
            vm_id = outputs[node.source_vm]["instanceId"]  # type: ignore[index]
            request = await self._call(
                http, "POST /instance/{id}?action=image", "POST", f"/instance/{vm_id}",
                params={"action": "image"}, json={"metadata": metadata},
            )  # fmt: skip
        else:
            body: dict[str, Any] = {"metadata": metadata}
            resource = "standard"
            if node.type == "vm":
                resource = VM_RESOURCE
                body["imageUri"] = outputs[node.boot_image]["resourceUri"] if node.boot_image else PUBLIC_IMAGE_URI
                if node.key_pair:
                    body["keyPairId"] = outputs[node.key_pair]["instanceId"]
                if node.security_groups:
                    body["securityGroupIds"] = [outputs[name]["instanceId"] for name in node.security_groups]
            request = await self._call(
                http, "POST /resource", "POST", f"/resource/{node.type}/{PROVIDER}/{REGION}/{resource}", json=body
            )
        final = await self._follow(http, request)
        instance_id = final["instanceId"]
        status = (final.get("results") or {}).get("instanceStatus")
        for _ in range(self.max_polls):
            if status != "creating":
                break
            refresh = await self._call(
                http, "GET /instance/{id}?refresh", "GET", f"/instance/{instance_id}", params={"refresh": "true"}
            )
            status = ((await self._follow(http, refresh)).get("results") or {}).get("instanceStatus")
        else:
            raise PollGaveUp(f"{node.name}: instance {instance_id} still creating after {self.max_polls} refreshes")
        if node.rules:
            action = await self._call(
                http, "PUT /instance/{id}?action=add-access", "PUT", f"/instance/{instance_id}",
                params={"action": "add-access"}, json={"rules": [dict(SSH_RULE)]},
            )  # fmt: skip
            await self._follow(http, action)
        output: dict[str, Any] = {"instanceId": instance_id}
        if node.name in self._uri_needed:
            instance = await self._call(http, "GET /instance/{id}", "GET", f"/instance/{instance_id}")
            output["resourceUri"] = instance["resourceUri"]
        outputs[node.name] = output
