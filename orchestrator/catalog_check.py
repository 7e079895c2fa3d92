"""Check a workload against the endpoint's catalog before anything is created.

An endpoint that serves `GET /api/catalog` lists, per provider and region, the
resource ids of each type (a VM's resource id is its flavour) and the public
images a VM can boot from. A resource URI or a literal `imageUri` missing
from the catalog would make its create fail with 400 halfway through a run.
So `plan` and `apply` report every such value at once, before the first
create is sent, each with the file:line:column where it is written. An
`imageUri` outside the public list passes when the account owns a private
image with that URI.

Endpoints without a catalog (`CwsClient.get_catalog()` returns None) are not
checked. When the catalog cannot be read because the endpoint is unreachable
or failing, the check is skipped with a `catalog.unchecked` warning: plan
still works from the state alone, and the create itself still rejects what
the catalog would have.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from orchestrator.client import CwsClient
from orchestrator.errors import (
    AuthenticationFailed,
    ConfigError,
    ServerError,
    SpecError,
    SpecProblem,
    Throttled,
    TransportError,
)
from orchestrator.references import iter_references
from orchestrator.spec import ResourceSpec, WorkloadSpec

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

log = structlog.get_logger("orchestrator.catalog_check")

# Errors that leave the catalog unread, which tells nothing about the workload file.
_UNAVAILABLE = (TransportError, ServerError, Throttled)


class NotInCatalog(SpecError):
    """Values of a workload file that the endpoint's catalog does not list (exit code 2, like any SpecError)."""


async def check_catalog(spec: WorkloadSpec, client: CwsClient) -> None:
    """Raise NotInCatalog listing every resource URI and image of `spec` that the endpoint lacks.

    Does nothing when the endpoint has no catalog, and warns instead of
    raising when the catalog cannot be read.
    """
    try:
        catalog = await client.get_catalog()
    except _UNAVAILABLE as error:
        log.warning("catalog.unchecked", endpoint=client.endpoint, error=str(error))
        return
    if catalog is None:
        log.info("catalog.absent", endpoint=client.endpoint)
        return

    private_images = _PrivateImages(client)
    problems: list[SpecProblem] = []
    for resource in spec.resources.values():
        problems += _resource_uri_problems(spec, resource, catalog)
        if resource.type == "vm":
            problems += await _image_problems(spec, resource, catalog, private_images)
    if problems:
        raise NotInCatalog(problems)


async def check_catalog_for_plan(
    open_client: Callable[[], AbstractAsyncContextManager[CwsClient]], spec: WorkloadSpec
) -> None:
    """Run `check_catalog` for a plan, on a client of its own.

    A plan needs no API call otherwise, so an unreachable endpoint skips the
    check with a warning after the client's short connection check instead of
    failing the plan. Rejected credentials raise ConfigError.
    """
    async with open_client() as client:
        try:
            await client.check_connection()
        except TransportError as error:
            log.warning("catalog.unchecked", endpoint=client.endpoint, error=str(error))
            return
        except AuthenticationFailed as error:
            raise ConfigError(
                f"{client.endpoint} rejected the credentials of API key {client.api_key!r} "
                f"({error.status} {error.code}: {error.api_message}); check CWS_API_KEY and CWS_API_SECRET, --api-key, "
                "or the config profile"
            ) from None
        await check_catalog(spec, client)


