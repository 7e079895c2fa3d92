"""An emulator of the ComputeNext Cloud Workload Service (CWS) instance API.

`create_app` builds the ASGI app, to serve with uvicorn or to call in-process
through `httpx.ASGITransport`; `serve` runs it under uvicorn. The rest of
`orchestrator` talks to the emulator only over HTTP.

The app and the server load FastAPI and uvicorn on first use, so importing
this package for its constants and `DroppedResponse` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.emulator.clock import ManualClock
from orchestrator.emulator.errors import (
    ApiError,
    CatalogError,
    DroppedResponse,
    EmulatorError,
    ProfileError,
)

if TYPE_CHECKING:
    from orchestrator.emulator.app import create_app
    from orchestrator.emulator.profile import FaultSettings, Profile, load_profile
    from orchestrator.emulator.server import EmulatorServer, serve

DEMO_API_KEY = "63a25f81-15dd-481e-a4d4-c5ed9a80f93a"
"""API key of the demo account in the shipped catalog: the tutorial's user."""
DEMO_API_SECRET = "cws-demo-secret"
DEMO_OWNER_ID = "d00f16e6-7503-4838-a658-8b60594ff285"

NO_PAYMENT_API_KEY = "5b0c3f8e-6d2a-4e71-9c1d-2f4a8b6e9d10"
"""API key of the shipped account without payment information, which gets 403 on every create."""
NO_PAYMENT_API_SECRET = "cws-nopayment-secret"

SECOND_API_KEY = "c9e2d7a1-4b3f-4a6c-8e5d-1f0b2a3c4d5e"
"""API key of a second paying account, whose calls return none of the demo account's objects."""
SECOND_API_SECRET = "cws-second-secret"

_LAZY = {
    "create_app": ("orchestrator.emulator.app", "create_app"),
    "serve": ("orchestrator.emulator.server", "serve"),
    "EmulatorServer": ("orchestrator.emulator.server", "EmulatorServer"),
    "Profile": ("orchestrator.emulator.profile", "Profile"),
    "FaultSettings": ("orchestrator.emulator.profile", "FaultSettings"),
    "load_profile": ("orchestrator.emulator.profile", "load_profile"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "DEMO_OWNER_ID",
    "NO_PAYMENT_API_KEY",
    "NO_PAYMENT_API_SECRET",
    "SECOND_API_KEY",
    "SECOND_API_SECRET",
    "ApiError",
    "CatalogError",
    "DroppedResponse",
    "EmulatorError",
    "EmulatorServer",
    "FaultSettings",
    "ManualClock",
    "Profile",
    "ProfileError",
    "create_app",
    "load_profile",
    "serve",
]
