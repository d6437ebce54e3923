"""`POST /v1/feedback` (keyed)."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import Service
from serving.schemas import ErrorOut, FeedbackAccepted, FeedbackRequest
from serving.security import ApiKey

router = APIRouter(prefix="/v1", tags=["feedback"], dependencies=[ApiKey])


@router.post(
    "/feedback",
    status_code=202,
    response_model=FeedbackAccepted,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
def feedback(req: FeedbackRequest, service: Service) -> FeedbackAccepted:
    """Store the feedback durably (once per idempotency key) and queue it for the learner."""
    return service.feedback(req)
