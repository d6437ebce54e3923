"""The routers behind the write key (`serving.security.ApiKey`): one definition of their
prefix, key dependency and shared error statuses, and of a feedback row's `POST`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.types import DecoratedCallable
from pydantic import BaseModel

from serving.errors import KEYED, SERVICE, WITH_BODY, error_responses
from serving.security import ApiKey

__all__ = ["accepted_post", "keyed_router"]


def keyed_router(tag: str, prefix: str = "/v1") -> APIRouter:
    """A router of keyed routes that need the loaded core: every route declares 401/403
    (the key) and 503 (no core)."""
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        dependencies=[ApiKey],
        responses=error_responses(*KEYED, *SERVICE),
    )


def accepted_post(
    router: APIRouter, path: str, model: type[BaseModel]
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """`POST path` answering 202 with `model` once the row is stored for the learner; 404 for
    an unknown decision, 409 for a key reused with another body (feedback and outcomes)."""
    return router.post(
        path,
        status_code=202,
        response_model=model,
        responses=error_responses(*WITH_BODY, 404, 409),
    )
