"""Plan output, compared with golden files, and `plan --detailed-exitcode` through the CLI."""

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.graph import build_graph, graph_to_records
from orchestrator.plan import make_plan
from orchestrator.spec import parse_spec
from orchestrator.state import ResourceRecord, SqliteStateStore

GOLDEN = Path(__file__).parent / "golden"

TUTORIAL = """\
workload: tutorial
defaults: {provider: hpcloud, region: nova}
resources:
  kp1:
    type: kp
    metadata: {name: KP1}
  vm1:
    type: vm
    resource: standard.small
    imageUri: IMAGE
    keyPairId: ${kp1.instanceId}
  image1:
    type: image
    from: ${vm1.instanceId}
"""


def spec_text(image: str = "image/hpcloud/nova/ami-00000075", extra: str = "") -> str:
    return TUTORIAL.replace("IMAGE", image) + extra


def record_all(store: SqliteStateStore, text: str) -> None:
    """Write state as if `text` had been applied: every node created with an instance."""
    spec = parse_spec(text, "tutorial.yaml")
    graph = build_graph(spec)
    store.save_workload(spec.name, "tutorial.yaml", graph_to_records(graph), spec.outputs)
    for address in graph.nodes:
        node = graph.nodes[address]["node"]
        store.put_resource(
            ResourceRecord(
                workload=spec.name,
                address=address,
                type=node.type,
                resource_uri=node.resource_uri,
                fingerprint=node.fingerprint(),
                status="created",
                instance_id=f"id-{address}",
                instance_status="running",
            )
        )


def plan_lines(store: SqliteStateStore, text: str) -> list[str]:
    from orchestrator.graph import graph_from_records

    spec = parse_spec(text, "tutorial.yaml")
    workload = store.get_workload(spec.name)
    old_graph = graph_from_records(workload.graph) if workload else None
    plan = make_plan(spec.name, build_graph(spec), store.get_resources(spec.name), old_graph)
    return plan.lines()


def check_golden(name: str, lines: list[str]) -> None:
    expected = (GOLDEN / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    assert lines == expected


@pytest.fixture
def store(tmp_path):
    state = SqliteStateStore(tmp_path / "state.db")
    yield state
    state.close()


def test_plan_create_on_empty_state(store):
    check_golden("plan_create", plan_lines(store, spec_text()))


def test_plan_noop_after_apply(store):
    record_all(store, spec_text())
    check_golden("plan_noop", plan_lines(store, spec_text()))


def test_plan_replace_on_changed_parameter(store):
    record_all(store, spec_text())
    check_golden("plan_replace", plan_lines(store, spec_text(image="image/hpcloud/nova/ami-00000099")))


def test_plan_destroy_removed_resource(store):
    extra = "  kp2:\n    type: kp\n"
    record_all(store, spec_text(extra=extra))
    check_golden("plan_destroy", plan_lines(store, spec_text()))


def run_plan(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    spec = tmp_path / "tutorial.yaml"
    spec.write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "--state", str(tmp_path / "state.db"),
         "plan", str(spec), "--detailed-exitcode"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_detailed_exitcode_changes_pending(tmp_path):
    result = run_plan(tmp_path, spec_text())
    assert result.returncode == 2, result.stderr
    assert "Plan: 3 to create, 0 to replace, 0 to delete, 0 unchanged." in result.stdout


def test_detailed_exitcode_no_changes(tmp_path):
    store = SqliteStateStore(tmp_path / "state.db")
    record_all(store, spec_text())
    store.close()
    result = run_plan(tmp_path, spec_text())
    assert result.returncode == 0, result.stderr
    assert "3 unchanged" in result.stdout


def test_detailed_exitcode_error(tmp_path):
    result = run_plan(tmp_path, "workload: x\nresources: {a: {type: nope}}\n")
    assert result.returncode == 1
    assert "unknown type 'nope'" in result.stderr
