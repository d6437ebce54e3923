"""Named domain exceptions of the service and the ONE table mapping them to HTTP codes.

The core and the store raise these (never `HTTPException`); `install_error_handlers` turns
them into JSON `{"error": <code>, "message": <text>}` answers (validation errors add
`details`). `error_responses` declares those answers in the OpenAPI document, so every status
a route can send is documented with the `ErrorOut` schema.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from recsys.errors import BundleError, CaseNotFoundError, NoCandidatesError, RecsysError
from serving.schemas import ErrorOut

logger = logging.getLogger(__name__)


class ServingError(Exception):
    """Base of every domain error the service reports to clients."""

    code = "serving_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownDecisionError(ServingError):
    """Feedback names a decision id the store does not know (or that was erased)."""

    code = "unknown_decision"


class ItemNotInDecisionError(ServingError):
    """Feedback names an item that the decision did not recommend."""

    code = "item_not_in_decision"


class OutcomeMismatchError(ServingError):
    """An outcome that does not list every item its decision showed exactly once."""

    code = "outcome_mismatch"


class UnknownCaseError(ServingError):
    """A case id that is not in the case log (or was deleted)."""

    code = "unknown_case"


class LearnerBusyError(ServingError):
    """The online-learner queue is full; the client should retry later."""

    code = "learner_busy"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelLoadError(ServingError):
    """The model directory or registry entry cannot be used (startup fails with this)."""

    code = "model_load_error"


class NotReadyError(ServingError):
    """The core is not loaded (starting, reloading failed, or shutting down)."""

    code = "not_ready"


class InsecureSettingsError(ServingError):
    """Startup refused: production mode with a default or empty API key."""

    code = "insecure_settings"


ERROR_STATUS: dict[type[Exception], int] = {
    UnknownDecisionError: 404,
    UnknownCaseError: 404,
    ItemNotInDecisionError: 409,
    OutcomeMismatchError: 422,
    LearnerBusyError: 503,
    NotReadyError: 503,
    ModelLoadError: 503,
    InsecureSettingsError: 500,
    # the core's errors (recsys.errors), should one reach a route
    CaseNotFoundError: 404,
    BundleError: 503,
    NoCandidatesError: 503,
    RecsysError: 500,
}
"""The one mapping from domain and core exceptions to HTTP status (first matching base class
wins)."""


def status_for(exc: Exception) -> int:
    """HTTP status of a domain error, walking its MRO through `ERROR_STATUS`."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read (not decodable)",
    401: "Missing bearer API key",
    403: "Wrong API key",
    404: "Unknown id (decision, case), or a path that names no route",
    409: "Feedback or an outcome on an item the decision did not recommend",
    413: "Request body larger than MEMENTO_MAX_BODY_BYTES",
    422: "Invalid request: `details` lists each failed constraint (an outcome that misses or"
    " repeats a shown item: the message names them)",
    503: "Not ready (the message names what to run), or the learner queue is full (`Retry-After`)",
}
"""Every error status the service sends, described once for the OpenAPI document."""

KEYED = (401, 403)
"""Statuses of a route behind a bearer key."""
SERVICE = (503,)
"""Statuses of a route that needs the loaded core."""
WITH_BODY = (400, 413, 422)
"""Statuses of a route that reads a JSON body."""
WITH_PARAMS = (422,)
"""Statuses of a route with query parameters."""
WITH_PATH_ID = (404, 422)
"""Statuses of a route with an id in its path (an id with `/` names no route: 404)."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` declaring these error statuses with the `ErrorOut` schema."""
    return {
        status: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[status]}
        for status in sorted(set(statuses))
    }


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON shape of every error answer."""
    return {"error": code, "message": message, **extra}


async def _serving_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServingError | RecsysError), f"{type(exc)=}"
    headers = {}
    if isinstance(exc, LearnerBusyError):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, ServingError):
        code, message = exc.code, exc.message
    else:  # a core error: its class names the code
        code, message = type(exc).__name__.removesuffix("Error").lower() or "core", str(exc)
    return JSONResponse(error_body(code, message), status_code=status_for(exc), headers=headers)


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in err.get("loc", ()))
    return f"{loc}: {err.get('msg', 'invalid')}"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError), f"{type(exc)=}"
    errors = list(exc.errors())
    message = "; ".join(_describe(e) for e in errors[:10]) or "invalid request"
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        for e in errors[:20]
    ]
    return JSONResponse(
        jsonable_encoder(error_body("validation_error", message, details=details)),
        status_code=422,
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}
"""Error codes of framework-level HTTP errors (auth, routing, body limit)."""


def _allowed_methods(request: Request) -> str:
    """Every documented method at the request's path (Starlette's 405 names only the methods
    of the first route whose path matches, e.g. `GET` for `GET, POST /v1/cases`)."""
    path = request.scope.get("path", "")
    methods = {
        method.upper()
        for template, operations in request.app.openapi()["paths"].items()
        if compile_path(template)[0].match(path)
        for method in operations
    }
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException), f"{type(exc)=}"
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the domain, validation and last-resort handlers on `app`."""
    app.add_exception_handler(ServingError, _serving_error)
    app.add_exception_handler(RecsysError, _serving_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


class UiError(ServingError):
    """A message for the `/ui` page, with the HTTP status of the fragment that shows it."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message
