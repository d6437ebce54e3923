"""`GET /healthz`, `GET /readyz`, `GET /metrics` (open)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from serving.recommend_service import RecommendService
from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready; `message` says what to run"}},
)
def readyz(request: Request) -> Response:
    """Core loaded, learner thread alive and the core ready to recommend; else 503 and why."""
    service: RecommendService | None = request.app.state.service
    reason = "the recommender core is not loaded" if service is None else service.not_ready_reason()
    if service is None or reason is not None:
        body = Health(status="not_ready", message=reason)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    body = Health(
        status="ready",
        model_version=service.core.model_version,
        bank_size=service.core.bank_size(),
        queue_depth=service.worker.depth(),
    )
    return JSONResponse(body.model_dump(exclude_none=True))


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app's registry."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
