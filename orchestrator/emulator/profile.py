"""Latency and fault profiles: how long each action takes and how often calls go wrong.

A profile is a YAML mapping::

    scale: 0.005                 # multiplies every sampled duration
    key_bits: 1024               # RSA key size of new key pairs
    retention_seconds: 3600      # finished requests and deleted instances are removed after this
    durations:
      default: {fixed: {seconds: 0.5}}
      kp.create: {fixed: {seconds: 0.9}}
      vm.boot: {uniform: {low: 330, high: 380}}
      image.build: {lognormal: {median: 110, sigma: 0.1}}
    faults:
      throttle: 0.05             # probabilities, drawn per call
      fault_actions: [vm.create] # optional: the only calls faults apply to

An action without a duration takes `default`; a phase without one takes no
time. The keys are in `orchestrator.emulator.actions`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from orchestrator.emulator.actions import PHASES, READ_CALLS, REQUEST_ACTIONS
from orchestrator.emulator.errors import ProfileError

PROFILES_DIRECTORY = Path(__file__).with_name("profiles")
DEFAULT_PROFILE = "fast"


@dataclass(frozen=True)
class Distribution:
    """A distribution of durations in seconds: `fixed`, `uniform` or `lognormal`."""

    kind: str
    parameters: tuple[float, ...]

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.parameters[0]
        if self.kind == "uniform":
            low, high = self.parameters
            return rng.uniform(low, high)
        median, sigma = self.parameters
        return rng.lognormvariate(math.log(median), sigma)

    @classmethod
    def parse(cls, value: Any, where: str) -> Distribution:
        """Parse `{fixed: {seconds}}`, `{uniform: {low, high}}` or `{lognormal: {median, sigma}}`."""
        expected = "expected one of {fixed: {seconds}}, {uniform: {low, high}}, {lognormal: {median, sigma}}"
        if not isinstance(value, dict) or len(value) != 1:
            raise ProfileError(f"{where}: {expected}, got {value!r}")
        kind, arguments = next(iter(value.items()))
        names = {"fixed": ("seconds",), "uniform": ("low", "high"), "lognormal": ("median", "sigma")}.get(kind)
        if names is None:
            raise ProfileError(f"{where}: unknown distribution {kind!r}; {expected}")
        if not isinstance(arguments, dict) or set(arguments) != set(names):
            raise ProfileError(f"{where}.{kind}: expected exactly the keys {', '.join(names)}, got {arguments!r}")

        parameters = tuple(_number(arguments[name], f"{where}.{kind}.{name}", minimum=0.0) for name in names)
        if kind == "uniform" and parameters[0] > parameters[1]:
            raise ProfileError(f"{where}.uniform: low {parameters[0]} is above high {parameters[1]}")
        if kind == "lognormal" and parameters[0] <= 0:
            raise ProfileError(f"{where}.lognormal.median: must be above 0, got {parameters[0]}")
        return cls(kind, parameters)

    def to_dict(self) -> dict[str, dict[str, float]]:
        names = {"fixed": ("seconds",), "uniform": ("low", "high"), "lognormal": ("median", "sigma")}[self.kind]
        return {self.kind: dict(zip(names, self.parameters))}


@dataclass(frozen=True)
class FaultSettings:
    """Fault probabilities, each drawn per call from the seeded generator, and their parameters.

    `lost_request`, `failed_request` and `lost_request_created` apply to calls
    that create a request; the others to any API call. `fault_actions`, when
    set, limits every fault to the named actions and calls.
    """

    lost_request: float = 0.0
    lost_request_created: float = 0.5
    dropped_response: float = 0.0
    server_error: float = 0.0
    throttle: float = 0.0
    retry_after_seconds: int = 1
    failed_request: float = 0.0
    failed_request_code: str = "PROVIDER_ERROR"
    slow_response: float = 0.0
    slow_response_seconds: float = 2.0
    fault_actions: tuple[str, ...] | None = None

    def applies_to(self, action: str) -> bool:
        return self.fault_actions is None or action in self.fault_actions

    def to_dict(self) -> dict[str, Any]:
        settings = asdict(self)
        if self.fault_actions is not None:
            settings["fault_actions"] = list(self.fault_actions)
        return settings

    def updated(self, changes: Any, where: str = "faults") -> FaultSettings:
        """Return these settings with `changes` applied, after checking every changed value.

        Raises `ProfileError` naming the key on an unknown key or a value out of range.
        """
        if not isinstance(changes, Mapping):
            raise ProfileError(f"{where}: expected a mapping of fault settings, got {changes!r}")
        known = {name for name in FaultSettings.__dataclass_fields__}
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ProfileError(f"{where}: unknown key {key!r}; expected one of {', '.join(sorted(known))}")
            checked[key] = _check_fault_value(key, value, f"{where}.{key}")
        return replace(self, **checked)


_PROBABILITIES = {
    "lost_request",
    "lost_request_created",
    "dropped_response",
    "server_error",
    "throttle",
    "failed_request",
    "slow_response",
}


def _check_fault_value(key: str, value: Any, where: str) -> Any:
    if key in _PROBABILITIES:
        return _number(value, where, minimum=0.0, maximum=1.0)
    if key == "retry_after_seconds":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProfileError(f"{where}: expected a whole number of seconds >= 0, got {value!r}")
        return value
    if key == "slow_response_seconds":
        return _number(value, where, minimum=0.0, maximum=600.0)
    if key == "failed_request_code":
        if not isinstance(value, str) or not value:
            raise ProfileError(f"{where}: expected a non-empty error code, got {value!r}")
        return value

    # fault_actions
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(action, str) for action in value):
        raise ProfileError(f"{where}: expected a list of action names or null, got {value!r}")
    unknown = [action for action in value if action not in REQUEST_ACTIONS and action not in READ_CALLS]
    if unknown:
        raise ProfileError(f"{where}: unknown actions {unknown}; expected names such as vm.create, kp.delete or request.get")
    return tuple(value)


@dataclass(frozen=True)
class Profile:
    """Durations per action and phase, the scale applied to them, and the fault settings."""

    name: str = "default"
    scale: float = 1.0
    durations: Mapping[str, Distribution] = field(default_factory=dict)
    key_bits: int = 2048
    retention_seconds: float = 3600.0
    faults: FaultSettings = field(default_factory=FaultSettings)

    def sample_seconds(self, key: str, rng: random.Random) -> float:
        """Sample the scaled duration of an action or phase, in seconds."""
        distribution = self.durations.get(key)
        if distribution is None:
            if key in PHASES:
                return 0.0
            distribution = self.durations.get("default")
            if distribution is None:
                return 0.0
        return distribution.sample(rng) * self.scale

    @classmethod
    def from_mapping(cls, document: Any, name: str) -> Profile:
        """Build a profile from its parsed YAML, raising `ProfileError` naming the bad key."""
        if not isinstance(document, dict):
            raise ProfileError(f"profile {name}: expected a mapping at the top level, got {type(document).__name__}")
        known = {"name", "scale", "key_bits", "retention_seconds", "durations", "faults"}
        unknown = set(document) - known
        if unknown:
            raise ProfileError(f"profile {name}: unknown keys {sorted(unknown)}; expected {', '.join(sorted(known))}")

        durations: dict[str, Distribution] = {}
        for key, value in (document.get("durations") or {}).items():
            if key != "default" and key not in REQUEST_ACTIONS and key not in PHASES:
                raise ProfileError(
                    f"profile {name}: durations.{key} is not an action or phase; "
                    f"expected default, an action such as vm.create or a phase such as vm.boot"
                )
            durations[key] = Distribution.parse(value, f"profile {name}: durations.{key}")

        key_bits = document.get("key_bits", 2048)
        if key_bits not in (1024, 2048, 3072, 4096):
            raise ProfileError(f"profile {name}: key_bits must be 1024, 2048, 3072 or 4096, got {key_bits!r}")

        return cls(
            name=str(document.get("name", name)),
            scale=_number(document.get("scale", 1.0), f"profile {name}: scale", minimum=0.0),
            durations=durations,
            key_bits=key_bits,
            retention_seconds=_number(document.get("retention_seconds", 3600), f"profile {name}: retention_seconds", minimum=0.0),
            faults=FaultSettings().updated(document.get("faults") or {}, f"profile {name}: faults"),
        )


def load_profile(profile: str | Path | Profile | None = None) -> Profile:
    """Resolve a profile: a `Profile`, a shipped name (`fast`, `tutorial`) or a path to a YAML file.

    Raises `ProfileError` when the name is unknown or the file is invalid.
    """
    if isinstance(profile, Profile):
        return profile
    if profile is None:
        profile = DEFAULT_PROFILE

    shipped = PROFILES_DIRECTORY / f"{profile}.yaml"
    path = shipped if isinstance(profile, str) and "/" not in profile and shipped.is_file() else Path(profile)
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PROFILES_DIRECTORY.glob("*.yaml")))
        raise ProfileError(f"unknown profile {str(profile)!r}: give one of {names} or the path to a YAML profile")

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ProfileError(f"cannot read profile {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ProfileError(f"profile {path} is not valid YAML: {error}") from error
    return Profile.from_mapping(document, path.stem if path == shipped else str(path))


def _number(value: Any, where: str, *, minimum: float, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ProfileError(f"{where}: expected a number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ProfileError(f"{where}: must be {bounds}, got {value}")
    return float(value)
