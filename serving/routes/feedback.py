"""`POST /v1/feedback` (keyed)."""

from __future__ import annotations

from serving.deps import Service
from serving.routes.keyed import accepted_post, keyed_router
from serving.schemas import FeedbackAccepted, FeedbackRequest

router = keyed_router("feedback")


@accepted_post(router, "/feedback", FeedbackAccepted)
def feedback(req: FeedbackRequest, service: Service) -> FeedbackAccepted:
    """Store the feedback durably (once per idempotency key) and queue it for the learner."""
    return service.feedback(req)
