"""How big a request may be: an upload as big as the app's uploader takes (Streamlit's
`server.maxUploadSize`, read the way Streamlit reads it), anything else a few MB. Too big is
answered in the API's error shape, before the body is read when its length is declared."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.api.errors import error_response

MB = 1024 * 1024  # Streamlit's megabyte
STREAMLIT_DEFAULT_MB = 200
MULTIPART_ALLOWANCE = MB  # headers and boundaries beside a file of the full size, as Streamlit
JSON_LIMIT = 4 * MB  # a question with a long chat history fits many times over


def ui_upload_limit_mb(cwd: Path | None = None) -> int:
    """The uploader's limit as Streamlit resolves it: STREAMLIT_SERVER_MAX_UPLOAD_SIZE, else
    ./.streamlit/config.toml, else ~/.streamlit/config.toml, else Streamlit's default."""
    if value := os.environ.get("STREAMLIT_SERVER_MAX_UPLOAD_SIZE"):
        return int(value)
    for folder in (cwd or Path.cwd(), Path.home()):
        try:
            config = tomllib.loads((folder / ".streamlit" / "config.toml").read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        value = config.get("server", {}).get("maxUploadSize")
        if isinstance(value, int):
            return value
    return STREAMLIT_DEFAULT_MB


@dataclass(frozen=True)
class Cap:
    size: int  # bytes
    message: str  # the 413's message


def json_cap() -> Cap:
    return Cap(JSON_LIMIT, f"the request body is over {JSON_LIMIT // MB} MB")


def upload_cap(limit_mb: int) -> Cap:
    """A request may carry one file of the uploader's limit, or several that add up to it."""
    return Cap(limit_mb * MB + MULTIPART_ALLOWANCE,
               f"the upload is over {limit_mb} MB, the limit of a file in the app and of a "
               "request here: send big files one per request")


class BodyLimit:
    """ASGI middleware: the cap of a path in `caps`, else `default`."""

    def __init__(self, app: ASGIApp, default: Cap, caps: Mapping[str, Cap]) -> None:
        self.app, self.default, self.caps = app, default, caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.caps.get(scope["path"], self.default)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > cap.size:
            await error_response(413, "too_large", cap.message)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > cap.size:  # a body sent without its length: stop reading it
                raise HTTPException(413, cap.message)  # FastAPI lets it through body parsing
            return event

        await self.app(scope, counted, send)
