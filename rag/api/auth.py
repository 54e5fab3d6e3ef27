"""Who is asking, settled before a request's body is read, so a caller without a valid token
never gets to send a 200 MB upload first.

The rule: a request carries a bearer token (`python -m rag tokens create NAME`), and the token's
role decides what it may do. One exception keeps a first start simple: a server that listens
on a loopback address only, while no token exists yet, lets requests from this machine in as a
local admin, as the app on 127.0.0.1 does. Creating the first token ends that, in every running
server at its next request. Even then a web page may not use it: a request that names another
host (DNS rebinding) or comes from a page (an Origin header: cross-site requests) is refused.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.accounts import LOCAL, Principal, TokenStore, is_loopback
from rag.api.errors import ApiError

PUBLIC_PATHS = frozenset({"/openapi.json", "/v1/health"})
CHALLENGE = {"WWW-Authenticate": "Bearer"}
HOW_TO_GET_ONE = "an admin creates one with `python -m rag tokens create NAME --role reader`"


def _host_of(header: str) -> str:
    """The host of a Host header: `[::1]:8000` -> `::1`, `localhost:8000` -> `localhost`."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class Authentication:
    """ASGI middleware: puts the caller's Principal in the request state, or answers 401/403
    itself, before any route reads the body."""

    def __init__(self, app: ASGIApp, tokens: TokenStore, loopback_only: bool) -> None:
        self.app, self.tokens, self.loopback_only = app, tokens, loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        try:  # a SQLite read: off the event loop, as a writer may hold the file for a moment
            principal = await run_in_threadpool(self.identify, Headers(scope=scope))
        except ApiError as error:
            await error.response()(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal  # request.state.principal
        await self.app(scope, receive, send)

    def identify(self, headers: Headers) -> Principal:
        scheme, _, secret = headers.get("authorization", "").partition(" ")
        secret = secret.strip()
        if scheme.lower() == "bearer" and secret:
            principal = self.tokens.verify(secret)
            if principal is None:
                raise ApiError(401, "unauthorized", "the bearer token is unknown or revoked",
                               {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return principal
        if self.loopback_only and not self.tokens.exist():
            _check_local(headers)
            return LOCAL
        raise ApiError(401, "unauthorized",
                       f"this API needs `Authorization: Bearer <token>`: {HOW_TO_GET_ONE}",
                       CHALLENGE)


def _check_local(headers: Headers) -> None:
    """Token-free access is for programs on this machine, not for web pages it displays."""
    if not is_loopback(_host_of(headers.get("host", ""))):
        raise ApiError(403, "forbidden", "without a token this API answers only requests "
                       "addressed to 127.0.0.1, ::1 or localhost")
    if "origin" in headers:
        raise ApiError(403, "forbidden",
                       f"a web page may not use this API without a token: {HOW_TO_GET_ONE}")


# Documents the bearer scheme in the OpenAPI spec; Authentication has already checked it.
_bearer = HTTPBearer(auto_error=False, description="A token from `python -m rag tokens create`")


def caller(request: Request,
           _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    return request.state.principal


def admin(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "this needs an admin token")
    return principal


Caller = Annotated[Principal, Depends(caller)]
Admin = Annotated[Principal, Depends(admin)]
