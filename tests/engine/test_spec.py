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
        (
            5,
            1,
            (
                "unknown top-level field 'resorces'; did you mean 'resources'? "
                "(allowed: workload, defaults, resources, outputs, settings)"
            ),
        )
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


SCALAR_SAMPLES = """
plain: text
yes_word: yes
off_word: Off
hex: 0x1F
underscored: 1_000
octal: 010
tilde: ~
empty:
fraction: -.5
exponent: 1.0e3
quoted_yes: "yes"
quoted_date: '2026-01-02'
listed: [1, 2.5, null, true, 'x']
nested: {a: {b: [c, {d: 0o17}]}}
block: |
  two
  lines
"""


def test_fast_reading_matches_safe_load():
    import yaml

    from orchestrator.spec import _plain_document

    assert _plain_document(SCALAR_SAMPLES) == yaml.safe_load(SCALAR_SAMPLES)


@pytest.mark.parametrize(
    "text",
    [
        "a: 2026-01-02\n",
        "a: 2026-01-02T03:04:05Z\n",
        "a: .inf\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "<<: {a: 1}\n",
        "a: 1\na: 2\n",
        "",
        "a: [\n",
        "1: a\n",
        "a: 1\n---\nb: 2\n",
    ],
)
def test_fast_reading_skips_unusual_files(text):
    from orchestrator.spec import _NOT_PLAIN, _plain_document

    assert _plain_document(text) is _NOT_PLAIN


def test_anchors_give_same_spec():
    plain = parse_spec(
        VALID_HEADER
        + "  vm1:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-1\n"
        + "    metadata: {name: web, team: a}\n"
    )
    anchored = parse_spec(
        VALID_HEADER
        + "  vm1:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-1\n"
        + "    metadata:\n      <<: &common {team: a}\n      name: web\n"
    )
    assert anchored.resources["vm1"].parameters == plain.resources["vm1"].parameters
    assert plain.known_positions is None
    assert anchored.known_positions is not None


def test_positions_found_after_fast_reading():
    spec = parse_spec(VALID_HEADER + "  a:\n    type: kp\n  b:\n    type: sg\n")
    assert spec.known_positions is None
    assert spec.key_position_of(("resources", "b")).line == 6
    assert spec.position_of(("resources", "b", "type")).column == 11


def test_date_value_must_be_quoted():
    problems = problems_of(VALID_HEADER + "  kp1:\n    type: kp\n    metadata: {created: 2026-01-02}\n")
    assert len(problems) == 1
    line, column, message = problems[0]
    assert (line, column) == (6, 25)
    assert "quote it ('2026-01-02')" in message


def test_nested_aliases_are_bounded():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    text = VALID_HEADER + "  kp1:\n    type: kp\n    metadata:\n" + "".join(f"      {line}\n" for line in lines)
    problems = problems_of(text)
    assert len(problems) == 1
    assert "aliases here expand the file" in problems[0][2]


@pytest.mark.parametrize(
    "value",
    ["!foo bar", "!!python/object/apply:os.system [echo]", "!!set {a, b}", "!!binary aGVsbG8="],
)
def test_tags_and_binary_rejected(value):
    problems = problems_of(VALID_HEADER + f"  kp1:\n    type: kp\n    metadata:\n      name: {value}\n")
    assert len(problems) == 1
    assert problems[0][:2] == (7, 13)


def test_secret_reference_in_resource_rejected():
    problems = problems_of(
        VALID_HEADER
        + "  kp1: {type: kp}\n"
        + "  kp2:\n    type: kp\n    metadata: {copy: '${kp1.attributes.privateKey}'}\n"
    )
    assert len(problems) == 1
    assert "read secrets only under 'outputs'" in problems[0][2]


def test_volume_size_must_be_whole_number():
    problems = problems_of(VALID_HEADER + "  v1:\n    type: vs\n    resource: standard.10\n    sizeInGBytes: abc\n")
    assert problems == [(7, 5, "invalid sizeInGBytes 'abc': give a whole number of gigabytes, e.g. 10")]


def test_bad_default_reported_where_written():
    text = "workload: demo\ndefaults:\n  provider: hpcloud\n  region: nova/x\nresources:\n  a: {type: kp}\n  b: {type: kp}\n"
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0][:2] == (4, 3)


def test_unclosed_quote_names_where_it_starts():
    problems = problems_of(VALID_HEADER + "  kp1:\n    type: kp\n    metadata: {name: 'open}\n  kp2: {type: kp}\n")
    assert len(problems) == 1
    assert "while scanning a quoted scalar at 6:22" in problems[0][2]


def test_yes_as_key_is_explained():
    problems = problems_of(VALID_HEADER + "  kp1:\n    type: kp\n    metadata: {yes: 1}\n")
    assert problems == [(6, 16, "key 'yes' is read as true; quote it to use it as a name")]
