"""The FastAPI app. Imports no TensorFlow or Keras: jobs are queued to the workers by task name."""

from __future__ import annotations

import contextlib
import math
import re
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from api import errors, metrics
from api.deps import caller
from api.errors import error_responses
from api.keys import ApiKey, KeyStore
from api.limits import BodySizeLimit, JsonNestingLimit, RateLimiter
from api.metrics import RequestMetrics, StoreCollector
from api.routes import curves, dataset_uploads, datasets, docs, events, health, jobs, models, schedules
from worker.celery_app import make_celery
from worker.settings import Settings
from worker.store import JobStore

MULTIPART_SLACK_BYTES = 2**16  # an upload's form framing around its file
# Requests whose body may be as large as an upload
UPLOADS = re.compile(r"^/(datasets|models|datasets/uploads/[0-9a-f]{32}/arrays/[a-z_]+)$")


KEYED_RESPONSES = error_responses(400, 401, 413, 422, 429, 503)


def _json_safe(value: Any) -> Any:
    """Echoed input as JSON can hold it: NaN and inf become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value if value is None or isinstance(value, str | int | float | bool) else repr(value)


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 naming each bad field and its value."""
    details = [
        {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"], "input": _json_safe(item.get("input"))}
        for item in error.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": details})


async def store_unreachable(request: Request, error: redis.ConnectionError | redis.TimeoutError) -> JSONResponse:
    """503 while Redis is away (restarting, say): nothing was changed, retry shortly."""
    return JSONResponse(status_code=503, content={"detail": f"The job store (Redis) is unreachable: {error}; "
                                                            "retry in a few seconds"})


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, with its store and Celery client made from `settings`."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=10,
                                      retry=Retry(ExponentialBackoff(cap=0.5), 2))
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
        app.state.store.redis.close()

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
    for module in (jobs, curves, events, schedules, datasets, dataset_uploads, models):
        app.include_router(module.router, dependencies=[Depends(caller)], responses=KEYED_RESPONSES)
    for module in (health, docs):  # open: whether the service is up, and how to call it
        app.include_router(module.router)
    app.state.metrics_registry = registry = CollectorRegistry()
    app.include_router(metrics.router)
    app.add_middleware(RequestMetrics, registry=registry)
    app.add_middleware(JsonNestingLimit)
    app.add_middleware(BodySizeLimit, limit_for=lambda scope: (
        settings.max_upload_bytes + MULTIPART_SLACK_BYTES if UPLOADS.match(scope["path"]) else settings.max_body_bytes))
    app.mount("/static", StaticFiles(directory=docs.STATIC_DIR), name="static")
    return app


app = create_app()
