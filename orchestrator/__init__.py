"""cws-workload: provision workloads through the CWS instance API.

The engine is importable. The async functions run inside an anyio event loop;
the plain ones run their own:

    import orchestrator

    summary = orchestrator.apply("workloads/tutorial.yaml")
    print(summary.outputs)
    orchestrator.destroy("tutorial")

With no endpoint, they talk to the embedded emulator and keep the state under
`.cws/`, like the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from orchestrator.config import Settings, resolve_settings
from orchestrator.engine import Engine, RunOptions, RunSummary
from orchestrator.errors import CwsError, SpecError
from orchestrator.graph import build_graph
from orchestrator.spec import load_spec, parse_spec


def _engine(settings: Settings | None, subscribers: list[Any] | None, **overrides: Any) -> Engine:
    return Engine(settings or resolve_settings(**overrides), subscribers=subscribers)


async def apply_async(
    spec_path: str | Path,
    *,
    settings: Settings | None = None,
    options: RunOptions | None = None,
    subscribers: list[Any] | None = None,
    stop: anyio.Event | None = None,
    **overrides: Any,
) -> RunSummary:
    """Apply a workload file and return the run's summary.

    `overrides` are the keyword arguments of `resolve_settings` (endpoint,
    api_key, api_secret, state, profile), used when `settings` is not given.
    `subscribers` receive every event as a dict.
    """
    engine = _engine(settings, subscribers, **overrides)
    try:
        return await engine.apply(spec_path, options, stop=stop)
    finally:
        engine.close()


async def destroy_async(
    workload: str | None = None,
    *,
    settings: Settings | None = None,
    options: RunOptions | None = None,
    subscribers: list[Any] | None = None,
    stop: anyio.Event | None = None,
    **overrides: Any,
) -> RunSummary:
    """Destroy a workload recorded in the state and return the run's summary."""
    engine = _engine(settings, subscribers, **overrides)
    try:
        return await engine.destroy(workload, options, stop=stop)
    finally:
        engine.close()


def apply(spec_path: str | Path, **keywords: Any) -> RunSummary:
    """Blocking form of `apply_async`."""
    return anyio.run(lambda: apply_async(spec_path, **keywords))


def destroy(workload: str | None = None, **keywords: Any) -> RunSummary:
    """Blocking form of `destroy_async`."""
    return anyio.run(lambda: destroy_async(workload, **keywords))


__all__ = [
    "CwsError",
    "Engine",
    "RunOptions",
    "RunSummary",
    "Settings",
    "SpecError",
    "apply",
    "apply_async",
    "build_graph",
    "destroy",
    "destroy_async",
    "load_spec",
    "parse_spec",
    "resolve_settings",
]
