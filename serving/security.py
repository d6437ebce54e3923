"""Bearer API-key dependency: missing key -> 401, wrong key -> 403, constant-time compare.

Required on feedback, events and every memory/admin route. `POST /v1/recommend` is open by
default (read-only apart from logging the decision) and keyed when
`MEMENTO_RECOMMEND_REQUIRES_KEY=true`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.settings import ServingSettings

_bearer = HTTPBearer(auto_error=False, description="MEMENTO_API_KEY as a bearer token")


def _settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


def check_key(settings: ServingSettings, creds: HTTPAuthorizationCredentials | None) -> None:
    """Raise 401 without a bearer token and 403 with a wrong one."""
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise HTTPException(
            status_code=401,
            detail="missing bearer API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.api_key.get_secret_value().encode()
    if not hmac.compare_digest(creds.credentials.encode("utf-8", "replace"), expected):
        raise HTTPException(status_code=403, detail="invalid API key")


def require_api_key(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Dependency for keyed routes."""
    check_key(_settings(request), creds)


def recommend_auth(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Dependency for recommend: keyed only when `recommend_requires_key` is set."""
    settings = _settings(request)
    if settings.recommend_requires_key:
        check_key(settings, creds)


ApiKey = Depends(require_api_key)
"""Use as `dependencies=[ApiKey]` on keyed routes."""
