"""`POST /v1/outcomes` (keyed): close a decision with what happened to every shown item."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.deps import Service
from serving.errors import KEYED, SERVICE, WITH_BODY, error_responses
from serving.responses import model_response
from serving.schemas import OutcomeAccepted, OutcomeRequest
from serving.security import ApiKey

router = APIRouter(
    prefix="/v1",
    tags=["feedback"],
    dependencies=[ApiKey],
    responses=error_responses(*KEYED, *SERVICE),
)


@router.post(
    "/outcomes",
    status_code=202,
    response_model=OutcomeAccepted,
    responses=error_responses(*WITH_BODY, 404, 409),
)
def outcome(req: OutcomeRequest, service: Service) -> Response:
    """Every item the decision showed, once: acted ones with their action, the others as
    zero-reward evidence; stored once per decision and queued for the learner."""
    return model_response(service.outcome(req), 202)
