"""cws-workload against an Ansible playbook and a sequential script, on one served emulator and one workload.

The workload has 100 resources: 34 key pairs, 33 VMs that each use one of
them, and 33 images, one of each VM (the tutorial's chain, 33 times). Three
clients create it in turn, each under its own names, on one
`cws-workload emulator serve` on 127.0.0.1 with bench/profiles/peers.yaml
(the tutorial's durations scaled by 0.005):

1. `cws-workload apply`, the command a user runs;
2. `ansible-playbook bench/ansible/playbook.yml`: ansible.builtin.uri calls
   with `until`/`retries`/`delay: 1` polling, one resource after another.
   ansible-core is installed from PyPI into bench/.venv-ansible by this script
   and runs only against localhost with `connection: local`;
3. a sequential script in the manner of the tutorial (`common.FixedPollClient`
   one resource at a time): create, poll every second, then the next.

Wall time is measured around each client; API calls are the emulator's own
count (`GET /admin/stats`) before and after each client. Writes the `peers`
section of docs/benchmarks.md. Takes about 8 minutes, most of it the
playbook and the sequential script.

    python bench/peers.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from orchestrator.config import DEMO_API_KEY, DEMO_API_SECRET

SPEEDUP_TARGET = 20.0
ADMIN_KEY = "bench-peers"
ANSIBLE_VENV = common.BENCH_DIR / ".venv-ansible"
ANSIBLE_REQUIREMENT = "ansible-core>=2.16,<2.20"
PLAYBOOK = common.BENCH_DIR / "ansible" / "playbook.yml"
RUN_TIMEOUT_SECONDS = 900
INSTALL_TIMEOUT_SECONDS = 600


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, default=33, help="key pair, VM and image chains (default: 33)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the emulator's duration draws (default: 1)")
    parser.add_argument("--profile", type=Path, default=common.PROFILES_DIR / "peers.yaml", help="emulator profile")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing the page")
    return parser.parse_args()


def chain_workload(chains: int, name: str) -> common.BenchWorkload:
    """Return `chains` key pair → VM → image chains and one spare key pair: 3 × chains + 1 resources."""
    nodes: dict[str, common.BenchNode] = {}
    for index in range(1, chains + 1):
        key_pair = common.BenchNode(name=f"kp{index:03d}", type="kp", layer=0)
        vm = common.BenchNode(name=f"vm{index:03d}", type="vm", layer=1, key_pair=key_pair.name)
        image = common.BenchNode(name=f"img{index:03d}", type="image", layer=2, source_vm=vm.name)
        nodes.update({node.name: node for node in (key_pair, vm, image)})
    spare = common.BenchNode(name=f"kp{chains + 1:03d}", type="kp", layer=0)
    nodes[spare.name] = spare
    return common.BenchWorkload(name=name, seed=0, nodes=nodes)


def install_ansible() -> str:
    """Create bench/.venv-ansible with ansible-core unless it is there; return `ansible-playbook --version`."""
    playbook_command = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not playbook_command.exists():
        print(f"installing {ANSIBLE_REQUIREMENT} into {ANSIBLE_VENV.relative_to(common.REPO)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True, timeout=INSTALL_TIMEOUT_SECONDS)
        subprocess.run(
            [str(ANSIBLE_VENV / "bin" / "pip"), "install", "--quiet", ANSIBLE_REQUIREMENT],
            check=True, timeout=INSTALL_TIMEOUT_SECONDS,
        )  # fmt: skip
    version = subprocess.run(
        [str(playbook_command), "--version"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return version.splitlines()[0].strip()


def measure(emulator: common.ServedEmulator, run: Callable[[], bool]) -> dict[str, Any]:
    """Run one client; return its wall time, whether it succeeded, and the calls the emulator served meanwhile."""
    before = emulator.stats()["calls"]
    started = time.perf_counter()
    succeeded = run()
    wall = time.perf_counter() - started
    after = emulator.stats()["calls"]
    calls = {endpoint: after.get(endpoint, 0) - before.get(endpoint, 0) for endpoint in after}
    return {"wall": wall, "ok": succeeded, "calls": {k: v for k, v in calls.items() if v}, "calls_total": sum(calls.values())}


def run_cws_workload(spec: Path, directory: Path, url: str) -> bool:
    command = ["cws-workload", "--endpoint", url, "--state", str(directory / "state.db"), "apply", str(spec)]
    with open(directory / "cws-workload.log", "w", encoding="utf-8") as log:
        completed = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_SECONDS, check=False
        )
    return completed.returncode == 0


def run_playbook(workload: common.BenchWorkload, directory: Path, url: str) -> bool:
    resources = []
    for node in workload.nodes.values():
        resource: dict[str, Any] = {"name": node.name, "type": node.type}
        if node.type == "vm":
            resource.update(flavor=common.VM_RESOURCE, image_uri=common.PUBLIC_IMAGE_URI, key_pair=node.key_pair)
        if node.type == "image":
            resource["source_vm"] = node.source_vm
        resources.append(resource)
    variables = directory / "ansible-vars.json"
    variables.write_text(
        json.dumps({"cws_endpoint": url, "cws_api_key": DEMO_API_KEY, "cws_api_secret": DEMO_API_SECRET,
                    "cws_resources": resources}),
        encoding="utf-8",
    )  # fmt: skip
    variables.chmod(0o600)
    home = directory / "ansible-home"
    environment = {
        **os.environ,
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    command = [
        str(ANSIBLE_VENV / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
        "-e", f"@{variables}", str(PLAYBOOK),
    ]  # fmt: skip
    with open(directory / "ansible.log", "w", encoding="utf-8") as log:
        completed = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_SECONDS, env=environment, check=False
        )
    return completed.returncode == 0


def run_sequential(workload: common.BenchWorkload, url: str) -> bool:
    client = common.FixedPollClient(url, DEMO_API_KEY, DEMO_API_SECRET)

    async def apply() -> None:
        with anyio.fail_after(RUN_TIMEOUT_SECONDS):
            await client.apply(workload, concurrent=False)

    anyio.run(apply)
    return True


def render(arguments: argparse.Namespace, workload: common.BenchWorkload, results: dict[str, dict[str, Any]],
           ansible_version: str, machine: dict[str, Any], load_after: tuple[float, float, float]) -> str:
    ours = results["cws-workload"]
    lines = [
        "## cws-workload, an Ansible playbook and a sequential script",
        "",
        f"Command: `{common.command_line()}`  ",
        f"Date: {common.today()}; engine: {machine['engine']}; {ansible_version}.  ",
        common.machine_line(machine, load_after),
        "",
        (f"Workload: {len(workload.nodes)} resources, {arguments.chains} chains of a key pair, a VM using it and an "
        "image of the VM, plus one spare key pair. All three clients ran once each, in the order of the table, on "
        f"one served emulator (`cws-workload emulator serve` on 127.0.0.1) with emulator seed {arguments.seed}. "
        f"Its profile `{arguments.profile.name}` has the tutorial's durations scaled by 0.005, so a VM boots in "
        "1.65 to 1.9 s and an image builds in 0.45 to 0.6 s."),
        "",
        ("- **cws-workload**: `cws-workload --endpoint URL --state FILE apply FILE` on an empty state, default "
        "parallelism; the wall time includes the interpreter's start."),
        ("- **Ansible playbook**: `bench/ansible/playbook.yml`, `ansible-playbook -i localhost, -c local`. Every "
        "call is an `ansible.builtin.uri` task. A request is polled with `until`/`retries: 120`/`delay: 1`, and "
        "the first poll goes out at once. A booting VM or building image is refreshed by a task file that "
        "includes itself until a retrieve reports a stable status."),
        ("- **Sequential script**: `common.FixedPollClient` one resource at a time, as the tutorial does it: "
        "create, wait a second, poll, and for a VM or image refresh and poll each second until stable."),
        "",
        ("API calls are what the emulator served during each run (`GET /admin/stats`), so they include the "
        f"engine's connection and catalog checks. Target: cws-workload at least {SPEEDUP_TARGET:g}× faster "
        "than the playbook."),
        "",
    ]
    rows = []
    for name, measured in results.items():
        speedup = measured["wall"] / ours["wall"]
        rows.append([
            name, "yes" if measured["ok"] else "**no**", f"{measured['wall']:.1f}", f"{speedup:.1f}×",
            measured["calls_total"], f"{measured['calls_total'] / ours['calls_total']:.2f}",
        ])  # fmt: skip
    lines.append(common.markdown_table(
        ["client", "succeeded", "wall (s)", "wall / cws-workload's wall", "API calls", "calls / cws-workload's calls"],
        rows,
    ))  # fmt: skip
    speedup = results["Ansible playbook"]["wall"] / ours["wall"]
    lines += [
        "",
        (f"cws-workload is {speedup:.1f}× faster than the playbook: target ≥ {SPEEDUP_TARGET:g}×, "
        f"{common.verdict(speedup, SPEEDUP_TARGET, at_most=False)}."),
        "",
        "Calls by endpoint, as the emulator names them:",
        "",
    ]
    endpoints = sorted({endpoint for measured in results.values() for endpoint in measured["calls"]})
    lines.append(common.markdown_table(
        ["endpoint", *results],
        [[f"`{endpoint}`", *(measured["calls"].get(endpoint, 0) for measured in results.values())]
         for endpoint in endpoints],
    ))  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    arguments = parse_arguments()
    directory = common.OUT_DIR / "peers"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    ansible_version = install_ansible()
    machine = common.machine_description()
    results: dict[str, dict[str, Any]] = {}
    with common.served_emulator(
        arguments.profile, directory / "emulator.db", admin_key=ADMIN_KEY, seed=arguments.seed
    ) as emulator:
        workload = chain_workload(arguments.chains, "peers-cws")
        spec = workload.write(directory / "workload.yaml")
        results["cws-workload"] = measure(emulator, lambda: run_cws_workload(spec, directory, emulator.url))
        print(f"cws-workload {results['cws-workload']['wall']:.1f} s", flush=True)
        playbook_workload = chain_workload(arguments.chains, "peers-ansible")
        results["Ansible playbook"] = measure(emulator, lambda: run_playbook(playbook_workload, directory, emulator.url))
        print(f"Ansible playbook {results['Ansible playbook']['wall']:.1f} s", flush=True)
        script_workload = chain_workload(arguments.chains, "peers-script")
        results["sequential script"] = measure(emulator, lambda: run_sequential(script_workload, emulator.url))
        print(f"sequential script {results['sequential script']['wall']:.1f} s", flush=True)
    section = render(arguments, workload, results, ansible_version, machine, common.machine_description()["load_average"])
    if arguments.no_write:
        print(section)
    else:
        common.write_section("peers", section)
        print(f"wrote the peers section of {common.DOCS_PAGE.relative_to(common.REPO)}")
    return 0 if all(measured["ok"] for measured in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
