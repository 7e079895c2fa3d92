"""Throughput of `GET /api/request/{id}` on a served emulator, over loopback.

Starts `cws-workload emulator serve` (uvicorn, one process) on 127.0.0.1,
creates one key pair request, then runs client processes that fetch that
request in a keep-alive loop for a fixed time, all starting together. Prints
requests served per second and writes the `emulator-throughput` section of
docs/benchmarks.md.

Two client kinds run one after the other:

- `transport`: httpx's `HTTPTransport.handle_request` with a request built
  once. This is the headline figure: on a 2-core machine the client shares
  the cores with the server, and `httpx.Client.get` spends more CPU per
  call than the server does, so it would measure the client.
- `client`: `httpx.Client.get`, for comparison.

    python bench/emulator_throughput.py                      # 4 processes, 10 s per client kind
    python bench/emulator_throughput.py --processes 3 --seconds 5
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import multiprocessing
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
DOCS_PAGE = REPO / "docs" / "benchmarks.md"
SECTION = "emulator-throughput"
TARGET_PER_SECOND = 2000
ADMIN_KEY = "bench-admin-key"
DEMO_API_KEY = "63a25f81-15dd-481e-a4d4-c5ed9a80f93a"
DEMO_API_SECRET = "cws-demo-secret"
LISTENING = re.compile(r"Emulator listening on (http://\S+)")
STARTUP_TIMEOUT_SECONDS = 60
# Client processes start this long after being spawned, so imports do not eat into the measured time.
START_DELAY_SECONDS = 3.0


@contextmanager
def served_emulator(directory: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run `cws-workload emulator serve` on 127.0.0.1 with a free port; yield its URL and process."""
    command = [
        "cws-workload", "emulator", "serve", "--host", "127.0.0.1", "--port", "0",
        "--profile", "fast", "--db", str(directory / "emulator.db"),
    ]  # fmt: skip
    environment = {**os.environ, "CWS_EMULATOR_ADMIN_KEY": ADMIN_KEY}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, env=environment
    )
    found: list[str] = []
    listening = threading.Event()

    def drain() -> None:
        # Read stdout until the server closes it, so the server never blocks on a full pipe.
        assert process.stdout is not None
        for line in process.stdout:
            match = LISTENING.search(line)
            if match and not found:
                found.append(match.group(1))
                listening.set()
        listening.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not listening.wait(STARTUP_TIMEOUT_SECONDS) or not found:
            raise RuntimeError(f"the emulator printed no URL within {STARTUP_TIMEOUT_SECONDS} s (exit code {process.poll()})")
        yield found[0], process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def create_request(url: str) -> str:
    """Create a key pair and return the id of its request once completed."""
    with httpx.Client(base_url=url, auth=(DEMO_API_KEY, DEMO_API_SECRET), timeout=10) as client:
        created = client.post("/api/resource/kp/hpcloud/nova/standard", json={"metadata": {"name": "bench"}})
        created.raise_for_status()
        request_id = created.json()["requestId"]
        for _ in range(100):
            if client.get(f"/api/request/{request_id}").json()[0]["requestStatus"] == "completed":
                return request_id
            time.sleep(0.05)
    raise RuntimeError(f"request {request_id} did not complete within 5 s")


def fetch_loop(kind: str, url: str, request_id: str, start_at: float, seconds: float, results: Any) -> None:
    """Fetch the request from `start_at` for `seconds`; put (responses, errors, CPU seconds) on `results`."""
    target = f"{url}/api/request/{request_id}"
    credentials = base64.b64encode(f"{DEMO_API_KEY}:{DEMO_API_SECRET}".encode()).decode()
    expected = request_id.encode()
    responses = errors = 0

    with httpx.Client(auth=(DEMO_API_KEY, DEMO_API_SECRET), timeout=10) as client, httpx.HTTPTransport() as transport:
        prepared = httpx.Request("GET", target, headers={"Authorization": f"Basic {credentials}"})

        def fetch_once() -> tuple[int, bytes]:
            if kind == "client":
                response = client.get(target)
                return response.status_code, response.content
            response = transport.handle_request(prepared)
            try:
                return response.status_code, response.read()
            finally:
                response.close()

        fetch_once()
        while time.time() < start_at:
            time.sleep(0.001)
        cpu_before = time.process_time()
        end_at = start_at + seconds
        while time.time() < end_at:
            status, body = fetch_once()
            if status == 200 and expected in body:
                responses += 1
            else:
                errors += 1
        cpu_seconds = time.process_time() - cpu_before
    results.put((responses, errors, cpu_seconds))


