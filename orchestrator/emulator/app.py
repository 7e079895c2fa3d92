"""The FastAPI app of the emulator: HTTP routes, authentication, faults and error bodies.

Every `/api` call runs the same steps. The app counts it, authenticates it
(401), settles the requests that are due and checks it (400, 403, 404). Then
it draws the call's faults (429 or 503 before acting), acts, and responds
(500 or a dropped connection after acting, or a slow response).

The app needs no lifespan event: `create_app` opens the store itself, so
`httpx.ASGITransport`, which runs no lifespan, serves it too.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import structlog
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.models import Example
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from orchestrator.emulator import bodies
from orchestrator.emulator.catalog import RESOURCE_TYPES, Account, load_catalog
from orchestrator.emulator.clock import Clock
from orchestrator.emulator.errors import ApiError, DroppedResponse, ProfileError
from orchestrator.emulator.faults import CallFaults, FaultInjector
from orchestrator.emulator.profile import Profile, load_profile
from orchestrator.emulator.schemas import (
    BODY_MODELS,
    CatalogDocument,
    ErrorBody,
    InstanceDocument,
    RequestDocument,
)
from orchestrator.emulator.service import InstanceService, Plan
from orchestrator.emulator.store import Store

logger = structlog.get_logger("orchestrator.emulator")

API_TITLE = "CWS instance API (emulator)"
API_VERSION = "2"
ADMIN_KEY_HEADER = "X-CWS-Admin-Key"
_AUTH_CACHE_SIZE = 256

_JSON = "application/json"


class JSONText(Response):
    """A response whose body is JSON text that is already serialised."""

    media_type = _JSON


class _DroppedConnection(Response):
    """Sends the status line and a `Content-Length`, then raises instead of sending the body.

    Under uvicorn the raise makes the server close the connection, so the
    client reads a response cut short. Through `httpx.ASGITransport` the
    `DroppedResponse` reaches the client code itself.
    """

    def __init__(self, content_length: int) -> None:
        super().__init__(status_code=200)
        self._content_length = content_length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", _JSON.encode()), (b"content-length", str(self._content_length).encode())],
            }
        )
        raise DroppedResponse("the emulator acted on the call and dropped the connection before the body (dropped_response fault)")


def _error_response(error: ApiError) -> Response:
    return JSONText(json.dumps(error.to_body()), status_code=error.status_code, headers=error.headers)


class Emulator:
    """The state behind one app: the service, the fault injector, the accounts and the admin key."""

    def __init__(self, service: InstanceService, injector: FaultInjector, admin_key: str | None) -> None:
        self.service = service
        self.injector = injector
        self.admin_key = admin_key
        self._accounts_by_header: dict[str, Account] = {}

    def close(self) -> None:
        """Close the store. Call once the server has stopped serving."""
        self.service.close()

    # The steps of a call

    def begin(self, request: Request, endpoint: str) -> Account:
        """Count the call, authenticate it and settle what is due."""
        self.injector.count_call(endpoint)
        account = self.authenticate(request.headers.get("authorization"))
        self.service.settle()
        return account

    def authenticate(self, header: str | None) -> Account:
        """Return the account of a Basic `Authorization` header; raise a 401 when it names none."""
        if header is None:
            raise _unauthorized()
        account = self._accounts_by_header.get(header)
        if account is not None:
            return account
        account = self._check_credentials(header)
        # Only valid headers are cached, so the cache stays as small as the accounts allow.
        if len(self._accounts_by_header) < _AUTH_CACHE_SIZE:
            self._accounts_by_header[header] = account
        return account

    def _check_credentials(self, header: str) -> Account:
        unauthorized = _unauthorized()
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise unauthorized
        try:
            api_key, separator, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized from None
        account = self.service.catalog.accounts.get(api_key)
        if not separator or account is None or not hmac.compare_digest(secret.encode(), account.secret.encode()):
            raise unauthorized
        return account

    def require_payment_information(self, account: Account) -> None:
        if not account.has_payment_information:
            raise ApiError(
                403,
                "FORBIDDEN",
                f"account {account.api_key} has no payment information; enter it before creating instances",
            )

    def draw_faults(self, action: str, *, creates_request: bool) -> CallFaults:
        """Draw the faults of a checked call and raise the ones that strike before acting."""
        faults = self.injector.draw(action, creates_request=creates_request)
        if faults.before_acting is None:
            return faults
        retry_after = self.injector.settings.retry_after_seconds
        headers = {"Retry-After": str(retry_after)}
        if faults.before_acting == "throttle":
            raise ApiError(429, "THROTTLED", f"too many requests; retry after {retry_after} s", headers=headers)
        raise ApiError(
            503, "SERVICE_UNAVAILABLE", f"the service is unavailable; retry after {retry_after} s", headers=headers
        )

    async def respond(self, faults: CallFaults, content: str) -> Response:
        """Build the response of a call that has acted, applying the faults that strike after acting."""
        if faults.slow:
            await anyio.sleep(self.injector.settings.slow_response_seconds)
        if faults.after_acting == "internal_error":
            raise ApiError(
                500,
                "INTERNAL_ERROR",
                "internal error after the call was accepted; check whether it took effect before sending it again",
            )
        if faults.after_acting == "dropped_response":
            return _DroppedConnection(len(content.encode()))
        return JSONText(content)

    async def submit(self, plan: Plan) -> Response:
        faults = self.draw_faults(plan.action, creates_request=True)
        document = await self.service.submit(
            plan, faults.request_fault, self.injector.settings.failed_request_code
        )
        return await self.respond(faults, document)

    async def read(self, action: str, produce: Callable[[], str]) -> Response:
        faults = self.draw_faults(action, creates_request=False)
        return await self.respond(faults, produce())

    def check_admin(self, request: Request) -> None:
        """Raise a 404, as for an unknown path, unless the admin key is configured and sent."""
        sent = request.headers.get(ADMIN_KEY_HEADER)
        if self.admin_key is None or sent is None or not hmac.compare_digest(sent.encode(), self.admin_key.encode()):
            raise StarletteHTTPException(404)


class ApiCalls:
    """The frequent `/api` calls, served alike by the FastAPI routes and by `EmulatorApp`'s direct dispatch."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.service = emulator.service

    async def create_instance(
        self, request: Request, resource_type: str, provider: str, region: str, resource_id: str
    ) -> Response:
        account = self.emulator.begin(request, "createInstance")
        self.emulator.require_payment_information(account)
        body = await _json_body(request)
        plan = self.service.plan_create(account, resource_type, provider, region, resource_id, body)
        return await self.emulator.submit(plan)

    async def get_request(self, request: Request, request_id: str) -> Response:
        account = self.emulator.begin(request, "getRequest")
        return await self.emulator.read("request.get", lambda: self.service.get_request(account, request_id))

    async def get_instance(self, request: Request, instance_id: str, refresh: str | None) -> Response:
        account = self.emulator.begin(request, "getInstance")
        if bodies.parse_flag(refresh, "refresh"):
            return await self.emulator.submit(self.service.plan_refresh(account, instance_id))
        return await self.emulator.read("instance.get", lambda: self.service.get_instance(account, instance_id))

    async def delete_instance(self, request: Request, instance_id: str) -> Response:
        account = self.emulator.begin(request, "deleteInstance")
        return await self.emulator.submit(self.service.plan_delete(account, instance_id))

    async def create_image(self, request: Request, instance_id: str, action: str | None) -> Response:
        account = self.emulator.begin(request, "createImage")
        self.emulator.require_payment_information(account)
        if action != "image":
            received = "missing" if action is None else repr(action)
            raise bodies.invalid(
                f"action {received} is not supported by POST; use action=image, or PUT for the other actions", "INVALID_ACTION"
            )
        body = await _json_body(request)
        return await self.emulator.submit(self.service.plan_image(account, instance_id, body))

    async def perform_action(self, request: Request, instance_id: str, action: str | None) -> Response:
        account = self.emulator.begin(request, "performAction")
        body = await _json_body(request)
        return await self.emulator.submit(self.service.plan_action(account, instance_id, action, body))

    def match(self, method: str, path: str) -> Callable[[Request], Awaitable[Response]] | None:
        """Return the call serving `method path`, or None for a path left to FastAPI's routing.

        The matches are those of the routes' templates: each `{parameter}` is
        one non-empty path segment, and query parameters are read as FastAPI
        reads a single-valued one (the last value given).
        """
        parts = path.split("/")
        if len(parts) < 4 or parts[0] or parts[1] != "api" or not all(parts[2:]):
            return None
        collection = parts[2]
        if len(parts) == 4 and collection == "instance":
            instance_id = parts[3]
            if method == "GET":
                return lambda request: self.get_instance(request, instance_id, request.query_params.get("refresh"))
            if method == "DELETE":
                return lambda request: self.delete_instance(request, instance_id)
            if method == "POST":
                return lambda request: self.create_image(request, instance_id, request.query_params.get("action"))
            if method == "PUT":
                return lambda request: self.perform_action(request, instance_id, request.query_params.get("action"))
            return None
        if len(parts) == 4 and collection == "request" and method == "GET":
            request_id = parts[3]
            return lambda request: self.get_request(request, request_id)
        if len(parts) == 7 and collection == "resource" and method == "POST":
            resource_type, provider, region, resource_id = parts[3:]
            return lambda request: self.create_instance(request, resource_type, provider, region, resource_id)
        return None


