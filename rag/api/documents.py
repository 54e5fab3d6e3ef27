"""Documents and their ingest jobs: an upload is kept and queued as on the Documents page, and
indexed by the engine's worker whatever the client does next."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile

from rag.api.auth import Admin, Caller
from rag.api.deps import Engine, UploadLimit
from rag.api.errors import ApiError
from rag.api.schemas import (
    DocumentOut,
    JobOut,
    Rejection,
    UploadedFile,
    UploadResult,
    document_out,
    job_out,
)
from rag.loaders import PDF_EXTENSIONS, SUPPORTED_EXTENSIONS
from rag.loaders.archive import LEGACY_EXTENSIONS, legacy_cause
from rag.pipeline import RAG

router = APIRouter(prefix="/v1", tags=["documents"])
MAX_NAME_LENGTH = 255
DOCUMENT_ID = re.compile(r"[0-9a-f]{64}")  # SHA-256 hex: nothing else reaches the engine
# The status of an upload none of whose files was accepted, by the cause they share.
REJECTION_STATUS = {"bad_file_name": 400, "unsupported_type": 415, "empty_file": 400,
                    "too_large": 413, "not_kept": 507}


def clean_name(raw: str) -> str:
    """The file's own name: no folder (`../../x.md` is `x.md`), no control character. Only
    shown: the upload is kept under its hash, never under a name a client chose."""
    name = re.split(r"[\\/]", raw)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return "" if name in ("", ".", "..") else name[:MAX_NAME_LENGTH]


def _accept(engine: RAG, upload: UploadFile, limit: int, password: str | None) -> UploadedFile:
    sent = upload.filename or ""
    name = clean_name(sent)

    def rejected(code: str, cause: str) -> UploadedFile:
        return UploadedFile(file=sent, error=Rejection(code=code, message=f"{name or sent}: {cause}"))

    if not name:
        return rejected("bad_file_name", "the file has no usable name")
    ext = PurePath(name).suffix.lower()
    if ext in LEGACY_EXTENSIONS:
        return rejected("unsupported_type", legacy_cause(ext))
    if ext not in SUPPORTED_EXTENSIONS:
        return rejected("unsupported_type", f"unsupported file type '{ext or '(none)'}' "
                                            f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        return rejected("too_large", f"over the {limit // (1024 * 1024)} MB limit of a file")
    if not data:
        return rejected("empty_file", "empty file")
    try:
        queued = engine.queue.submit(name, data, password if ext in PDF_EXTENSIONS else None)
    except OSError as error:  # the data dir is full or read-only
        return rejected("not_kept", f"not queued, it could not be kept ({error.strerror})")
    return UploadedFile(file=sent, job=job_out(queued))


@router.post("/documents", status_code=202, response_model=UploadResult,
             summary="Upload files: each is kept and queued for indexing")
def upload(
    engine: Engine, _: Admin, limit: UploadLimit,
    files: Annotated[list[UploadFile], File(description="one or many files")],
    password: Annotated[str | None, Form(description=(
        "opens the encrypted PDFs among the files; kept in memory for their jobs only"))] = None,
) -> UploadResult:
    """202 with a job per accepted file (follow it at /v1/jobs/{id}) and the cause of each
    rejected one; when none is accepted, the error says why for each."""
    results = [_accept(engine, file, limit, password) for file in files]
    rejections = [result.error for result in results if result.error is not None]
    if len(rejections) == len(results):
        codes = {rejection.code for rejection in rejections}
        code = codes.pop() if len(codes) == 1 else "bad_request"
        raise ApiError(REJECTION_STATUS.get(code, 400), code,
                       "; ".join(rejection.message for rejection in rejections))
    return UploadResult(files=results)


@router.get("/documents", response_model=list[DocumentOut], summary="The indexed documents")
def documents(engine: Engine, _: Caller) -> list[DocumentOut]:
    return [document_out(info) for info in engine.documents()]


def _unknown_document() -> ApiError:
    return ApiError(404, "not_found", "no document with this id")


@router.get("/documents/{document_id}", response_model=DocumentOut)
def document(document_id: str, engine: Engine, _: Caller) -> DocumentOut:
    for info in engine.documents():
        if info.doc_id == document_id:
            return document_out(info)
    raise _unknown_document()


@router.delete("/documents/{document_id}", status_code=204, response_class=Response,
               summary="Remove a document, its passages and its kept original")
def delete_document(document_id: str, engine: Engine, _: Admin) -> Response:
    if not DOCUMENT_ID.fullmatch(document_id) or not engine.delete(document_id):
        raise _unknown_document()
    return Response(status_code=204)


@router.get("/jobs", response_model=list[JobOut], summary="Ingest jobs, unfinished first")
def jobs(engine: Engine, _: Admin) -> list[JobOut]:
    return [job_out(found) for found in engine.queue.jobs.jobs()]


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(job_id: int, engine: Engine, _: Admin) -> JobOut:
    # beyond SQLite's 64-bit integers the lookup raises OverflowError: no such job either
    found = engine.queue.jobs.get(job_id) if 0 < job_id < 2**63 else None
    if found is None:
        raise ApiError(404, "not_found", "no job with this id")
    return job_out(found)
