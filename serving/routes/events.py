"""`POST /v1/events` (keyed)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.deps import Service
from serving.errors import KEYED, SERVICE, WITH_BODY, error_responses
from serving.responses import model_response
from serving.schemas import EventsAccepted, EventsRequest
from serving.security import ApiKey

router = APIRouter(
    prefix="/v1",
    tags=["events"],
    dependencies=[ApiKey],
    responses=error_responses(*KEYED, *SERVICE),
)


@router.post(
    "/events",
    status_code=202,
    response_model=EventsAccepted,
    responses=error_responses(*WITH_BODY),
)
def post_events(req: EventsRequest, service: Service) -> Response:
    """Append a user's interactions (their state changes on the next recommendation)."""
    return model_response(service.add_events(req), 202)
