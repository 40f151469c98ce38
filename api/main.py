"""The FastAPI app. Imports no TensorFlow or Keras: jobs are queued to the workers by task name."""

from __future__ import annotations

import contextlib
import logging
import math
import re
import reprlib
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors, metrics
from api.deps import bearer, caller, verified
from api.errors import error_responses
from api.keys import ApiKey, KeyStore
from api.limits import BodySizeLimit, JsonNestingLimit, RateLimiter
from api.metrics import RequestMetrics, StoreCollector
from api.routes import (
    comparisons,
    curves,
    dataset_uploads,
    datasets,
    docs,
    events,
    health,
    jobs,
    models,
    schedules,
)
from api.settings import ApiSettings
from clr.config import MAX_JSON_DEPTH
from worker.celery_app import make_celery
from worker.store import JobStore

MULTIPART_SLACK_BYTES = 2**16  # an upload's form framing around its file
# Requests whose body may be as large as an upload
UPLOADS = re.compile(r"^/(datasets|models|datasets/uploads/[0-9a-f]{32}/arrays/[a-z_]+)$")


KEYED_RESPONSES = error_responses(400, 401, 413, 422, 429, 503)
log = logging.getLogger(__name__)
# Nothing from another origin, no plugins, no framing; the docs pages also run Swagger UI's inline script, ReDoc's
# inline styles and search worker (a blob), and the data: images of Swagger UI's stylesheet.
OWN_ONLY = "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
DOCS_CSP = (f"{OWN_ONLY}; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; worker-src 'self' blob:")
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """ASGI middleware: every answer forbids browsers to sniff its type or frame it, and says what a page may load
    (`Content-Security-Policy`: the service's own files only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        policy = DOCS_CSP if scope["path"].endswith(DOCS_PATHS) else OWN_ONLY

        async def hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update({"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                                "Content-Security-Policy": policy})
            await send(message)

        await self.app(scope, receive, hardened)


def _encodable(text: str) -> str:
    """`text` as UTF-8 can hold it: a lone surrogate (JSON can escape one) becomes its backslash escape."""
    return text.encode(errors="backslashreplace").decode()


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Echoed input as JSON can hold it: NaN and inf become strings, lone surrogates escapes, and what nests deeper
    than `MAX_JSON_DEPTH` its short `repr` (the handler never recurses deeper)."""
    if depth > MAX_JSON_DEPTH:
        return _encodable(reprlib.repr(value))
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _encodable(value)
    if isinstance(value, dict):
        return {_encodable(str(key)): _json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item, depth + 1) for item in value]
    return value if value is None or isinstance(value, int | float | bool) else _encodable(repr(value))


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 naming each bad field and its value."""
    details = [{"loc": _json_safe(list(item["loc"])), "msg": _encodable(item["msg"]), "type": item["type"],
                "input": _json_safe(item.get("input"))} for item in error.errors()]
    return JSONResponse(status_code=422, content={"detail": details})


async def store_unreachable(request: Request, error: redis.ConnectionError | redis.TimeoutError) -> JSONResponse:
    """503 while Redis is away (restarting, say): nothing was changed, retry shortly. The answer names no host: the
    caller may not have been authenticated yet."""
    log.warning("Redis is unreachable: %s", error)
    return JSONResponse(status_code=503, content={"detail": "The job store (Redis) is unreachable; retry in a few "
                                                            "seconds"})


def carries_body(scope: Scope) -> bool:
    """Whether the request has a body: a `Content-Length` other than 0, or a `Transfer-Encoding`."""
    headers = dict(scope["headers"])
    return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers


class KeyBeforeBody:
    """ASGI middleware: a request with a body and no valid key is answered 401 before any of the body is read (every
    route that takes a body needs a key), so no anonymous client makes the service read or spool an upload. The
    routes check the key again, and its rate."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not carries_body(scope):
            return await self.app(scope, receive, send)
        request = Request(scope)
        try:
            await run_in_threadpool(verified, request.app.state.keys, await bearer(request))
        except HTTPException as error:
            answer = JSONResponse({"detail": error.detail}, error.status_code, error.headers)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            answer = await store_unreachable(request, error)
        else:
            return await self.app(scope, receive, send)
        await answer(scope, receive, send)


# A hung Redis (stopped, its disk stalled) answers nothing: a request gives up after one timeout, with its 503, not
# after a timeout per retry; a restarting one refuses connections, which are retried briefly.
REDIS_TIMEOUT_S, REDIS_CONNECT_TIMEOUT_S = 5, 2
REDIS_RETRY = Retry(ExponentialBackoff(cap=0.5), 2, supported_errors=(redis.ConnectionError,))


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The app, with its store and Celery client made from `settings`."""
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=REDIS_TIMEOUT_S,
                                      socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S, retry=REDIS_RETRY)
        app.state.store = JobStore(client)
        app.state.keys = KeyStore(client)
        if settings.admin_key and not app.state.keys.list():
            with contextlib.suppress(ValueError):  # another replica registered it first
                app.state.keys.create(ApiKey("admin", admin=True), settings.admin_key)
        app.state.rate_limiter = RateLimiter(client)
        app.state.celery = make_celery(settings)
        app.state.workers = health.WorkerRoster(app.state.celery)
        registry.register(StoreCollector(app.state.store))
        yield
        app.state.store.close()

    app = FastAPI(
        title="clr-service",
        summary="Learning-rate range tests and Cyclical Learning Rate training (Smith, WACV 2017) on Keras workers",
        description="The [dashboard](/) shows jobs live. Every operation here needs an API key (`Authorize`).",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by `api.routes.docs` from the package, not from a CDN
        redoc_url=None,
    )
    errors.install(app)
    app.add_exception_handler(RequestValidationError, validation_error)
    for unreachable in (redis.ConnectionError, redis.TimeoutError):
        app.add_exception_handler(unreachable, store_unreachable)
    for module in (jobs, comparisons, curves, events, schedules, datasets, dataset_uploads, models):
        app.include_router(module.router, dependencies=[Depends(caller)], responses=KEYED_RESPONSES)
    for module in (health, docs):  # open: whether the service is up, and how to call it
        app.include_router(module.router)
    app.state.metrics_registry = registry = CollectorRegistry()
    app.include_router(metrics.router)
    app.add_middleware(RequestMetrics, registry=registry)
    app.add_middleware(JsonNestingLimit)
    app.add_middleware(BodySizeLimit, limit_for=lambda scope: (
        settings.max_upload_bytes + MULTIPART_SLACK_BYTES if UPLOADS.match(scope["path"]) else settings.max_body_bytes))
    app.add_middleware(KeyBeforeBody)  # before the limits above or a route read any of a body
    app.add_middleware(SecurityHeaders)  # outermost: the answers of the limits above carry them too
    app.mount("/static", StaticFiles(directory=docs.STATIC_DIR), name="static")
    return app


app = create_app()
