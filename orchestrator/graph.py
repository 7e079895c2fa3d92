"""Workload spec to dependency graph: `count` expanded into nodes, references into edges.

An edge `a → b` means b needs a: b is created after a and destroyed before it.
Node addresses are resource names, with `[i]` for each copy of a resource
that has `count` (`web[0]`, `web[1]`, ...).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.references import Reference, iter_references, substitute, walk_strings
from orchestrator.spec import ResourceSpec, WorkloadSpec


@dataclass
class Node:
    """One instance to create: a resource, or one copy of a resource with `count`."""

    address: str
    resource: str
    index: int | None
    type: str
    provider: str
    region: str
    resource_id: str
    parameters: dict[str, Any]
    rules: list[dict[str, Any]] = field(default_factory=list)
    attach_to: str | None = None
    device_name: str | None = None
    image_from: str | None = None

    @property
    def resource_uri(self) -> str:
        return f"{self.type}/{self.provider}/{self.region}/{self.resource_id}"

    @property
    def group(self) -> str:
        """The name shared by the copies of a resource with `count`."""
        return self.resource

    def template(self) -> dict[str, Any]:
        """Return everything that decides what the create call sends, references unresolved."""
        return {
            "type": self.type,
            "resourceUri": self.resource_uri,
            "parameters": self.parameters,
            "rules": self.rules,
            "attachTo": self.attach_to,
            "deviceName": self.device_name,
            "from": self.image_from,
        }

    def fingerprint(self) -> str:
        """Return a stable digest of the template, to notice a changed resource."""
        encoded = json.dumps(self.template(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(encoded.encode()).hexdigest()[:16]

    def references(self) -> list[Reference]:
        found: list[Reference] = []
        for value in (self.parameters, self.rules, self.attach_to, self.image_from):
            for _, text in walk_strings(value):
                found.extend(iter_references(text))
        return found

    def to_record(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "resource": self.resource,
            "index": self.index,
            "type": self.type,
            "provider": self.provider,
            "region": self.region,
            "resource_id": self.resource_id,
            "parameters": self.parameters,
            "rules": self.rules,
            "attach_to": self.attach_to,
            "device_name": self.device_name,
            "image_from": self.image_from,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Node:
        return cls(**record)


def build_graph(spec: WorkloadSpec) -> nx.DiGraph:
    """Expand `count`, add an edge for every reference and `depends_on`, and reject cycles."""
    graph = nx.DiGraph()
    copies: dict[str, list[str]] = {}
    for resource in spec.resources.values():
        copies[resource.name] = []
        for node in _expand(resource):
            graph.add_node(node.address, node=node)
            copies[resource.name].append(node.address)

    for address in list(graph.nodes):
        node: Node = graph.nodes[address]["node"]
        resource = spec.resources[node.resource]
        for reference in node.references():
            for target in _targets(reference, copies):
                graph.add_edge(target, address)
        for dependency in resource.depends_on:
            for target in _depends_on_targets(dependency, copies):
                graph.add_edge(target, address)

    _reject_cycles(graph, spec)
    return graph


def _expand(resource: ResourceSpec) -> list[Node]:
    if resource.count is None:
        return [_node(resource, resource.name, None)]
    return [_node(resource, f"{resource.name}[{index}]", index) for index in range(resource.count)]


def _node(resource: ResourceSpec, address: str, index: int | None) -> Node:
    def fill_index(value: Any) -> Any:
        if index is None:
            return value
        return substitute(value, lambda ref: index if ref.is_count_index else ref.text)

    return Node(
        address=address,
        resource=resource.name,
        index=index,
        type=resource.type,
        provider=resource.provider,
        region=resource.region,
        resource_id=resource.resource_id,
        parameters=fill_index(resource.parameters),
        rules=fill_index(resource.rules),
        attach_to=fill_index(resource.attach_to),
        device_name=fill_index(resource.device_name),
        image_from=fill_index(resource.image_from),
    )


def _targets(reference: Reference, copies: dict[str, list[str]]) -> list[str]:
    if reference.is_count_index or reference.name not in copies:
        return []
    if reference.index is None:
        return [reference.name]
    if reference.index == "*":
        return copies[reference.name]
    return [f"{reference.name}[{reference.index}]"]


def _depends_on_targets(dependency: str, copies: dict[str, list[str]]) -> list[str]:
    name = dependency.split("[", 1)[0]
    if name not in copies:
        return []
    if dependency == name:
        return copies[name] or []
    return [dependency] if dependency in copies[name] else []


def _reject_cycles(graph: nx.DiGraph, spec: WorkloadSpec) -> None:
    try:
        cycle_edges = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    addresses = [source for source, _ in cycle_edges] + [cycle_edges[0][0]]
    first = graph.nodes[addresses[0]]["node"].resource
    position = spec.key_position_of(("resources", first))
    raise SpecError(
        [
            SpecProblem(
                spec.path,
                position.line,
                position.column,
                "dependency cycle: " + " → ".join(addresses)
                + "; remove one of these references or depends_on entries",
            )
        ]
    )


def destroy_order_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """Return the graph with every edge reversed: dependents are deleted first."""
    return graph.reverse(copy=True)


def graph_to_records(graph: nx.DiGraph) -> dict[str, Any]:
    """Return a JSON-ready form of the graph, kept in the state so destroy needs no spec."""
    return {
        "nodes": [graph.nodes[address]["node"].to_record() for address in graph.nodes],
        "edges": [[source, target] for source, target in graph.edges],
    }


def graph_from_records(records: dict[str, Any]) -> nx.DiGraph:
    graph = nx.DiGraph()
    for record in records.get("nodes", []):
        node = Node.from_record(record)
        graph.add_node(node.address, node=node)
    for source, target in records.get("edges", []):
        if source in graph and target in graph:
            graph.add_edge(source, target)
    return graph