class EmulatorApp(FastAPI):
    """The emulator's FastAPI app, which serves the frequent `/api` calls without FastAPI's routing.

    FastAPI's routing and parameter handling cost more CPU per call than the
    emulator's own work. The calls `ApiCalls.match` recognises run the same
    handlers and give the same responses, errors included. Every other path,
    `/openapi.json` and `/admin` among them, goes through FastAPI.
    """

    api_calls: ApiCalls | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = None
        if scope["type"] == "http" and self.api_calls is not None:
            call = self.api_calls.match(scope["method"], scope["path"])
        if call is None:
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await call(request)
        except ApiError as error:
            response = _api_error_response(request, error)
        except Exception as error:
            # As under FastAPI: the 500 response is sent, then the error is raised for the server to log.
            await _crash_response(request, error)(scope, receive, send)
            raise
        await response(scope, receive, send)


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "UNAUTHORIZED",
        "missing or invalid credentials: send HTTP Basic authentication with the API key as user name "
        "and the secret key as password",
        headers={"WWW-Authenticate": 'Basic realm="cws"'},
    )


async def _json_body(request: Request) -> dict[str, Any]:
    return bodies.parse_json_object(await request.body())


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Invalid call: malformed body, invalid JSON, or an unknown type, provider, region, resource id or image.",
        401: "Missing or wrong credentials.",
        403: "The account has no payment information.",
        404: "Unknown request or instance id, or one removed by cleanup.",
        429: "Throttled; retry after the Retry-After header's seconds. The call was not acted on.",
        500: "Internal error; the call may have been acted on.",
        503: "Unavailable; retry after the Retry-After header's seconds. The call was not acted on.",
    }
    return {status: {"model": ErrorBody, "description": descriptions[status]} for status in statuses}


