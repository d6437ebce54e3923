"""`POST /v1/events` (keyed)."""

from __future__ import annotations

from fastapi import Response

from serving.deps import Service
from serving.errors import WITH_BODY, error_responses
from serving.responses import model_response
from serving.routes.keyed import keyed_router
from serving.schemas import EventsAccepted, EventsRequest

router = keyed_router("events")


@router.post(
    "/events",
    status_code=202,
    response_model=EventsAccepted,
    responses=error_responses(*WITH_BODY),
)
def post_events(req: EventsRequest, service: Service) -> Response:
    """Append a user's interactions (their state changes on the next recommendation)."""
    return model_response(service.add_events(req), 202)
