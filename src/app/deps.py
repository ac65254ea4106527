"""Typed dependencies of the routes: the store, the settings, the metrics, the token check."""

from __future__ import annotations

import hmac
from types import UnionType
from typing import Annotated, Union, get_args, get_origin

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import NotAuthenticated
from app.metrics import Metrics
from app.query.plan import check_query
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


def _is_list(annotation: object) -> bool:
    if get_origin(annotation) is list:
        return True
    return get_origin(annotation) in (Union, UnionType) and any(
        _is_list(a) for a in get_args(annotation)
    )


def _query_names(dependant: Dependant) -> tuple[set[str], set[str]]:
    """The query parameters a route declares (its own and its dependencies'), and which of
    them are lists (repeatable)."""
    names: set[str] = set()
    lists: set[str] = set()
    for param in dependant.query_params:
        names.add(param.alias)
        if _is_list(param.field_info.annotation):
            lists.add(param.alias)
    for sub in dependant.dependencies:
        more, more_lists = _query_names(sub)
        names |= more
        lists |= more_lists
    return names, lists


# Each route's declared query parameters, found once and kept on the route (its declaration
# does not change; a route compares by its path, so it cannot be a dictionary's key).
_DECLARED = "_gridts_query_names"


async def strict_query(request: Request) -> None:
    """Refuse query parameters the route does not declare, empty ones and repeated ones
    (422 naming the parameter), with the route's own declaration as the one list."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared: tuple[set[str], set[str]] | None = getattr(route, _DECLARED, None)
    if declared is None:
        declared = _query_names(route.dependant)
        setattr(route, _DECLARED, declared)
    names, lists = declared
    check_query(request.query_params.multi_items(), names, lists)
