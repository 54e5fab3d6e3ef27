"""The engine and the accounts a route works with: one of each per app, held in its state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rag.accounts import Accounts
from rag.pipeline import RAG


def _engine(request: Request) -> RAG:
    return request.app.state.engine


def _accounts(request: Request) -> Accounts:
    return request.app.state.accounts


Engine = Annotated[RAG, Depends(_engine)]
AccountsDep = Annotated[Accounts, Depends(_accounts)]


def _upload_limit(request: Request) -> int:
    return request.app.state.upload_limit


UploadLimit = Annotated[int, Depends(_upload_limit)]  # bytes per file, as the app's uploader