_COMMON_ERRORS = (401, 429, 500, 503)


def _body_schema(model_name: str, example: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model_name}"}}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": False, "content": {_JSON: content}}}


def _example(value: str) -> dict[str, Example]:
    """Document the tutorial's key pair create as the example of a path parameter."""
    return {"tutorial": Example(summary="the tutorial's key pair", value=value)}


def create_app(
    db_path: str | Path,
    *,
    profile: str | Path | Profile | None = None,
    seed: int | None = None,
    clock: Clock | None = None,
    catalog_path: str | Path | None = None,
    admin_key: str | None = None,
) -> FastAPI:
    """Build the emulator app on the SQLite file `db_path`, created with its parents when missing.

    `profile` is a shipped profile name (`fast`, the default, or `tutorial`), a
    path to a YAML profile or a `Profile`. `seed` makes the latency and fault
    draws reproducible. `clock` returns epoch seconds (default `time.time`).
    Without `admin_key`, the admin path returns 404.

    Raises `ProfileError` or `CatalogError` when the profile or catalog is invalid.
    """
    resolved_profile = load_profile(profile)
    catalog = load_catalog(catalog_path)
    store = Store(db_path)
    service = InstanceService(store, catalog, resolved_profile, clock or time.time, seed)
    emulator = Emulator(service, FaultInjector(resolved_profile.faults, seed), admin_key)

    app = EmulatorApp(
        title=API_TITLE,
        version=API_VERSION,
        description=(
            "An emulator of the ComputeNext Cloud Workload Service instance API. Every /api call takes "
            "HTTP Basic authentication: the API key as user name and the secret key as password."
        ),
        docs_url=None,
        redoc_url=None,
    )
    app.state.emulator = emulator
    calls = ApiCalls(emulator)
    app.api_calls = calls
    _add_error_handlers(app)
    _add_api_routes(app, emulator, calls)
    _add_admin_routes(app, emulator)
    _document(app)
    logger.info(
        "emulator.created",
        db_path=str(store.path),
        profile=resolved_profile.name,
        seed=seed,
        catalog=catalog.source,
        admin=admin_key is not None,
    )
    return app


def _api_error_response(request: Request, error: ApiError) -> Response:
    if error.status_code >= 500 or error.status_code == 429:
        logger.info("call.faulted", method=request.method, path=request.url.path, status=error.status_code)
    else:
        logger.info("call.rejected", method=request.method, path=request.url.path, status=error.status_code, code=error.code)
    return _error_response(error)


