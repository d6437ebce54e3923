"""`GET /healthz`, `GET /readyz`, `GET /metrics` (open)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request) -> Response:
    """Core loaded and learner thread alive."""
    service = request.app.state.service
    if service is None or not service.worker.alive():
        return JSONResponse(Health(status="not_ready").model_dump(), status_code=503)
    body = Health(
        status="ready",
        model_version=service.core.model_version,
        bank_size=service.core.bank_size(),
        queue_depth=service.worker.depth(),
    )
    return JSONResponse(body.model_dump())


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app's registry."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
