"""One shape for every error body, the error responses each operation documents, and 405s that name every method
a path allows."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match

WHY = {
    400: "The body is not readable as JSON or as a form",
    401: "No API key, or an unknown or revoked one",
    403: "The key is not an admin key",
    404: "No such job (or another tenant's)",
    409: "The job is not in a state that allows this",
    413: "A body, an upload or the key's storage quota is too large",
    422: "The request names a field with a bad value (`detail` lists them, or says which in words)",
    429: "Too many active jobs or requests for the key; `Retry-After` says when to retry",
    503: "Redis or the job queue is unreachable; nothing was changed",
}


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: `detail`, a message naming the field and value, or a list of such items."""

    detail: str | list[dict[str, Any]]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error codes an operation can answer."""
    return {code: {"model": ErrorBody, "description": WHY[code]} for code in codes}


async def with_allow_header(request: Request, error: HTTPException):
    """A 405 whose `Allow` lists the methods of every route on the path, not only the first one matched."""
    if error.status_code == 405:
        methods = {method for route in request.app.routes if isinstance(route, APIRoute)
                   and route.matches(request.scope)[0] != Match.NONE for method in route.methods}
        error.headers = {"Allow": ", ".join(sorted(methods))}
    return await http_exception_handler(request, error)


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, with_allow_header)
