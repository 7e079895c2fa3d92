"""The JSON documents of the instance API: requests, instances and their secrets."""

from __future__ import annotations

from typing import Any

from orchestrator.emulator.clock import format_timestamp

HIDDEN = "<HIDDEN>"
SECRET_ATTRIBUTES = ("privateKey", "password")
TRANSIENT_STATUSES = frozenset({"creating", "deleting"})

IN_PROGRESS = "in-progress"
COMPLETED = "completed"
FAILED = "failed"


def hide_secrets(values: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `values` with every secret attribute replaced by `<HIDDEN>`."""
    return {key: HIDDEN if key in SECRET_ATTRIBUTES else value for key, value in values.items()}


def new_request_document(
    *,
    request_id: str,
    instance_id: str | None,
    created_at: float,
    owner_id: str,
    resource_uri: str,
    resource_type: str,
    provider: str,
    region: str,
    connector: str,
    parameters: dict[str, Any],
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """Build an `in-progress` request; `instance_id` None leaves the top-level `instanceId` out."""
    timestamp = format_timestamp(created_at)
    document: dict[str, Any] = {"requestId": request_id}
    if instance_id is not None:
        document["instanceId"] = instance_id
    document.update(
        {
            "created": timestamp,
            "updated": timestamp,
            "ownerId": owner_id,
            "requestStatus": IN_PROGRESS,
            "resourceUri": resource_uri,
            "resourceType": resource_type,
            "provider": provider,
            "region": region,
            "connector": connector,
            "parameters": hide_secrets(parameters),
        }
    )
    if metadata is not None:
        document["metadata"] = metadata
    return document


def finish_request_document(
    document: dict[str, Any],
    *,
    status: str,
    finished_at: float,
    results: dict[str, Any],
    instance_id: str | None,
) -> dict[str, Any]:
    """Return the request `document` finished with `status` and `results`, secrets hidden."""
    finished: dict[str, Any] = {"requestId": document["requestId"]}
    if instance_id is not None:
        finished["instanceId"] = instance_id
    for key, value in document.items():
        if key not in ("requestId", "instanceId", "results"):
            finished[key] = value
    finished["updated"] = format_timestamp(finished_at)
    finished["requestStatus"] = status
    finished["results"] = hide_secrets(results)
    return finished


def new_instance_document(
    *,
    instance_id: str,
    created_at: float,
    owner_id: str,
    resource_uri: str,
    resource_type: str,
    provider: str,
    region: str,
    attributes: dict[str, Any],
    stamped: tuple[str, ...],
    metadata: dict[str, Any],
    parameters: dict[str, Any],
) -> dict[str, Any]:
    """Build an instance; `stamped` names the attributes whose change time is recorded."""
    timestamp = format_timestamp(created_at)
    status = attributes["instanceStatus"]
    return {
        "instanceId": instance_id,
        "created": timestamp,
        "updated": timestamp,
        "ownerId": owner_id,
        "resourceUri": resource_uri,
        "resourceType": resource_type,
        "provider": provider,
        "region": region,
        "attributes": {**attributes, "transientStatus": status in TRANSIENT_STATUSES},
        "attributeTimestamps": {name: timestamp for name in stamped},
        "metadata": metadata,
        "parameters": parameters,
    }


def with_provider_resource_id(document: dict[str, Any], provider_resource_id: str) -> dict[str, Any]:
    """Return the instance `document` with `providerResourceId` placed after `region`.

    The provider reports this field in its response to any request after the
    create, so an instance shows it only once a second request has finished.
    """
    if "providerResourceId" in document:
        return document
    placed: dict[str, Any] = {}
    for key, value in document.items():
        placed[key] = value
        if key == "region":
            placed["providerResourceId"] = provider_resource_id
    return placed
