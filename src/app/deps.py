"""Typed dependencies of the routes: the store, the settings, the metrics, the token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import NotAuthenticated
from app.metrics import Metrics
from app.settings import Settings
from app.store import Store

_bearer = HTTPBearer(auto_error=False, description="one of the tokens in API_TOKENS")


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def token_matches(presented: str, tokens: tuple[str, ...]) -> bool:
    """Compare against every configured token in constant time, without stopping at a match."""
    given = presented.encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given, token.encode())
    return matched


async def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """When API tokens are configured, the request must carry one as a bearer token."""
    tokens = settings.bearer_tokens()
    if not tokens:
        return
    if credentials is None:
        raise NotAuthenticated("missing bearer token: send Authorization: Bearer <token>")
    if not token_matches(credentials.credentials, tokens):
        raise NotAuthenticated("invalid bearer token")