def server_cpu_seconds(pid: int) -> float | None:
    """Return the CPU seconds the process has used, or None where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def measure(kind: str, url: str, request_id: str, server_pid: int, processes: int, seconds: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + START_DELAY_SECONDS
    workers = [
        context.Process(target=fetch_loop, args=(kind, url, request_id, start_at, seconds, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    while time.time() < start_at:
        time.sleep(0.001)
    server_before = server_cpu_seconds(server_pid)
    time.sleep(seconds)
    server_after = server_cpu_seconds(server_pid)

    outcomes = [results.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    responses = sum(outcome[0] for outcome in outcomes)
    errors = sum(outcome[1] for outcome in outcomes)
    client_cpu = sum(outcome[2] for outcome in outcomes)
    server_cpu = None if server_before is None or server_after is None else server_after - server_before
    return {
        "kind": kind,
        "responses": responses,
        "errors": errors,
        "per_second": responses / seconds,
        "server_cores": None if server_cpu is None else server_cpu / seconds,
        "client_cores": client_cpu / seconds,
    }


def machine() -> dict[str, str]:
    cpu_model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model,
        "load": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def section_text(command: str, facts: dict[str, str], rows: list[dict[str, Any]], processes: int, seconds: float) -> str:
    headline = rows[0]
    verdict = "met" if headline["per_second"] >= TARGET_PER_SECOND else "**missed**"
    lines = [
        "## Emulator throughput",
        "",
        f"`GET /api/request/{{id}}` served by one uvicorn process of `cws-workload emulator serve` "
        f"(fast profile, SQLite store) on 127.0.0.1, fetched by {processes} client processes in "
        f"keep-alive loops for {seconds:g} s each. Target: {TARGET_PER_SECOND:,} requests a second "
        f"with the `transport` clients: {verdict}.",
        "",
        f"- command: `{command}`",
        f"- machine: {facts['cores']} cores (`nproc`), {facts['cpu']}, Python {facts['python']}; "
        f"load average before the run: {facts['load']}",
        f"- date: {facts['date']}",
        "",
        "| client | requests/s | errors | server CPU (cores) | client CPU (cores) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        server = "n/a" if row["server_cores"] is None else f"{row['server_cores']:.2f}"
        lines.append(
            f"| {row['kind']} | {row['per_second']:,.0f} | {row['errors']} | {server} | {row['client_cores']:.2f} |"
        )
    lines += [
        "",
        "`transport` calls httpx's `HTTPTransport.handle_request` with a request built once; `client` calls "
        "`httpx.Client.get`, which costs more CPU per call than the server spends, so on 2 cores it "
        "measures the client as much as the server.",
    ]
    return "\n".join(lines)


def write_section(body: str, page: Path = DOCS_PAGE) -> None:
    """Replace this benchmark's section of the page, or append it; the rest of the page stays as it is."""
    start, end = f"<!-- {SECTION}:start -->", f"<!-- {SECTION}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = page.read_text(encoding="utf-8") if page.exists() else "# Benchmarks\n"
    first, last = text.find(start), text.find(end)
    if first >= 0 and last > first:
        text = text[:first] + block + text[last + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4, help="client processes per client kind (default 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per client kind (default 10)")
    parser.add_argument("--no-write", action="store_true", help="print the figures without writing docs/benchmarks.md")
    arguments = parser.parse_args()
    if not 1 <= arguments.processes <= 32 or not 1 <= arguments.seconds <= 120:
        parser.error("--processes must be 1 to 32 and --seconds 1 to 120")

    command = "python bench/emulator_throughput.py" + "".join(
        f" {shlex.quote(argument)}" for argument in sys.argv[1:] if argument != "--no-write"
    )
    facts = machine()
    if os.getloadavg()[0] > 0.5:
        print(f"warning: load average {facts['load']} before the run; other processes share the cores", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cws-bench-") as directory, served_emulator(Path(directory)) as (url, process):
        request_id = create_request(url)
        for kind in ("transport", "client"):
            row = measure(kind, url, request_id, process.pid, arguments.processes, arguments.seconds)
            rows.append(row)
            print(
                f"{kind:>9}: {row['per_second']:,.0f} requests/s ({row['responses']:,} in {arguments.seconds:g} s, "
                f"{row['errors']} errors)",
                flush=True,
            )
        served = httpx.get(f"{url}/admin/stats", headers={"X-CWS-Admin-Key": ADMIN_KEY}, timeout=10).json()
        print(f"the server counted {served['calls'].get('getRequest', 0):,} GET /api/request/{{id}} calls")

    if not arguments.no_write:
        write_section(section_text(command, facts, rows, arguments.processes, arguments.seconds))
        print(f"wrote the {SECTION} section of {DOCS_PAGE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
