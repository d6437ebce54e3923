"""Bearer API keys: missing key -> 401, wrong key -> 403, constant-time compare.

Two keys. The write key (`MEMENTO_API_KEY`) guards feedback, events and every memory/admin
route. The read key (`MEMENTO_READ_API_KEY`) guards `POST /v1/recommend`, which logs a
decision per call; the write key is accepted there too. `MEMENTO_PUBLIC_RECOMMEND=true` opens
the recommend route: `read_access` then adds no key dependency, so the OpenAPI document shows
the route as open.

The key dependencies are `async def` (a constant-time compare of a few bytes): a plain `def`
dependency costs a thread-pool hop per request.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from serving.settings import ServingSettings

_write_bearer = HTTPBearer(
    auto_error=False, scheme_name="WriteKey", description="MEMENTO_API_KEY as a bearer token"
)
_read_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ReadKey",
    description="MEMENTO_READ_API_KEY (or MEMENTO_API_KEY) as a bearer token",
)


def _settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


def check_key(accepted: Sequence[SecretStr], creds: HTTPAuthorizationCredentials | None) -> None:
    """Raise 401 without a bearer token and 403 when it matches none of the accepted keys."""
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise HTTPException(
            status_code=401,
            detail="missing bearer API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = creds.credentials.encode("utf-8", "replace")
    matches = [hmac.compare_digest(given, k.get_secret_value().encode()) for k in accepted]
    if not any(matches):  # every key compared: the timing does not tell which one is close
        raise HTTPException(status_code=403, detail="invalid API key")


async def require_api_key(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_write_bearer)],
) -> None:
    """Dependency of the write routes: the write key."""
    check_key([_settings(request).api_key], creds)


async def require_read_key(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_read_bearer)],
) -> None:
    """Dependency of the read route: the read key or the write key."""
    settings = _settings(request)
    check_key([settings.read_api_key, settings.api_key], creds)


ApiKey = Depends(require_api_key)
"""Use as `dependencies=[ApiKey]` on write routes."""
ReadKey = Depends(require_read_key)
"""The read-key dependency (see `read_access`)."""


def read_access(settings: ServingSettings) -> list[DependsParam]:
    """Dependencies of the read route: the read key, none in public mode."""
    return [] if settings.public_recommend else [ReadKey]
