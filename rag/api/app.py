"""The API's application: routes, the door in front of them, size limits and the error shape.
`python -m rag serve` runs it with uvicorn; tests run it the same way on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rag.accounts import Accounts
from rag.api import answers, conversations, documents, errors, openai_compat
from rag.api.auth import Authentication
from rag.api.errors import ErrorBody
from rag.api.limits import MB, BodyLimit, json_cap, ui_upload_limit_mb, upload_cap
from rag.pipeline import RAG

MAX_FILES = 100  # per upload request; Starlette's default would be 1,000
ERRORS = {status: {"model": ErrorBody} for status in (401, 403, 404, 413, 422)}


def create_app(engine: RAG, accounts: Accounts, *, loopback_only: bool = False,
               upload_limit_mb: int | None = None) -> FastAPI:
    """`loopback_only`: the server listens on a loopback address only (pass
    `rag.accounts.is_loopback(host)`); only then may requests come without a token, and only
    until the first token exists. The default is the safe one. `upload_limit_mb`: by default
    the app's uploader limit (`server.maxUploadSize`)."""
    limit_mb = upload_limit_mb or ui_upload_limit_mb()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.queue.start()  # resumes uploads an earlier process left queued or half done
        yield

    app = FastAPI(
        title="Chat with your documents", version="1",
        description="Upload documents, ask questions, get answers that cite their sources.",
        docs_url=None, redoc_url=None,  # their pages load scripts from a CDN: no network here
        lifespan=lifespan, responses=ERRORS,
        form_limits={"max_files": MAX_FILES, "max_fields": 10},
    )
    app.state.engine, app.state.accounts = engine, accounts
    app.state.upload_limit = limit_mb * MB
    errors.install(app)
    # The last added runs first: who is asking is known before a body is read.
    app.add_middleware(BodyLimit, default=json_cap(), caps={"/v1/documents": upload_cap(limit_mb)})
    app.add_middleware(Authentication, tokens=accounts.tokens, loopback_only=loopback_only)
    for module in (documents, answers, conversations, openai_compat):
        app.include_router(module.router)

    @app.get("/v1/health", tags=["health"], summary="Whether the server answers (no token)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
