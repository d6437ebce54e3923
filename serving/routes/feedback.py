"""`POST /v1/feedback` (keyed)."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import Service
from serving.errors import KEYED, SERVICE, WITH_BODY, error_responses
from serving.schemas import FeedbackAccepted, FeedbackRequest
from serving.security import ApiKey

router = APIRouter(
    prefix="/v1",
    tags=["feedback"],
    dependencies=[ApiKey],
    responses=error_responses(*KEYED, *SERVICE),
)


@router.post(
    "/feedback",
    status_code=202,
    response_model=FeedbackAccepted,
    responses=error_responses(*WITH_BODY, 404, 409),
)
def feedback(req: FeedbackRequest, service: Service) -> FeedbackAccepted:
    """Store the feedback durably (once per idempotency key) and queue it for the learner."""
    return service.feedback(req)
