"""`POST /v1/recommend`."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from serving.deps import Service
from serving.schemas import ErrorOut, RecommendRequest, RecommendResponse
from serving.security import recommend_auth

router = APIRouter(prefix="/v1", tags=["recommend"])


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    dependencies=[Depends(recommend_auth)],
    responses={422: {"model": ErrorOut}},
)
def recommend(req: RecommendRequest, service: Service) -> RecommendResponse:
    """Recommend `n` items; unknown users get a cold-start answer. Open unless configured."""
    return service.recommend(req)
