"""Spec tooling: validate, schema, graph and shell completion, and the example workloads."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import anyio
import jsonschema
import pytest
import yaml

from orchestrator.config import resolve_settings
from orchestrator.engine import Engine

from .conftest import TUTORIAL, WORKLOADS, run_cli

EXAMPLE_WORKLOADS = sorted(WORKLOADS.glob("*.yaml"))

BROKEN = """\
workload: broken
defaults: {provider: hpcloud, region: nova}
resources:
  kp1:
    type: kp
    colour: red
  vm1:
    type: vm
    resource: standard.small
    imageUri: image/hpcloud/nova/ami-00000075
    keyPairId: ${kp2.instanceId}
  vol:
    type: vs
    count: -1
"""


def test_example_workloads_exist():
    assert {path.name for path in EXAMPLE_WORKLOADS} >= {"tutorial.yaml", "web.yaml"}


@pytest.mark.parametrize("path", EXAMPLE_WORKLOADS, ids=lambda path: path.name)
def test_example_workload_validates(cli, path):
    result = cli("validate", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: valid workload '")


@pytest.mark.parametrize("path", EXAMPLE_WORKLOADS, ids=lambda path: path.name)
def test_example_workload_plans_on_emulator(tmp_path, clean_environment, path):
    engine = Engine(resolve_settings(state=str(tmp_path / "state.db")))
    try:
        plan = anyio.run(engine.plan, path)
    finally:
        engine.close()

    assert plan.has_changes
    assert set(plan.counts()) == {"create", "replace", "delete", "noop"}
    assert plan.counts()["create"] == len(plan.changes)


@pytest.fixture(scope="module")
def spec_schema():
    with tempfile.TemporaryDirectory() as directory:
        result = run_cli(Path(directory), "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@pytest.mark.parametrize("path", EXAMPLE_WORKLOADS, ids=lambda path: path.name)
def test_example_workload_matches_schema(spec_schema, path):
    document = yaml.safe_load(path.read_text(encoding="utf-8"))

    jsonschema.validate(document, spec_schema)


def test_schema_rejects_unknown_field(spec_schema):
    document = yaml.safe_load(BROKEN)

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, spec_schema)


def test_validate_lists_every_problem(cli, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")

    result = cli("validate", str(broken))

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: {broken}:6:5: unknown field 'colour' for a kp resource")
    assert lines[1].startswith(f"{broken}:11:16: reference ${{kp2.instanceId}} names unknown resource 'kp2'")
    assert lines[2].startswith(f"{broken}:12:3: resource 'vol' has no 'resource'")
    assert lines[3].startswith(f"{broken}:14:5: invalid count -1")
    assert len(lines) == 4
    assert "Traceback" not in result.stderr


def test_validate_yaml_error_position(cli, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("workload: x\nresources:\n  kp1: {type: kp\n", encoding="utf-8")

    result = cli("validate", str(broken))

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {broken}:4:1: invalid YAML")


def test_graph_dot(cli):
    result = cli("graph", str(TUTORIAL), "--format", "dot")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "digraph workload {"
    assert lines[-1] == "}"
    assert '  "kp1" -> "vm1";' in lines
    assert '  "vm1" -> "image1";' in lines
    assert '  "image1" [label="image1\\nimage"];' in lines


def test_graph_mermaid_expands_count(cli):
    result = cli("graph", str(WORKLOADS / "web.yaml"), "--format", "mermaid")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "graph LR"
    identifiers = {}
    for line in lines[1:]:
        if "[" in line and "-->" not in line:
            identifier, label = line.strip().split("[", 1)
            identifiers[label.strip('"]').split(" ")[0]] = identifier
    assert {"web[0]", "web[1]", "web[2]", "data", "golden"} <= set(identifiers)
    assert f"  {identifiers['web[0]']} --> {identifiers['data']}" in lines
    assert f"  {identifiers['web[1]']} --> {identifiers['golden']}" in lines
    assert len([line for line in lines if "-->" in line]) == 11


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F"), ("zsh", "#compdef cws-workload"), ("fish", "complete --no-files --command cws-workload")],
)
def test_completion_script(cli, shell, marker):
    result = cli("completion", shell)

    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert "_CWS_WORKLOAD_COMPLETE" in result.stdout


def test_completion_completes_subcommand(cli):
    result = cli(_CWS_WORKLOAD_COMPLETE="bash_complete", COMP_WORDS="cws-workload ap", COMP_CWORD="1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["plain,apply"]
