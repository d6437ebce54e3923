"""`DELETE /v1/users/{id}` (keyed) and `POST /v1/admin/reload` (keyed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from serving.deps import Service
from serving.errors import WITH_PATH_ID, error_responses
from serving.routes.keyed import keyed_router
from serving.schemas import ErasureReport, Health, Id

router = keyed_router("admin")


@router.delete(
    "/users/{user_id}", response_model=ErasureReport, responses=error_responses(*WITH_PATH_ID)
)
def erase_user(user_id: Annotated[Id, Path()], service: Service) -> ErasureReport:
    """Erase a user's events, decisions, feedback and cases."""
    return service.erase_user(user_id)


@router.post("/admin/reload", response_model=Health)
def reload(service: Service) -> Health:
    """Checkpoint pending learning and reload the core without stopping the server."""
    version = service.reload()
    return Health(status="reloaded", model_version=version, bank_size=service.core.bank_size())
