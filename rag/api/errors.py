"""One shape for every error, `{"error": {"code", "message"}}`, and never a stack trace: a
client branches on the code, a person reads the message (which holds no secret or input)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from rag.generation import FAILURE_PREFIX

# The code of an HTTP error the API did not raise itself (an unknown path, a wrong method, a
# malformed multipart body), by status.
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 413: "too_large", 415: "unsupported_type",
         422: "invalid_request", 503: "unavailable"}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """What every 4xx and 5xx response carries (OpenAI's clients read `error.message` too)."""

    error: ErrorDetail


class ApiError(Exception):
    """Raised anywhere below a route: becomes its JSON response."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.headers)


def error_response(status: int, code: str, message: str,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(request: Request, error: ApiError) -> JSONResponse:
    return error.response()


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    message = error.detail if isinstance(error.detail, str) else "the request failed"
    return error_response(error.status_code, CODES.get(error.status_code, "error"), message,
                          error.headers)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """Where and what, never the value sent: it may be a password or a whole document."""
    problems = []
    for issue in error.errors():
        location = [str(part) for part in issue["loc"]]
        if location[:1] in (["body"], ["query"], ["path"], ["header"]):
            location = location[1:] or location
        problems.append(f"{'.'.join(location)}: {issue['msg']}")
    return error_response(422, "invalid_request", "; ".join(problems) or "invalid request")


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    """The server's log has the traceback (the server logs what this re-raises); the client
    only learns that it failed."""
    return error_response(500, "internal_error",
                          "the server failed to answer this request; its log has the cause")


def llm_failure(text: str) -> tuple[str, ApiError | None]:
    """An answer's text without the failure line the engine ends it with when the language model
    failed (unreachable, timed out), and that failure as a 503, or None."""
    answer, found, reason = text.partition(FAILURE_PREFIX)
    if not found:
        return text, None
    return answer, ApiError(503, "llm_unavailable",
                            f"the language model failed: {reason.removesuffix(']')}")
