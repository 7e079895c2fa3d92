"""Helpers for running the installed `cws-workload` in a private directory.

Each test runs the CLI with `tmp_path` as its working directory, so the
embedded emulator and the state live in that test's own `.cws/`.
`XDG_CONFIG_HOME` and `TMPDIR` point under `tmp_path` too, so no config
profile or debug log of the machine leaks in or out.

The embedded emulator runs the shipped `fast` profile at a fifth of its
durations, faults included, which keeps a tutorial apply near one second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from orchestrator.emulator.profile import PROFILES_DIRECTORY

REPOSITORY = Path(__file__).resolve().parents[2]
WORKLOADS = REPOSITORY / "workloads"
TUTORIAL = WORKLOADS / "tutorial.yaml"
CLI = shutil.which("cws-workload")
# Variables that would point the CLI at another endpoint, account, state or profile.
SETTINGS_VARIABLES = (
    "CWS_ENDPOINT", "CWS_API_KEY", "CWS_API_SECRET", "CWS_STATE", "CWS_PROFILE", "CWS_EMULATOR_PROFILE",
)

if CLI is None:
    pytest.skip("the cws-workload console script is not installed", allow_module_level=True)

Runner = Callable[..., subprocess.CompletedProcess]


def cli_environment(home: Path, **overrides: str) -> dict[str, str]:
    """Return the environment of a CLI run with its config and temporary files under `home`."""
    environment = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
    environment.update(
        XDG_CONFIG_HOME=str(home / "config"),
        TMPDIR=str(home / "tmp"),
        COLUMNS="120",
    )
    (home / "config").mkdir(exist_ok=True)
    (home / "tmp").mkdir(exist_ok=True)
    environment["CWS_EMULATOR_PROFILE"] = str(write_emulator_profile(home))
    environment.update(overrides)
    return environment


def write_emulator_profile(home: Path) -> Path:
    """Write the shipped `fast` profile with durations scaled down five times; return its path."""
    path = home / "emulator-profile.yaml"
    if not path.exists():
        profile = yaml.safe_load((PROFILES_DIRECTORY / "fast.yaml").read_text(encoding="utf-8"))
        profile["name"] = "ux-tests"
        profile["scale"] = profile["scale"] / 5
        path.write_text(yaml.safe_dump(profile), encoding="utf-8")
    return path


def run_cli(workdir: Path, *arguments: str, timeout: float = 120, **overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *arguments],
        cwd=workdir,
        capture_output=True,
        check=False,
        text=True,
        timeout=timeout,
        env=cli_environment(workdir, **overrides),
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def cli(tmp_path: Path) -> Runner:
    """Run the installed CLI in `tmp_path`, through pipes, and return the completed process."""

    def run(*arguments: str, **overrides: str) -> subprocess.CompletedProcess:
        return run_cli(tmp_path, *arguments, **overrides)

    return run


@pytest.fixture
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear the settings variables and the config home, for tests that resolve settings in-process."""
    for variable in SETTINGS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("CWS_EMULATOR_PROFILE", str(write_emulator_profile(tmp_path)))


@pytest.fixture(scope="module")
def applied_tutorial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a directory whose state contains the applied tutorial workload, shared by a module's tests."""
    workdir = tmp_path_factory.mktemp("applied")
    result = run_cli(workdir, "apply", str(TUTORIAL), "--quiet")
    assert result.returncode == 0, result.stderr
    return workdir
