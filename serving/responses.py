"""`model_response`: a route's pydantic answer, serialised once where the route runs.

A plain `def` route returning a model makes FastAPI validate it again against the route's
`response_model` (in a second thread-pool hop) and serialise it on the event loop. The
service already builds the answer from the response models, so the hot routes serialise it
in their worker thread and return the bytes; `response_model` stays on the decorator and
documents the body in the OpenAPI schema.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

__all__ = ["model_response"]


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """`model` as an `application/json` answer (the decorator's status code does not apply to
    a returned `Response`: pass it here)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
