"""`POST /v1/recommend` (read key, unless public mode: `create_app` adds the key)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.deps import Service
from serving.errors import SERVICE, WITH_BODY, error_responses
from serving.responses import model_response
from serving.schemas import RecommendRequest, RecommendResponse

router = APIRouter(prefix="/v1", tags=["recommend"])

_LINKS = {
    "FeedbackOnFirstItem": {
        "operationRef": "#/paths/~1v1~1feedback/post",
        "requestBody": {
            "decision_id": "$response.body#/decision_id",
            "item_id": "$response.body#/items/0/item_id",
        },
        "description": "Feedback on the first item of this decision.",
    }
}
"""OpenAPI links: how a client (or a stateful fuzzer) goes from a decision to its feedback."""


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    responses={200: {"links": _LINKS}, **error_responses(*WITH_BODY, *SERVICE)},
)
def recommend(req: RecommendRequest, service: Service) -> Response:
    """Recommend `n` items; unknown users get a cold-start answer; 503 until ready."""
    return model_response(service.recommend(req))
