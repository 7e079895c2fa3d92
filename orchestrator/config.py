"""Where to send calls and with which credentials: flags, then environment, then a profile.

Precedence, first found wins: command-line flags; the environment
(`CWS_ENDPOINT`, `CWS_API_KEY`, `CWS_API_SECRET`, `CWS_STATE`); the named
profile (`--profile NAME` or `CWS_PROFILE`, default `default`) in
`$XDG_CONFIG_HOME/cws-workload/config.yaml` (`~/.config/...` when unset);
then the built-in defaults: the embedded emulator and its demo account.

A config file looks like:

    profiles:
      default:
        endpoint: http://127.0.0.1:8080
        api_key: 63a25f81-15dd-481e-a4d4-c5ed9a80f93a
        api_secret: cws-demo-secret
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ConfigError

# The emulator's documented demo account, used when no credentials are configured.
DEMO_API_KEY = "63a25f81-15dd-481e-a4d4-c5ed9a80f93a"
DEMO_API_SECRET = "cws-demo-secret"

DEFAULT_STATE_DIR = ".cws"
PROFILE_KEYS = ("endpoint", "api_key", "api_secret", "state")


@dataclass
class Settings:
    """The effective connection settings of one command, with the source of each value."""

    endpoint: str | None
    api_key: str
    api_secret: str
    state_path: Path
    emulator_db: Path
    emulator_profile: str | None = None
    sources: dict[str, str] | None = None

    @property
    def embedded(self) -> bool:
        return self.endpoint is None

    def describe(self) -> dict[str, str]:
        """Return the settings for display, with the secret masked."""
        sources = self.sources or {}
        return {
            "endpoint": self.endpoint or f"embedded emulator ({self.emulator_db})",
            "endpoint_source": sources.get("endpoint", "default"),
            "api_key": self.api_key,
            "api_key_source": sources.get("api_key", "default"),
            "api_secret": mask(self.api_secret),
            "api_secret_source": sources.get("api_secret", "default"),
            "state": str(self.state_path),
            "state_source": sources.get("state", "default"),
        }


def mask(secret: str) -> str:
    if not secret:
        return ""
    return "****" + secret[-2:] if len(secret) > 8 else "****"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cws-workload" / "config.yaml"


def load_profile(name: str | None) -> tuple[dict[str, Any], str]:
    """Return the named profile's values and its label; an unnamed missing profile is empty."""
    path = config_path()
    chosen = name or os.environ.get("CWS_PROFILE") or "default"
    if not path.exists():
        if name or os.environ.get("CWS_PROFILE"):
            raise ConfigError(
                f"profile '{chosen}' not found: {path} does not exist; create it with a "
                f"'profiles: {{{chosen}: {{endpoint: ..., api_key: ..., api_secret: ...}}}}' mapping"
            )
        return {}, chosen
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path}: {error.strerror}; fix its permissions or remove it") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML in the config file: {getattr(error, 'problem', error)}") from None
    profiles = document.get("profiles") if isinstance(document, dict) else None
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: expected a top-level 'profiles' mapping of name to settings")
    profile = profiles.get(chosen)
    if profile is None:
        if name or os.environ.get("CWS_PROFILE"):
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(f"profile '{chosen}' not found in {path} (profiles: {known})")
        return {}, chosen
    if not isinstance(profile, dict):
        raise ConfigError(f"{path}: profile '{chosen}' must be a mapping of {', '.join(PROFILE_KEYS)}")
    unknown = [key for key in profile if key not in PROFILE_KEYS]
    if unknown:
        raise ConfigError(
            f"{path}: unknown field '{unknown[0]}' in profile '{chosen}'{_suggestion(unknown[0])} "
            f"(allowed: {', '.join(PROFILE_KEYS)})"
        )
    return profile, chosen


def _suggestion(key: str) -> str:
    close = difflib.get_close_matches(key, PROFILE_KEYS, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def resolve_settings(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    state: str | None = None,
    profile: str | None = None,
    emulator_profile: str | None = None,
) -> Settings:
    """Combine flags, environment and profile into Settings; raise ConfigError on bad values."""
    profile_values, profile_name = load_profile(profile)
    sources: dict[str, str] = {}

    def pick(name: str, flag: str | None, env: str) -> str | None:
        if flag:
            sources[name] = "flag"
            return flag
        if os.environ.get(env):
            sources[name] = f"environment ({env})"
            return os.environ[env]
        if profile_values.get(name):
            sources[name] = f"profile '{profile_name}'"
            return str(profile_values[name])
        return None

    chosen_endpoint = pick("endpoint", endpoint, "CWS_ENDPOINT")
    if chosen_endpoint is not None and not chosen_endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"invalid endpoint {chosen_endpoint!r}: give a URL such as http://127.0.0.1:8080"
        )
    chosen_key = pick("api_key", api_key, "CWS_API_KEY")
    chosen_secret = pick("api_secret", api_secret, "CWS_API_SECRET")
    if (chosen_key is None) != (chosen_secret is None):
        given, missing = ("API key", "secret") if chosen_key else ("API secret", "key")
        raise ConfigError(
            f"an {given} is set ({sources.get('api_key') or sources.get('api_secret')}) but no API {missing}; "
            "set both (CWS_API_KEY and CWS_API_SECRET, the flags, or the profile), or neither for the demo account"
        )
    chosen_key = chosen_key or DEMO_API_KEY
    chosen_secret = chosen_secret or DEMO_API_SECRET
    if "api_key" not in sources:
        sources["api_key"] = "default (emulator demo account)"
    if "api_secret" not in sources:
        sources["api_secret"] = "default (emulator demo account)"
    state_value = pick("state", state, "CWS_STATE")
    state_path = Path(state_value) if state_value else Path(DEFAULT_STATE_DIR) / "state.db"
    return Settings(
        endpoint=chosen_endpoint.rstrip("/") if chosen_endpoint else None,
        api_key=chosen_key,
        api_secret=chosen_secret,
        state_path=state_path,
        emulator_db=state_path.parent / "emulator.db",
        emulator_profile=emulator_profile or os.environ.get("CWS_EMULATOR_PROFILE"),
        sources=sources,
    )
