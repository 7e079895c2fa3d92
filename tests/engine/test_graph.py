"""Spec to graph: references and depends_on become edges, count becomes copies."""

from orchestrator.graph import build_graph, graph_from_records, graph_to_records
from orchestrator.spec import parse_spec

HEADER = "workload: demo\ndefaults: {provider: hpcloud, region: nova}\nresources:\n"


def graph_of(body: str):
    return build_graph(parse_spec(HEADER + body, "demo.yaml"))


def test_references_become_edges():
    graph = graph_of(
        "  kp1: {type: kp}\n"
        "  vm1:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n    keyPairId: ${kp1.instanceId}\n"
        "  image1:\n    type: image\n    from: ${vm1.instanceId}\n"
    )
    assert sorted(graph.edges) == [("kp1", "vm1"), ("vm1", "image1")]


def test_count_expands_copies_with_index():
    graph = graph_of(
        "  web:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n    count: 3\n"
        "    metadata: {name: 'web-${count.index}'}\n"
    )
    assert sorted(graph.nodes) == ["web[0]", "web[1]", "web[2]"]
    names = [graph.nodes[address]["node"].parameters["metadata"]["name"] for address in sorted(graph.nodes)]
    assert names == ["web-0", "web-1", "web-2"]


def test_count_index_alone_keeps_integer():
    graph = graph_of("  disk:\n    type: vs\n    resource: standard.50\n    count: 2\n    sizeInGBytes: ${count.index}\n")
    assert graph.nodes["disk[1]"]["node"].parameters["sizeInGBytes"] == 1


def test_splat_reference_depends_on_every_copy():
    graph = graph_of(
        "  sg:\n    type: sg\n    count: 2\n"
        "  vm1:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n    securityGroupIds: ${sg[*].instanceId}\n"
    )
    assert sorted(graph.predecessors("vm1")) == ["sg[0]", "sg[1]"]


def test_indexed_reference_depends_on_one_copy():
    graph = graph_of(
        "  web:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/ami-00000075\n    count: 2\n"
        "  img:\n    type: image\n    from: ${web[1].instanceId}\n"
    )
    assert list(graph.predecessors("img")) == ["web[1]"]


def test_depends_on_group_adds_every_copy():
    graph = graph_of("  a:\n    type: kp\n    count: 2\n  b:\n    type: kp\n    depends_on: [a]\n")
    assert sorted(graph.predecessors("b")) == ["a[0]", "a[1]"]


def test_fingerprint_changes_with_parameters():
    first = graph_of("  vm1:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/a\n")
    second = graph_of("  vm1:\n    type: vm\n    resource: standard.small\n    imageUri: image/hpcloud/nova/b\n")
    assert first.nodes["vm1"]["node"].fingerprint() != second.nodes["vm1"]["node"].fingerprint()


def test_graph_round_trips_through_records():
    graph = graph_of("  kp1: {type: kp}\n  vm1:\n    type: vm\n    resource: s\n    imageUri: image/hpcloud/nova/ami-00000075\n    keyPairId: ${kp1.instanceId}\n")
    restored = graph_from_records(graph_to_records(graph))
    assert sorted(restored.edges) == sorted(graph.edges)
    assert restored.nodes["vm1"]["node"].fingerprint() == graph.nodes["vm1"]["node"].fingerprint()
