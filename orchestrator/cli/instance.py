"""`cws-workload instance ...`: the tutorial's low-level verbs, one API call each.

Each verb prints the call it makes (URL, method, body, user, with the password
as <hidden>), then `---- RESULT ----` and the JSON the API returned. The
current request and instance ids are kept in `current.json` beside the state
file, so `getr`, `geti`, `getir` and `deletei` work without an id, as in the
tutorial.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import click

from orchestrator.client import CwsClient
from orchestrator.config import Settings


def _current_path(settings: Settings) -> Path:
    return settings.state_path.parent / "current.json"


def _load_current(settings: Settings) -> dict[str, str]:
    path = _current_path(settings)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_current(settings: Settings, current: dict[str, str]) -> None:
    path = _current_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(current, handle)


def _endpoint(settings: Settings) -> str:
    if settings.endpoint:
        return settings.endpoint
    from orchestrator.embedded import EMBEDDED_ENDPOINT

    return EMBEDDED_ENDPOINT


def _call(settings: Settings, function: Callable[[CwsClient], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        transport = None
        if settings.endpoint is None:
            from orchestrator.embedded import EmbeddedTransport

            transport = EmbeddedTransport(settings.emulator_db, settings.emulator_profile)
        async with CwsClient(
            _endpoint(settings), settings.api_key, settings.api_secret, transport=transport, retry_attempts=1
        ) as client:
            return await function(client)

    return anyio.run(run)


def _print_options(settings: Settings, title: str, method: str, path: str, body: Any = None) -> None:
    options: dict[str, Any] = {"url": f"{_endpoint(settings)}/api{path}", "method": method}
    if body is not None:
        options["json"] = body
    options["auth"] = {"user": settings.api_key, "pass": "<hidden>"}
    click.echo(title)
    click.echo("options: " + json.dumps(options, indent=2))


def _remember(settings: Settings, current: dict[str, str], *, request_id: str | None = None,
              instance_id: str | None = None) -> None:
    if request_id and current.get("requestId") != request_id:
        current["requestId"] = request_id
        click.echo(f"##### setting current requestId: {request_id}")
    if instance_id and current.get("instanceId") != instance_id:
        current["instanceId"] = instance_id
        click.echo(f"##### setting current instanceId: {instance_id}")
    _save_current(settings, current)


def _print_result(result: Any) -> None:
    click.echo("---- RESULT ----")
    click.echo(json.dumps(result, indent=2))


def _pick(current: dict[str, str], given: str | None, key: str, verb: str) -> str:
    chosen = given or current.get(key)
    if not chosen:
        raise click.UsageError(f"{verb} needs an id: give one, or run a command that sets the current {key} first")
    return chosen


def _read_body(file: Path) -> dict[str, Any]:
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise click.BadParameter(f"{file} not found", param_hint="FILE") from None
    except ValueError as error:
        raise click.BadParameter(f"{file} is not valid JSON: {error}", param_hint="FILE") from None
    if not isinstance(document, dict):
        raise click.BadParameter(f"{file} must hold a JSON object", param_hint="FILE")
    return document


@click.group("instance")
def instance_group() -> None:
    """Low-level calls of the instance API, as the tutorial's runcws verbs."""


@instance_group.command("createi")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def createi(ctx: click.Context, file: Path) -> None:
    """Create an instance from the resource named in FILE (a JSON body with "resourceUri")."""
    settings: Settings = ctx.obj.settings
    document = _read_body(file)
    resource_uri = document.pop("resourceUri", None)
    if not isinstance(resource_uri, str) or resource_uri.count("/") != 3:
        raise click.BadParameter(
            f"{file} needs \"resourceUri\": \"type/provider/region/resourceId\", e.g. kp/hpcloud/nova/standard",
            param_hint="FILE",
        )
    _print_options(settings, "createi (create instance from resource)", "post", f"/resource/{resource_uri}", document)
    result = _call(settings, lambda client: client.create_instance(resource_uri, document))
    current = _load_current(settings)
    _remember(settings, current, request_id=result.get("requestId"))
    _print_result(result)


