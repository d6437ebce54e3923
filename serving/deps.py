"""FastAPI dependencies: the service built in the lifespan, as `Annotated` aliases.

Dependencies that neither block nor compute are `async def`: FastAPI runs a plain `def`
dependency in its thread pool, one thread hop (two context switches) per request each."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.errors import NotReadyError
from serving.recommend_service import RecommendService


async def get_service(request: Request) -> RecommendService:
    """The app's `RecommendService`; 503 while the core is not loaded."""
    service: RecommendService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise NotReadyError("the recommender core is not loaded")
    return service


Service = Annotated[RecommendService, Depends(get_service)]
"""Inject the service into a route."""
