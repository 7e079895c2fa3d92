"""Spec and state tooling commands: validate, schema, graph, show, config, export-key, completion."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import networkx as nx

from orchestrator.errors import UserError
from orchestrator.graph import build_graph
from orchestrator.logs import redact
from orchestrator.spec import load_spec


def register_tools(group: click.Group) -> None:
    for command in (validate, schema, graph, show, config, export_key, completion):
        group.add_command(command)


def _app() -> Any:
    return click.get_current_context().find_object(object)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def validate(file: Path) -> None:
    """Check FILE and list every problem with file:line:column; no API call."""
    spec = load_spec(file)
    graph_ = build_graph(spec)
    count = graph_.number_of_nodes()
    click.echo(f"{file}: valid workload '{spec.name}' with {count} resource{'' if count == 1 else 's'}")


@click.command()
def schema() -> None:
    """Print the JSON Schema of workload files, for editor completion."""
    from orchestrator.schema import spec_json_schema

    click.echo(json.dumps(spec_json_schema(), indent=2))


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "graph_format", type=click.Choice(["dot", "mermaid"]), default="dot", show_default=True,
    help="dot: a Graphviz digraph; mermaid: a Mermaid flowchart. Edges point from a resource to what needs it.",
)
def graph(file: Path, graph_format: str) -> None:
    """Print the dependency graph of FILE in Graphviz dot or Mermaid."""
    dependency_graph = build_graph(load_spec(file))
    if graph_format == "dot":
        click.echo("digraph workload {")
        click.echo("  rankdir=LR;")
        for address in nx.topological_sort(dependency_graph):
            node = dependency_graph.nodes[address]["node"]
            click.echo(f'  "{address}" [label="{address}\\n{node.type}"];')
        for source, target in dependency_graph.edges:
            click.echo(f'  "{source}" -> "{target}";')
        click.echo("}")
        return
    identifiers = {address: f"n{index}" for index, address in enumerate(dependency_graph.nodes)}
    click.echo("graph LR")
    for address, identifier in identifiers.items():
        node = dependency_graph.nodes[address]["node"]
        click.echo(f'  {identifier}["{address} ({node.type})"]')
    for source, target in dependency_graph.edges:
        click.echo(f"  {identifiers[source]} --> {identifiers[target]}")


@click.command()
@click.argument("workload")
@click.argument("resource")
@click.option("--show-secrets", is_flag=True, help="Show the private key or password instead of <HIDDEN>.")
@click.pass_context
def show(ctx: click.Context, workload: str, resource: str, show_secrets: bool) -> None:
    """Print the full record of RESOURCE in WORKLOAD: its instance and journal."""
    engine = ctx.obj.engine()
    try:
        name = engine.resolve_workload(workload)
        instance = engine.instance_attributes(name, resource)
        record = engine.state.get_resources(name)[resource]
        operations = [
            {
                "action": operation.action,
                "attempt": operation.attempt,
                "status": operation.status,
                "request_id": operation.request_id,
                "instance_id": operation.instance_id,
                "error": operation.error,
            }
            for operation in engine.state.operations(name, resource)
        ]
        owned = [
            {"instance_id": owned.instance_id, "role": owned.role, "deleted": owned.deleted}
            for owned in engine.state.owned_instances(name, resource, live_only=False)
        ]
    finally:
        engine.close()
    document = {
        "workload": name,
        "address": resource,
        "type": record.type,
        "resource_uri": record.resource_uri,
        "status": record.status,
        "error": record.error,
        "instance": instance if show_secrets else redact(instance),
        "operations": operations,
        "owned_instances": owned,
    }
    click.echo(json.dumps(document, indent=2))


@click.group()
def config() -> None:
    """Inspect the effective settings."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print endpoint, credentials (secret masked) and state path, with where each came from."""
    from orchestrator.config import config_path

    described = ctx.obj.settings.describe()
    described["config_file"] = str(config_path())
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for key in ("endpoint", "api_key", "api_secret", "state"):
        click.echo(f"{key:<10} {described[key]}  [from {described[key + '_source']}]")
    click.echo(f"{'config':<10} {described['config_file']}")


@click.command("export-key")
@click.argument("workload")
@click.argument("resource")
@click.option("--file", "target", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the private key; created with mode 0600.")
@click.pass_context
def export_key(ctx: click.Context, workload: str, resource: str, target: Path) -> None:
    """Write the private key of key pair RESOURCE to a file readable only by you."""
    engine = ctx.obj.engine()
    try:
        instance = engine.instance_attributes(workload, resource)
    finally:
        engine.close()
    private_key = (instance.get("attributes") or {}).get("privateKey")
    if not private_key or private_key == "<HIDDEN>":
        raise UserError(
            f"'{resource}' has no private key in the state; export-key works on key pairs (type kp) "
            "that were created by apply"
        )
    # O_EXCL makes the open fail on an existing file or symlink, and the mode applies from creation on.
    try:
        descriptor = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise UserError(f"{target} already exists; choose another path or remove it first") from None
    except OSError as error:
        raise UserError(f"cannot create {target}: {error.strerror}; choose a writable path") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(private_key if private_key.endswith("\n") else private_key + "\n")
    click.echo(f"wrote the private key of {resource} to {target} (mode 0600)")


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL; e.g. eval "$(cws-workload completion bash)"."""
    from click.shell_completion import get_completion_class

    completion_class = get_completion_class(shell)
    assert completion_class is not None
    root = click.get_current_context().find_root().command
    script = completion_class(root, {}, "cws-workload", "_CWS_WORKLOAD_COMPLETE").source()
    click.echo(script)
