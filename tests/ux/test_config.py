"""Settings precedence: flags, then environment, then the named profile, then the defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.config import DEMO_API_KEY

PROFILES = """\
profiles:
  default:
    endpoint: http://127.0.0.1:8101
    api_key: key-from-default-profile
    api_secret: secret-from-default-profile
    state: profile-state.db
  staging:
    endpoint: http://127.0.0.1:8102
    api_key: key-from-staging-profile
    api_secret: secret-from-staging-profile
"""


def write_config(workdir: Path, text: str = PROFILES) -> Path:
    path = workdir / "config" / "cws-workload" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def effective(cli, *arguments: str, **environment: str) -> dict:
    result = cli(*arguments, "config", "show", "--json", **environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_without_config(cli):
    settings = effective(cli)

    assert settings["endpoint"].startswith("embedded emulator")
    assert settings["endpoint_source"] == "default"
    assert settings["api_key"] == DEMO_API_KEY
    assert settings["api_secret"].startswith("****")
    assert settings["state"] == ".cws/state.db"


def test_default_profile_applies(cli, tmp_path):
    write_config(tmp_path)

    settings = effective(cli)

    assert settings["endpoint"] == "http://127.0.0.1:8101"
    assert settings["endpoint_source"] == "profile 'default'"
    assert settings["api_key"] == "key-from-default-profile"
    assert settings["api_secret_source"] == "profile 'default'"
    assert settings["state"] == "profile-state.db"


def test_named_profile_by_flag_and_environment(cli, tmp_path):
    write_config(tmp_path)

    by_flag = effective(cli, "--profile", "staging")
    by_environment = effective(cli, CWS_PROFILE="staging")

    for settings in (by_flag, by_environment):
        assert settings["endpoint"] == "http://127.0.0.1:8102"
        assert settings["api_key"] == "key-from-staging-profile"
        assert settings["endpoint_source"] == "profile 'staging'"
        # The staging profile sets no state, so the default applies.
        assert settings["state"] == ".cws/state.db"


def test_environment_beats_profile(cli, tmp_path):
    write_config(tmp_path)

    settings = effective(
        cli,
        CWS_ENDPOINT="http://127.0.0.1:8103",
        CWS_API_KEY="key-from-environment",
        CWS_API_SECRET="secret-from-environment",
    )

    assert settings["endpoint"] == "http://127.0.0.1:8103"
    assert settings["endpoint_source"] == "environment (CWS_ENDPOINT)"
    assert settings["api_key"] == "key-from-environment"
    assert settings["api_secret_source"] == "environment (CWS_API_SECRET)"
    assert settings["state_source"] == "profile 'default'"


def test_flags_beat_environment(cli, tmp_path):
    write_config(tmp_path)

    settings = effective(
        cli,
        "--endpoint", "http://127.0.0.1:8104",
        "--api-key", "key-from-flag",
        "--state", "flag-state.db",
        CWS_ENDPOINT="http://127.0.0.1:8103",
        CWS_API_KEY="key-from-environment",
        CWS_STATE="environment-state.db",
    )

    assert settings["endpoint"] == "http://127.0.0.1:8104"
    assert settings["endpoint_source"] == "flag"
    assert settings["api_key"] == "key-from-flag"
    assert settings["api_key_source"] == "flag"
    assert settings["state"] == "flag-state.db"


def test_unreadable_config_is_one_line_error(cli, tmp_path):
    (tmp_path / "config" / "cws-workload" / "config.yaml").mkdir(parents=True)

    result = cli("config", "show")

    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot read the config file ")
    assert len(result.stderr.splitlines()) == 1


def test_secret_flag_warns_and_stays_masked(cli):
    result = cli("--api-key", "key-from-flag", "--api-secret", "secret-given-as-a-flag", "config", "show")

    assert result.returncode == 0, result.stderr
    assert "warning: --api-secret is visible to other users in the process list" in result.stderr
    assert "CWS_API_SECRET" in result.stderr
    assert "secret-given-as-a-flag" not in result.stdout
    assert "[from flag]" in result.stdout.splitlines()[2]


def test_secret_from_environment_no_warning(cli):
    result = cli("config", "show", CWS_API_KEY="key-from-environment", CWS_API_SECRET="secret-from-environment")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "secret-from-environment" not in result.stdout


@pytest.mark.parametrize(
    ("config_text", "arguments", "message"),
    [
        (None, ("--profile", "prod"), "profile 'prod' not found: "),
        (PROFILES, ("--profile", "prod"), "profile 'prod' not found in "),
        ("profiles: [a, b]\n", (), "expected a top-level 'profiles' mapping"),
        ("profiles:\n  default: {colour: red}\n", (), "unknown field 'colour' in profile 'default'"),
        ("profiles:\n  default: {endpoint: [\n", (), "invalid YAML in the config file"),
        (None, ("--endpoint", "127.0.0.1:8080"), "invalid endpoint '127.0.0.1:8080': give a URL"),
    ],
    ids=["no-file", "unknown-profile", "not-a-mapping", "unknown-field", "invalid-yaml", "endpoint-without-scheme"],
)
def test_bad_settings_one_line_errors(cli, tmp_path, config_text, arguments, message):
    if config_text is not None:
        write_config(tmp_path, config_text)

    result = cli(*arguments, "config", "show")

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_key_without_secret_is_rejected(cli):
    result = cli("--api-key", "key-from-flag", "config", "show")

    assert result.returncode == 2
    assert "an API key is set (flag) but no API secret" in result.stderr
