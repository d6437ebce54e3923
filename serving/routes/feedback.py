"""`POST /v1/feedback` (keyed)."""

from __future__ import annotations

from fastapi import Response

from serving.deps import Service
from serving.responses import model_response
from serving.routes.keyed import accepted_post, keyed_router
from serving.schemas import FeedbackAccepted, FeedbackRequest

router = keyed_router("feedback")


@accepted_post(router, "/feedback", FeedbackAccepted)
def feedback(req: FeedbackRequest, service: Service) -> Response:
    """Store the feedback durably (once per idempotency key) and queue it for the learner."""
    return model_response(service.feedback(req), 202)
