"""Graph and state to actions: what apply will create, replace, delete or leave alone.

The instance API has no update call, so a resource whose create parameters
changed is replaced: its old instance is deleted and a new one created. A
resource that reads a field of a replaced or newly created resource is
replaced too, because the value it was created with will change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from orchestrator.graph import Node
from orchestrator.state.base import CREATED, ResourceRecord

CREATE = "create"
REPLACE = "replace"
DELETE = "delete"
NOOP = "noop"

SYMBOLS = {CREATE: "+", REPLACE: "-/+", DELETE: "-", NOOP: " "}


@dataclass
class Change:
    address: str
    action: str
    type: str
    resource_uri: str
    reason: str = ""


@dataclass
class Plan:
    workload: str
    changes: dict[str, Change] = field(default_factory=dict)
    # Edges among the nodes whose old instances must go, in creation order.
    delete_graph: nx.DiGraph = field(default_factory=nx.DiGraph)

    def of(self, action: str) -> list[Change]:
        return [change for change in self.changes.values() if change.action == action]

    def counts(self) -> dict[str, int]:
        return {action: len(self.of(action)) for action in (CREATE, REPLACE, DELETE, NOOP)}

    @property
    def has_changes(self) -> bool:
        return any(change.action != NOOP for change in self.changes.values())

    def summary_line(self) -> str:
        counts = self.counts()
        return (
            f"Plan: {counts[CREATE]} to create, {counts[REPLACE]} to replace, "
            f"{counts[DELETE]} to delete, {counts[NOOP]} unchanged."
        )

    def lines(self) -> list[str]:
        """Return the plan as text lines: one per change, unchanged ones folded into a count."""
        lines = []
        order = {CREATE: 1, REPLACE: 0, DELETE: 2}
        pending = [change for change in self.changes.values() if change.action != NOOP]
        # Within each action, changes keep dependency order, the order make_plan adds them in.
        for change in sorted(pending, key=lambda change: order[change.action]):
            line = f"{SYMBOLS[change.action]:>3} {change.address} ({change.resource_uri})"
            if change.reason:
                line += f": {change.reason}"
            lines.append(line)
        unchanged = self.counts()[NOOP]
        if unchanged:
            lines.append(f"    {unchanged} unchanged")
        lines.append(self.summary_line())
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "changes": [
                {
                    "address": change.address,
                    "action": change.action,
                    "type": change.type,
                    "resource_uri": change.resource_uri,
                    "reason": change.reason,
                }
                for change in self.changes.values()
            ],
            "counts": self.counts(),
        }


def make_plan(
    workload: str,
    graph: nx.DiGraph,
    records: dict[str, ResourceRecord],
    old_graph: nx.DiGraph | None,
    *,
    gone: set[str] | None = None,
) -> Plan:
    """Compare the desired graph with the state.

    `gone` lists addresses whose instance a live check found deleted or missing.
    """
    gone = gone or set()
    old_graph = old_graph if old_graph is not None else nx.DiGraph()
    plan = Plan(workload)

    for address in nx.topological_sort(graph):
        node: Node = graph.nodes[address]["node"]
        record = records.get(address)
        change = Change(address, NOOP, node.type, node.resource_uri)
        if record is None or record.instance_id is None and record.status != CREATED:
            change.action = CREATE
            if record is not None and record.status not in ("pending", "deleted"):
                change.reason = f"an earlier run left it {record.status}; it will be finished or created"
        elif record.status != CREATED:
            change.action = CREATE
            change.reason = f"an earlier run left it {record.status}; it will be finished or created"
        elif address in gone:
            change.action = CREATE
            change.reason = f"instance {record.instance_id} no longer exists"
        elif record.fingerprint != node.fingerprint():
            change.action = REPLACE
            change.reason = _describe_difference(old_graph, address, node)
        else:
            upstream = [
                predecessor
                for predecessor in graph.predecessors(address)
                if plan.changes[predecessor].action in (CREATE, REPLACE)
            ]
            if upstream:
                change.action = REPLACE
                change.reason = f"it reads {', '.join(sorted(upstream))}, which will get a new instance"
        plan.changes[address] = change

    for address in old_graph.nodes:
        if address in graph:
            continue
        record = records.get(address)
        if record is None or record.status == "deleted":
            continue
        node = old_graph.nodes[address]["node"]
        plan.changes[address] = Change(address, DELETE, node.type, node.resource_uri, "no longer in the workload file")

    doomed = {change.address for change in plan.changes.values() if change.action in (REPLACE, DELETE)}
    doomed = {address for address in doomed if records.get(address) is not None}
    plan.delete_graph = _delete_graph(doomed, old_graph, graph)
    return plan


def _delete_graph(doomed: set[str], old_graph: nx.DiGraph, graph: nx.DiGraph) -> nx.DiGraph:
    """Return the doomed nodes with their creation-order edges, taken from the old graph first."""
    source = old_graph if old_graph.number_of_nodes() else graph
    delete_graph = nx.DiGraph()
    for address in doomed:
        origin = source if address in source else graph
        delete_graph.add_node(address, node=origin.nodes[address]["node"])
    for source_graph in (old_graph, graph):
        for upstream, downstream in source_graph.edges:
            if upstream in doomed and downstream in doomed:
                delete_graph.add_edge(upstream, downstream)
    return delete_graph


def _describe_difference(old_graph: nx.DiGraph, address: str, node: Node) -> str:
    if address not in old_graph:
        return "its parameters changed, and the instance API has no update, so it is replaced"
    old_template = old_graph.nodes[address]["node"].template()
    new_template = node.template()
    differences = list(_diff(old_template, new_template, ""))
    if not differences:
        return "its parameters changed, and the instance API has no update, so it is replaced"
    shown = "; ".join(differences[:3])
    more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
    return f"{shown}{more}; the instance API has no update, so it is replaced"


def _diff(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if path == "parameters":
                path = ""
            found += _diff(old.get(key), new.get(key), path)
        return found
    if old == new:
        return []
    return [f"{prefix or 'value'} changed from {_short(old)} to {_short(new)}"]


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
