"""Keys and error pages of the `/ui` routes: the API's own keys, answered as HTML fragments.

The page sends the key typed into it as `Authorization: Bearer ...` on every htmx request.
Each UI route asks for the key its API twin asks for: recommend the read key (none in public
mode), memory browsing and editing the write key; the dashboard is open like `/metrics`.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qs

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from serving.errors import UiError
from serving.recommend_service import RecommendService
from serving.security import check_key
from serving.settings import ServingSettings

Need = Literal["read", "write"]
"""Which key a UI action needs: `read` (recommend) or `write` (memory)."""


def require(request: Request, need: Need) -> None:
    """Raise `UiError` (401/403) unless the request carries the key `need` asks for."""
    settings: ServingSettings = request.app.state.settings
    if need == "read" and settings.public_recommend:
        return
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    creds = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if token else None
    accepted = [settings.api_key] if need == "write" else [settings.read_api_key, settings.api_key]
    try:
        check_key(accepted, creds)
    except HTTPException as exc:
        what = "the write key (MEMENTO_API_KEY)" if need == "write" else "the read or write key"
        if exc.status_code == 401:
            raise UiError(401, "Missing key", f"Enter {what} at the top of the page.") from exc
        raise UiError(403, "Wrong key", f"The key entered is not {what}.") from exc


def service_of(request: Request) -> RecommendService:
    """The running service, or `UiError` 503 while the core is not loaded or not ready."""
    service: RecommendService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise UiError(503, "Service not ready", "The recommender core is not loaded yet.")
    reason = service.not_ready_reason()
    if reason is not None:
        raise UiError(503, "Service not ready", reason)
    return service


async def form(request: Request) -> dict[str, str]:
    """The url-encoded form body (htmx's default encoding), last value per field."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def error_fragment(templates: Jinja2Templates, request: Request, err: UiError) -> Response:
    """The message box the page swaps in (htmx is configured to swap 4xx/5xx too)."""
    return templates.TemplateResponse(
        request,
        "_error.html",
        {"title": err.title, "message": err.message},
        status_code=err.status,
    )
