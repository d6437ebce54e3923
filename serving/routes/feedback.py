"""`POST /v1/feedback` (keyed)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.deps import Service
from serving.errors import KEYED, SERVICE, WITH_BODY, error_responses
from serving.responses import model_response
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
def feedback(req: FeedbackRequest, service: Service) -> Response:
    """Store the feedback durably (once per idempotency key) and queue it for the learner."""
    return model_response(service.feedback(req), 202)
