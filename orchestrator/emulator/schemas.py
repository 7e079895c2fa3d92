"""Models of the wire documents, used only to document the API in `/openapi.json`.

The app never validates through these models: it parses bodies itself, so a
bad body gets the API's `400` error body rather than FastAPI's `422`, and it
returns documents as stored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code, e.g. UNKNOWN_RESOURCE_ID or DEPENDENCY_VIOLATION.")
    message: str = Field(description="What failed, on which value, and what to do next.")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class RequestDocument(BaseModel):
    """An asynchronous operation. Secrets in `results` and `parameters` are `<HIDDEN>`."""

    model_config = ConfigDict(extra="allow")

    requestId: str
    instanceId: str | None = Field(
        None, description="Absent from a create request until it has finished; see parameters.instanceId."
    )
    created: str = Field(description="ISO 8601 UTC with milliseconds.")
    updated: str
    ownerId: str
    requestStatus: Literal["in-progress", "completed", "failed"]
    resourceUri: str
    resourceType: str
    provider: str
    region: str
    connector: str
    parameters: dict[str, Any] = Field(description="Always contains action and instanceId.")
    metadata: dict[str, Any] | None = Field(None, description="The metadata of a create, every key the caller sent.")
    results: dict[str, Any] | None = Field(
        None, description="The provider's response once finished: instanceStatus, or error {code, message} when failed."
    )


class InstanceAttributes(BaseModel):
    model_config = ConfigDict(extra="allow")

    providerInstanceId: int | str
    instanceStatus: str
    transientStatus: bool


class InstanceDocument(BaseModel):
    """A provisioned key pair, security group, volume, VM or image, secrets in full."""

    model_config = ConfigDict(extra="allow")

    instanceId: str
    created: str
    updated: str
    ownerId: str
    resourceUri: str
    resourceType: str
    provider: str
    region: str
    providerResourceId: str | None = Field(None, description="Present once a request after the create has finished.")
    attributes: InstanceAttributes
    attributeTimestamps: dict[str, str]
    metadata: dict[str, Any]
    parameters: dict[str, Any]


class CatalogImage(BaseModel):
    imageUri: str
    name: str


class CatalogRegion(BaseModel):
    zone: str
    resources: dict[str, list[str]] = Field(description="Resource ids by resource type.")
    images: list[CatalogImage]


class CatalogProvider(BaseModel):
    connector: str
    regions: dict[str, CatalogRegion]


class CatalogDocument(BaseModel):
    """The providers, regions, resource ids and public images the emulator accepts."""

    providers: dict[str, CatalogProvider]


class CreateBody(BaseModel):
    """The body of a create. Which keys a type accepts: kp and sg `metadata`; vs `sizeInGBytes`;
    vm `imageUri` (required), `keyPairId`, `securityGroupIds`; image `virtualMachineId` (required)."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] | None = None
    imageUri: str | None = None
    keyPairId: str | None = None
    securityGroupIds: list[str] | None = None
    sizeInGBytes: int | None = None
    virtualMachineId: str | None = None


class ImageBody(BaseModel):
    """The body of `POST /api/instance/{vmInstanceId}?action=image`: metadata for the new image."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] | None = None


class AccessRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    protocol: Literal["tcp", "udp", "icmp"]
    from_port: int = Field(alias="from-port")
    to_port: int = Field(alias="to-port")
    cidr_ip: str = Field(alias="cidr-ip")


class ActionBody(BaseModel):
    """The body of `PUT ?action=`: attach `{virtualMachineId, deviceName}`, detach `{virtualMachineId?}`,
    add-access `{rules}`, remove-access `{ruleIndexes}`, start and stop none."""

    model_config = ConfigDict(extra="forbid")

    virtualMachineId: str | None = None
    deviceName: str | None = None
    rules: list[AccessRule] | None = None
    ruleIndexes: list[int] | None = None


BODY_MODELS: tuple[type[BaseModel], ...] = (CreateBody, ImageBody, ActionBody)