def _resource_uri_problems(spec: WorkloadSpec, resource: ResourceSpec, catalog: dict[str, Any]) -> list[SpecProblem]:
    base = ("resources", resource.name)

    def problem(key: str, message: str) -> SpecProblem:
        written_as_uri = base + ("resourceUri",) in spec.positions
        path = base + ("resourceUri",) if written_as_uri else _location_path(spec, base, key)
        position = spec.position_of(path)
        return SpecProblem(spec.path, position.line, position.column, message)

    providers = catalog.get("providers") or {}
    provider = providers.get(resource.provider)
    if provider is None:
        return [
            problem(
                "provider",
                f"provider '{resource.provider}' of {resource.name} is not in the endpoint's catalog"
                f"{_suggest(resource.provider, providers)} (providers: {_listing(providers)})",
            )
        ]
    regions = provider.get("regions") or {}
    region = regions.get(resource.region)
    if region is None:
        return [
            problem(
                "region",
                f"region '{resource.region}' of {resource.name} is not in the endpoint's catalog for provider "
                f"{resource.provider}{_suggest(resource.region, regions)} (regions: {_listing(regions)})",
            )
        ]
    resource_ids = (region.get("resources") or {}).get(resource.type) or []
    if resource.resource_id not in resource_ids:
        return [
            problem(
                "resource",
                f"resource id '{resource.resource_id}' of {resource.name} is not in the endpoint's catalog for "
                f"{resource.type} in {resource.provider}/{resource.region}"
                f"{_suggest(resource.resource_id, resource_ids)} (resource ids: {_listing(resource_ids)})",
            )
        ]
    return []


def _location_path(spec: WorkloadSpec, base: tuple[str, ...], key: str) -> tuple[str, ...]:
    """Return where a provider, region or resource id is written: the resource, else `defaults`."""
    if base + (key,) in spec.positions:
        return base + (key,)
    if key in ("provider", "region") and ("defaults", key) in spec.positions:
        return ("defaults", key)
    return base


async def _image_problems(
    spec: WorkloadSpec, resource: ResourceSpec, catalog: dict[str, Any], private_images: _PrivateImages
) -> list[SpecProblem]:
    image_uri = resource.parameters.get("imageUri")
    # A reference (an image of this workload, or `${count.index}` in the URI) is only known during the run.
    if not isinstance(image_uri, str) or _has_reference(image_uri):
        return []
    provider = (catalog.get("providers") or {}).get(resource.provider) or {}
    region = (provider.get("regions") or {}).get(resource.region)
    if region is None:
        return []  # Already reported as an unknown provider or region.

    prefix = f"image/{resource.provider}/{resource.region}/"
    public = [image.get("imageUri") for image in region.get("images") or [] if isinstance(image, dict)]
    if image_uri in public:
        return []
    if not image_uri.startswith(prefix):
        message = (
            f"imageUri '{image_uri}' of {resource.name} is not an image of {resource.provider}/{resource.region}, "
            f"where the VM is created; give one of {_listing(public)} or a private image under {prefix}"
        )
        return [_image_problem(spec, resource, message)]
    if await private_images.contains(resource.provider, resource.region, image_uri):
        return []
    message = (
        f"imageUri '{image_uri}' of {resource.name} is neither in the endpoint's catalog nor a private image "
        f"of this account{_suggest(image_uri, public)} (public images: {_listing(public)})"
    )
    return [_image_problem(spec, resource, message)]


def _image_problem(spec: WorkloadSpec, resource: ResourceSpec, message: str) -> SpecProblem:
    position = spec.position_of(("resources", resource.name, "imageUri"))
    return SpecProblem(spec.path, position.line, position.column, message)


class _PrivateImages:
    """The account's image URIs per provider and region, listed once and only when needed."""

    def __init__(self, client: CwsClient) -> None:
        self._client = client
        self._listed: dict[tuple[str, str], set[str]] = {}

    async def contains(self, provider: str, region: str, image_uri: str) -> bool:
        key = (provider, region)
        if key not in self._listed:
            instances = await self._client.list_instances(resource_type="image", provider=provider, region=region)
            self._listed[key] = {
                instance["resourceUri"]
                for instance in instances
                if (instance.get("attributes") or {}).get("instanceStatus") not in ("deleted", "deleting", "failed")
            }
        return image_uri in self._listed[key]


def _has_reference(text: str) -> bool:
    try:
        return any(True for _ in iter_references(text))
    except ValueError:
        return True


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, [str(choice) for choice in choices], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _listing(values: Any) -> str:
    names = [str(value) for value in values]
    return ", ".join(names) if names else "none"


__all__ = ["NotInCatalog", "check_catalog", "check_catalog_for_plan"]