@instance_group.command("getr")
@click.argument("request_id", required=False)
@click.pass_context
def getr(ctx: click.Context, request_id: str | None) -> None:
    """Get a request (the current one by default); the API returns an array."""
    settings: Settings = ctx.obj.settings
    current = _load_current(settings)
    chosen = _pick(current, request_id, "requestId", "getr")
    _print_options(settings, "getr (retrieve request)", "get", f"/request/{chosen}")
    result = _call(settings, lambda client: client._call("GET", f"/request/{chosen}", "GET /request/{id}", safe=True))
    first = result[0] if isinstance(result, list) and result else {}
    _remember(settings, current, instance_id=first.get("instanceId"))
    _print_result(result)


@instance_group.command("geti")
@click.argument("instance_id", required=False)
@click.pass_context
def geti(ctx: click.Context, instance_id: str | None) -> None:
    """Get an instance as stored (the current one by default)."""
    settings: Settings = ctx.obj.settings
    current = _load_current(settings)
    chosen = _pick(current, instance_id, "instanceId", "geti")
    _print_options(settings, "geti (retrieve instance)", "get", f"/instance/{chosen}")
    result = _call(settings, lambda client: client.get_instance(chosen))
    _print_result(result)


@instance_group.command("getir")
@click.argument("instance_id", required=False)
@click.pass_context
def getir(ctx: click.Context, instance_id: str | None) -> None:
    """Refresh an instance from the provider; returns a request to follow with getr."""
    settings: Settings = ctx.obj.settings
    current = _load_current(settings)
    chosen = _pick(current, instance_id, "instanceId", "getir")
    _print_options(settings, "getir (retrieve instance (with refresh))", "get", f"/instance/{chosen}?refresh=true")
    result = _call(settings, lambda client: client.refresh_instance(chosen))
    _remember(settings, current, request_id=result.get("requestId"))
    _print_result(result)


@instance_group.command("listr")
@click.pass_context
def listr(ctx: click.Context) -> None:
    """List the requests still in progress; finished ones are cleaned up."""
    settings: Settings = ctx.obj.settings
    _print_options(settings, "listr (retrieve multiple requests)", "get", "/request?cleanup=true")
    _print_result(_call(settings, lambda client: client.list_requests(cleanup=True)))


@instance_group.command("listi")
@click.pass_context
def listi(ctx: click.Context) -> None:
    """List the instances; deleted ones are cleaned up."""
    settings: Settings = ctx.obj.settings
    _print_options(settings, "listi (retrieve multiple instances)", "get", "/instance?cleanup=true")
    _print_result(_call(settings, lambda client: client.list_instances(cleanup=True)))


@instance_group.command("deletei")
@click.argument("instance_id", required=False)
@click.pass_context
def deletei(ctx: click.Context, instance_id: str | None) -> None:
    """Delete an instance (the current one by default); returns a request."""
    settings: Settings = ctx.obj.settings
    current = _load_current(settings)
    chosen = _pick(current, instance_id, "instanceId", "deletei")
    _print_options(settings, "deletei (delete instance)", "delete", f"/instance/{chosen}")
    result = _call(settings, lambda client: client.delete_instance(chosen))
    _remember(settings, current, request_id=result.get("requestId"))
    _print_result(result)


@instance_group.command("createimage")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("vm_instance_id", required=False)
@click.pass_context
def createimage(ctx: click.Context, file: Path, vm_instance_id: str | None) -> None:
    """Create a private image from a VM (the current instance by default); FILE contains its metadata."""
    settings: Settings = ctx.obj.settings
    current = _load_current(settings)
    chosen = _pick(current, vm_instance_id, "instanceId", "createimage")
    body = _read_body(file)
    _print_options(
        settings, "createimage (create an image instance from a VM instance)", "post",
        f"/instance/{chosen}?action=image", body,
    )
    result = _call(settings, lambda client: client.create_image(chosen, body))
    _remember(settings, current, request_id=result.get("requestId"), instance_id=result.get("instanceId"))
    _print_result(result)
