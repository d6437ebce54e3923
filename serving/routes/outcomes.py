"""`POST /v1/outcomes` (keyed): close a decision with what happened to every shown item."""

from __future__ import annotations

from fastapi import Response

from serving.deps import Service
from serving.responses import model_response
from serving.routes.keyed import accepted_post, keyed_router
from serving.schemas import OutcomeAccepted, OutcomeRequest

router = keyed_router("feedback")


@accepted_post(router, "/outcomes", OutcomeAccepted)
def outcome(req: OutcomeRequest, service: Service) -> Response:
    """Every item the decision showed, once: acted ones with their action, the others as
    zero-reward evidence; stored once per decision and queued for the learner."""
    return model_response(service.outcome(req), 202)
