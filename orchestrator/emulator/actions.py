"""Names of the actions a request performs and of the phases an instance goes through.

An action is what a request does, written `{type}.{verb}` as in the request's
`parameters.action` (`kp.create`, `vm.retrieve`, `vs.attach`). The one
exception is `vm.create.image`, which makes an image instance. A phase is time
an instance spends in a transient status after its request has completed:
`vm.boot` (`creating` → `running`), `image.build` and `vs.build` (`creating` →
`created` or `available`), and `{type}.teardown` (`deleting` → `deleted`).

Calls that create no request are named too, so that faults can target them:
`request.get`, `request.list`, `instance.get`, `instance.list`, `catalog.get`.
"""

from __future__ import annotations

PUT_ACTIONS: dict[str, tuple[str, ...]] = {
    "kp": (),
    "sg": ("add-access", "remove-access"),
    "vs": ("attach", "detach"),
    "vm": ("start", "stop"),
    "image": (),
}
"""Actions of `PUT /api/instance/{id}?action=...`, per resource type."""

IMAGE_ACTION = "vm.create.image"

REQUEST_ACTIONS: tuple[str, ...] = (
    *(f"{resource_type}.{verb}" for resource_type in ("kp", "sg", "vs", "vm") for verb in ("create", "retrieve", "delete")),
    IMAGE_ACTION,
    "image.retrieve",
    "image.delete",
    *(f"{resource_type}.{verb}" for resource_type, verbs in PUT_ACTIONS.items() for verb in verbs),
)

PHASES: tuple[str, ...] = (
    "vm.boot",
    "image.build",
    "vs.build",
    *(f"{resource_type}.teardown" for resource_type in ("kp", "sg", "vs", "vm", "image")),
)

READ_CALLS: tuple[str, ...] = ("request.get", "request.list", "instance.get", "instance.list", "catalog.get")
