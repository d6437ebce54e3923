"""`POST /v1/events` (keyed)."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import Service
from serving.schemas import ErrorOut, EventsAccepted, EventsRequest
from serving.security import ApiKey

router = APIRouter(prefix="/v1", tags=["events"], dependencies=[ApiKey])


@router.post(
    "/events", status_code=202, response_model=EventsAccepted, responses={422: {"model": ErrorOut}}
)
def post_events(req: EventsRequest, service: Service) -> EventsAccepted:
    """Append a user's interactions (their state changes on the next recommendation)."""
    return service.add_events(req)
