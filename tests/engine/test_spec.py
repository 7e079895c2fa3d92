"""Workload file parsing: each kind of bad input names its file, line and column."""

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.graph import build_graph
from orchestrator.spec import load_spec, parse_spec

REPOSITORY = Path(__file__).resolve().parents[2]

VALID_HEADER = "workload: demo\ndefaults: {provider: hpcloud, region: nova}\nresources:\n"


def problems_of(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(SpecError) as caught:
        build_graph(parse_spec(text, "demo.yaml"))
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def test_tutorial_workload_parses():
    spec = load_spec(REPOSITORY / "workloads" / "tutorial.yaml")
    assert spec.name == "tutorial"
    assert list(spec.resources) == ["kp1", "vm1", "image1"]
    assert spec.resources["vm1"].resource_uri == "vm/hpcloud/nova/standard.small"
    assert spec.resources["vm1"].parameters["keyPairId"] == "${kp1.instanceId}"
    assert spec.resources["image1"].image_from == "${vm1.instanceId}"


def test_invalid_yaml_reports_line_and_column():
    problems = problems_of("workload: demo\nresources:\n  kp1: {type: kp\n")
    assert len(problems) == 1
    line, column, message = problems[0]
    assert message.startswith("invalid YAML")
    assert line == 4
    assert column == 1


def test_unknown_top_level_field_suggests_fix():
    problems = problems_of(VALID_HEADER + "  kp1: {type: kp}\nresorces: {}\n")
    assert problems == [
        (5, 1, "unknown top-level field 'resorces'; did you mean 'resources'? "
               "(allowed: workload, defaults, resources, outputs, settings)")
    ]


def test_unknown_resource_field_names_type():
    problems = problems_of(VALID_HEADER + "  vm1:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n    imageURI: x\n")
    assert len(problems) == 1
    line, column, message = problems[0]
    assert (line, column) == (8, 5)
    assert "unknown field 'imageURI' for a vm resource; did you mean 'imageUri'?" in message


def test_unknown_type_is_reported():
    problems = problems_of(VALID_HEADER + "  x1:\n    type: vmm\n")
    assert len(problems) == 1
    assert problems[0][:2] == (5, 5)
    assert "unknown type 'vmm'" in problems[0][2]
    assert "did you mean 'vm'" in problems[0][2]


def test_missing_resource_reference_is_reported():
    problems = problems_of(
        VALID_HEADER + "  vm1:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n    keyPairId: ${kp9.instanceId}\n"
    )
    assert problems == [(8, 16, "reference ${kp9.instanceId} names unknown resource 'kp9'")]


def test_missing_field_reference_is_reported():
    problems = problems_of(
        VALID_HEADER
        + "  kp1: {type: kp}\n"
        + "  vm1:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n"
        + "    metadata:\n      name: ${kp1.attributes.fingerprint}\n"
    )
    assert len(problems) == 1
    line, column, message = problems[0]
    assert (line, column) == (10, 13)
    assert "a kp has no attribute 'fingerprint'" in message


def test_cycle_is_reported_with_path():
    problems = problems_of(
        VALID_HEADER
        + "  a:\n    type: kp\n    depends_on: [b]\n"
        + "  b:\n    type: kp\n    depends_on: [a]\n"
    )
    assert len(problems) == 1
    line, column, message = problems[0]
    assert line in (4, 7)
    assert column == 3
    assert "dependency cycle: " in message
    assert ("a → b → a" in message) or ("b → a → b" in message)


def test_all_problems_reported_at_once():
    problems = problems_of(
        VALID_HEADER + "  a:\n    type: kp\n    colour: red\n  b:\n    type: zz\n"
    )
    assert len(problems) == 2
    assert [p[0] for p in problems] == [6, 8]


def test_duplicate_key_is_reported():
    problems = problems_of(VALID_HEADER + "  a: {type: kp}\n  a: {type: kp}\n")
    assert problems == [(5, 3, "duplicate key 'a'; each key may appear once")]


def test_count_reference_needs_index():
    problems = problems_of(
        VALID_HEADER
        + "  web:\n    type: kp\n    count: 2\n"
        + "outputs:\n  ids: ${web.instanceId}\n"
    )
    assert len(problems) == 1
    assert problems[0][:2] == (8, 8)
    assert "write ${web[0].instanceId} or ${web[*].instanceId}" in problems[0][2]


def test_count_index_outside_count_is_rejected():
    problems = problems_of(VALID_HEADER + "  a:\n    type: kp\n    metadata: {name: 'k-${count.index}'}\n")
    assert len(problems) == 1
    assert "only valid inside a resource with 'count'" in problems[0][2]


def test_missing_file_is_reported():
    with pytest.raises(SpecError) as caught:
        load_spec("no/such/file.yaml")
    assert "no/such/file.yaml:1:1: file not found" in str(caught.value)


def test_empty_file_is_reported():
    problems = problems_of("")
    assert len(problems) == 1
    assert "the file is empty" in problems[0][2]


def test_depends_on_index_out_of_range():
    problems = problems_of(VALID_HEADER + "  a:\n    type: kp\n    count: 2\n  b:\n    type: kp\n    depends_on: ['a[5]']\n")
    assert problems == [
        (9, 18, "depends_on entry 'a[5]': index 5 is out of range for 'a' with count 2")
    ]


def test_vm_without_image_is_rejected():
    problems = problems_of(VALID_HEADER + "  vm1:\n    type: vm\n    resource: standard.small\n")
    assert len(problems) == 1
    assert problems[0][:2] == (4, 3)
    assert "vm 'vm1' needs 'imageUri'" in problems[0][2]
