"""The `/ui` routes: the page and the htmx fragments it swaps in (one service call each).

Every fragment route answers HTML, also on failure: a missing or wrong key, an invalid id,
an unknown user or a service that is not ready render a message box (`_error.html`) with the
matching status, never a JSON error or a stack trace.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from serving import schemas
from serving.errors import ServingError
from serving.settings import ServingSettings
from serving.ui.access import UiError, error_fragment, form, require, service_of
from serving.ui.views import SortKey, case_history, case_row, explain, find_case, search_cases

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["age"] = lambda s: (
    f"{s:.0f} s"
    if s < 120
    else f"{s / 60:.0f} min"
    if s < 7200
    else f"{s / 3600:.1f} h"
    if s < 172800
    else f"{s / 86400:.0f} d"
)
templates.env.filters["utc"] = lambda ts: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
router = APIRouter(prefix="/ui", include_in_schema=False, default_response_class=HTMLResponse)
_ID = TypeAdapter(schemas.Id)
_ACTIONS = ("click", "collect", "cart", "alipay")


def _id(value: str, what: str) -> str:
    """A valid id or `UiError` 422 saying what is wrong with it."""
    try:
        return _ID.validate_python(value.strip())
    except ValidationError as exc:
        why = exc.errors()[0]["msg"]
        raise UiError(422, f"Invalid {what}", f"{what} {value!r}: {why}") from exc


def _events(text: str) -> list[schemas.EventIn]:
    """`item[:action], item[:action] ...` typed into the page -> events (newest last)."""
    out = []
    for token in text.replace("\n", ",").split(","):
        item, _, action = token.strip().partition(":")
        if not item:
            continue
        act = action.strip() or "click"
        if act not in _ACTIONS:
            raise UiError(
                422, "Invalid event", f"{token.strip()!r}: action must be one of {_ACTIONS}"
            )
        out.append(schemas.EventIn(item_id=_id(item, "item id"), action=act))  # type: ignore[arg-type]
    return out


def _render(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
    return templates.TemplateResponse(request, name, ctx, status_code=status)


def _fail(request: Request, exc: Exception) -> Response:
    if isinstance(exc, UiError):
        return error_fragment(templates, request, exc)
    if isinstance(exc, ServingError):
        status = 503 if exc.code in {"not_ready", "learner_busy"} else 404
        return error_fragment(templates, request, UiError(status, exc.code, exc.message))
    raise exc


@router.get("")
def page(request: Request) -> Response:
    """The page: recommend and explain, memory browser, learning dashboard."""
    settings: ServingSettings = request.app.state.settings
    built = (HERE / "static" / "vendor" / "htmx.min.js").is_file()
    return _render(request, "index.html", public=settings.public_recommend, built=built)


@router.post("/recommend")
async def recommend(request: Request) -> Response:
    """Recommend for a user (read key) and explain each item by the cases behind it."""
    try:
        require(request, "read")
        service = service_of(request)
        f = await form(request)
        user = _id(f.get("user_id", ""), "user id")
        n = int(f.get("n") or 10) if (f.get("n") or "10").isdigit() else 10
        req = schemas.RecommendRequest(
            user_id=user,
            n=max(1, min(n, 50)),
            recent_events=_events(f.get("events", "")) or None,
            explain=f.get("explain") == "on",
        )
        view = explain(service, service.recommend(req), user)
        return _render(request, "_recommend.html", view=view, actions=_ACTIONS)
    except (UiError, ServingError) as exc:
        return _fail(request, exc)


@router.post("/outcome")
async def outcome(request: Request) -> Response:
    """Close the shown list (write key), as `POST /v1/outcomes` does: the chosen item with its
    action, every other shown item as shown and not chosen (`item_id` empty: none chosen)."""
    try:
        require(request, "write")
        service = service_of(request)
        f = await form(request)
        act = f.get("action", "click")
        if act not in _ACTIONS:
            raise UiError(422, "Invalid action", f"action must be one of {_ACTIONS}")
        decision_id = _id(f.get("decision_id", ""), "decision id")
        item = _id(f["item_id"], "item id") if f.get("item_id") else None
        decision = service.store.get_decision(decision_id)
        if decision is None:
            raise UiError(404, "Unknown decision", f"unknown decision_id {decision_id!r}")
        shown = list(decision.items)
        impressions = [
            schemas.Impression(item_id=i, action=act if i == item else None)  # type: ignore[arg-type]
            for i in shown
        ]
        out = service.outcome(
            schemas.OutcomeRequest(decision_id=decision_id, impressions=impressions)
        )
        if out.duplicate:
            message = "this list was closed already: nothing changed"
        elif item is None:
            message = f"none chosen sent: {len(shown)} items recorded as shown, not chosen"
        else:
            message = f"{act} on {item} sent; {len(shown) - 1} other items recorded as not chosen"
        return _render(request, "_notice.html", message=message)
    except (UiError, ServingError) as exc:
        return _fail(request, exc)


@router.get("/cases")
def cases(
    request: Request,
    text: Annotated[str, Query(max_length=256)] = "",
    item: Annotated[str, Query(max_length=128)] = "",
    user: Annotated[str, Query(max_length=128)] = "",
    outcome: Annotated[str, Query(max_length=32)] = "",
    sort: SortKey = "q",
) -> Response:
    """Search the live cases (write key, as `GET /v1/cases`)."""
    try:
        require(request, "write")
        service = service_of(request)
        rows = search_cases(service, text=text, item=item, user=user, outcome=outcome, sort=sort)
        return _render(request, "_cases.html", rows=rows, user=user.strip())
    except (UiError, ServingError) as exc:
        return _fail(request, exc)


@router.get("/cases/{case_id}")
def case_detail(request: Request, case_id: str) -> Response:
    """One case and its history (write key)."""
    try:
        require(request, "write")
        service = service_of(request)
        rec = find_case(service, _id(case_id, "case id"))
        if rec is None:
            raise UiError(404, "Unknown case", f"No live case {case_id!r} (deleted or erased?).")
        row = case_row(service, rec, now=time.time())
        return _render(request, "_case.html", row=row, history=case_history(service, rec))
    except (UiError, ServingError) as exc:
        return _fail(request, exc)


@router.delete("/cases/{case_id}")
def delete_case(request: Request, case_id: str) -> Response:
    """Delete a case (write key); the page drops its row."""
    try:
        require(request, "write")
        service_of(request).delete_case(_id(case_id, "case id"))
        return _render(request, "_deleted.html", case_id=case_id)
    except (UiError, ServingError) as exc:
        return _fail(request, exc)


@router.post("/users/{user_id}/erase")
def erase_user(request: Request, user_id: str) -> Response:
    """Erase a user (write key; the page asks for confirmation first)."""
    try:
        require(request, "write")
        user = _id(user_id, "user id")
        report = service_of(request).erase_user(user)
        if not any((report.events, report.decisions, report.feedback, report.cases)):
            raise UiError(404, "Unknown user", f"Nothing is stored for user {user!r}.")
        response = _render(request, "_erased.html", user=user, report=report)
        response.headers["HX-Trigger"] = "memory-changed"
        return response
    except (UiError, ServingError) as exc:
        return _fail(request, exc)
