"""Memory inspection and editing: `/v1/cases` (keyed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response

from serving.deps import Service
from serving.errors import WITH_BODY, WITH_PARAMS, WITH_PATH_ID, error_responses
from serving.routes.keyed import keyed_router
from serving.schemas import CaseIn, CaseList, CaseOut, Id

router = keyed_router("memory", prefix="/v1/cases")


@router.get("", response_model=CaseList, responses=error_responses(*WITH_PARAMS))
def list_cases(user_id: Annotated[Id, Query()], service: Service) -> CaseList:
    """Live cases of one user."""
    return service.list_cases(user_id)


@router.post("", status_code=201, response_model=CaseOut, responses=error_responses(*WITH_BODY))
def write_case(req: CaseIn, service: Service) -> CaseOut:
    """Write a case by hand, keyed on the given history/context."""
    return service.write_case(req)


@router.get("/{case_id}", response_model=CaseOut, responses=error_responses(*WITH_PATH_ID))
def get_case(case_id: Annotated[Id, Path()], service: Service) -> CaseOut:
    """One live case with the core's current value."""
    return service.get_case(case_id)


@router.delete(
    "/{case_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(*WITH_PATH_ID),
)
def delete_case(case_id: Annotated[Id, Path()], service: Service) -> Response:
    """Remove a case from the bank (soft-deleted in the log)."""
    service.delete_case(case_id)
    return Response(status_code=204)