def _crash_response(request: Request, error: Exception) -> Response:
    if not isinstance(error, DroppedResponse):
        logger.error("call.crashed", method=request.method, path=request.url.path, error=repr(error))
    return _error_response(ApiError(500, "INTERNAL_ERROR", "internal error in the emulator; see its log"))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return _api_error_response(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 405:
            return _error_response(
                ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.url.path}", headers=dict(error.headers or {}))
            )
        if error.status_code == 404:
            return _error_response(ApiError(404, "NOT_FOUND", f"no such path: {request.method} {request.url.path}"))
        return _error_response(ApiError(error.status_code, "HTTP_ERROR", str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        # Handlers parse their own input, so this is reached only by a parameter FastAPI checks itself.
        first = error.errors()[0] if error.errors() else {"msg": "invalid call"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error_response(ApiError(400, "INVALID_PARAMETER", f"{where}: {first['msg']}"))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> Response:
        # Starlette still re-raises the error after this response, so the server logs its traceback.
        return _crash_response(request, error)


def _add_api_routes(app: FastAPI, emulator: Emulator, calls: ApiCalls) -> None:
    service = emulator.service

    @app.post(
        "/api/resource/{type}/{provider}/{region}/{resourceId}",
        operation_id="createInstance",
        summary="Create an instance from a resource (createi)",
        response_model=None,
        responses={200: {"model": RequestDocument, "description": "The new request, in-progress."}, **_error_responses(400, 403, *_COMMON_ERRORS)},
        openapi_extra=_body_schema("CreateBody", {"metadata": {"name": "KP1", "description": "my first key pair"}}),
        tags=["instances"],
    )
    async def create_instance(
        request: Request,
        resource_type: str = PathParameter(
            alias="type", json_schema_extra={"enum": list(RESOURCE_TYPES)}, openapi_examples=_example("kp")
        ),
        provider: str = PathParameter(openapi_examples=_example("hpcloud")),
        region: str = PathParameter(openapi_examples=_example("nova")),
        resource_id: str = PathParameter(alias="resourceId", openapi_examples=_example("standard")),
    ) -> Response:
        return await calls.create_instance(request, resource_type, provider, region, resource_id)

    @app.get(
        "/api/request/{requestId}",
        operation_id="getRequest",
        summary="Get a request (getr)",
        response_model=None,
        responses={200: {"model": list[RequestDocument], "description": "A JSON array holding the one request."}, **_error_responses(404, *_COMMON_ERRORS)},
        tags=["requests"],
    )
    async def get_request(request: Request, request_id: str = PathParameter(alias="requestId")) -> Response:
        return await calls.get_request(request, request_id)

    @app.get(
        "/api/request",
        operation_id="listRequests",
        summary="List requests (listr)",
        description="With cleanup=true, finished requests are removed first and only those in progress are returned.",
        response_model=None,
        responses={200: {"model": list[RequestDocument], "description": "The requests."}, **_error_responses(400, *_COMMON_ERRORS)},
        tags=["requests"],
    )
    async def list_requests(request: Request, cleanup: str | None = None) -> Response:
        account = emulator.begin(request, "listRequests")
        remove_finished = bodies.parse_flag(cleanup, "cleanup")
        return await emulator.read("request.list", lambda: service.list_requests(account, cleanup=remove_finished))

    @app.get(
        "/api/instance/{instanceId}",
        operation_id="getInstance",
        summary="Get an instance (geti), or refresh it from the provider (getir)",
        description="Without refresh, the instance as the last finished request wrote it. "
        "With refresh=true, a new {type}.retrieve request.",
        response_model=None,
        responses={
            200: {
                "description": "The instance, or with refresh=true the retrieve request.",
                "content": {
                    _JSON: {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/InstanceDocument"},
                                {"$ref": "#/components/schemas/RequestDocument"},
                            ]
                        }
                    }
                },
            },
            **_error_responses(400, 404, *_COMMON_ERRORS),
        },
        tags=["instances"],
    )
    async def get_instance(
        request: Request, instance_id: str = PathParameter(alias="instanceId"), refresh: str | None = None
    ) -> Response:
        return await calls.get_instance(request, instance_id, refresh)

    @app.get(
        "/api/instance",
        operation_id="listInstances",
        summary="List instances (listi)",
        description="With cleanup=true, deleted instances are removed first. "
        "resourceType, provider and region filter the list.",
        response_model=None,
        responses={200: {"model": list[InstanceDocument], "description": "The instances."}, **_error_responses(400, *_COMMON_ERRORS)},
        tags=["instances"],
    )
    async def list_instances(
        request: Request,
        cleanup: str | None = None,
        resource_type: str | None = Query(None, alias="resourceType"),
        provider: str | None = None,
        region: str | None = None,
    ) -> Response:
        account = emulator.begin(request, "listInstances")
        remove_deleted = bodies.parse_flag(cleanup, "cleanup")
        return await emulator.read(
            "instance.list",
            lambda: service.list_instances(
                account, cleanup=remove_deleted, resource_type=resource_type, provider=provider, region=region
            ),
        )

    @app.delete(
        "/api/instance/{instanceId}",
        operation_id="deleteInstance",
        summary="Delete an instance (deletei)",
        response_model=None,
        responses={200: {"model": RequestDocument, "description": "The {type}.delete request, in-progress."}, **_error_responses(404, *_COMMON_ERRORS)},
        tags=["instances"],
    )
    async def delete_instance(request: Request, instance_id: str = PathParameter(alias="instanceId")) -> Response:
        return await calls.delete_instance(request, instance_id)

    @app.post(
        "/api/instance/{instanceId}",
        operation_id="createImage",
        summary="Create a private image from a VM (createimage): action=image",
        response_model=None,
        responses={200: {"model": RequestDocument, "description": "The vm.create.image request, in-progress."}, **_error_responses(400, 403, 404, *_COMMON_ERRORS)},
        openapi_extra=_body_schema("ImageBody"),
        tags=["instances"],
    )
    async def create_image(
        request: Request, instance_id: str = PathParameter(alias="instanceId"), action: str | None = None
    ) -> Response:
        return await calls.create_image(request, instance_id, action)

    @app.put(
        "/api/instance/{instanceId}",
        operation_id="performAction",
        summary="Act on an instance: start, stop, attach, detach, add-access, remove-access",
        response_model=None,
        responses={200: {"model": RequestDocument, "description": "The {type}.{action} request, in-progress."}, **_error_responses(400, 404, *_COMMON_ERRORS)},
        openapi_extra=_body_schema("ActionBody"),
        tags=["instances"],
    )
    async def perform_action(
        request: Request,
        instance_id: str = PathParameter(alias="instanceId"),
        action: str | None = None,
    ) -> Response:
        return await calls.perform_action(request, instance_id, action)

    @app.get(
        "/api/catalog",
        operation_id="getCatalog",
        summary="The providers, regions, resource ids and images that creates accept",
        response_model=None,
        responses={200: {"model": CatalogDocument, "description": "The catalog."}, **_error_responses(*_COMMON_ERRORS)},
        tags=["catalog"],
    )
    async def get_catalog(request: Request) -> Response:
        emulator.begin(request, "getCatalog")
        return await emulator.read("catalog.get", lambda: json.dumps(service.catalog_document()))


def _add_admin_routes(app: FastAPI, emulator: Emulator) -> None:
    @app.get("/admin/faults", include_in_schema=False)
    async def get_faults(request: Request) -> Response:
        emulator.check_admin(request)
        return JSONText(json.dumps(emulator.injector.settings.to_dict()))

    @app.put("/admin/faults", include_in_schema=False)
    async def put_faults(request: Request) -> Response:
        emulator.check_admin(request)
        changes = await _json_body(request)
        try:
            settings = emulator.injector.update(changes)
        except ProfileError as error:
            raise bodies.invalid(str(error)) from error
        return JSONText(json.dumps(settings.to_dict()))

    @app.get("/admin/stats", include_in_schema=False)
    async def get_stats(request: Request) -> Response:
        emulator.check_admin(request)
        return JSONText(json.dumps(emulator.injector.stats()))


def _document(app: FastAPI) -> None:
    """Generate `/openapi.json` once, adding the body schemas and the Basic authentication scheme."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})

        # FastAPI documents a 422 for every operation with parameters, but the
        # emulator rejects invalid input with 400 and the API's error body.
        for path_item in schema["paths"].values():
            for operation in path_item.values():
                operation["responses"].pop("422", None)
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)

        documented: tuple[type[BaseModel], ...] = (*BODY_MODELS, InstanceDocument, RequestDocument)
        for model in documented:
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
            schemas.update(model_schema.pop("$defs", {}))
            schemas[model.__name__] = model_schema
        components["securitySchemes"] = {"basicAuth": {"type": "http", "scheme": "basic"}}
        schema["security"] = [{"basicAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["ApiCalls", "Emulator", "EmulatorApp", "JSONText", "create_app"]
