"""Is the service able to run jobs?"""

from __future__ import annotations

import asyncio
import logging
import time

from celery import Celery
from fastapi import APIRouter, Request, Response
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from api.deps import StoreDep
from api.errors import error_responses

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)
WORKERS_FRESH_S = 5.0  # a Celery ping waits its whole timeout: its answer is kept this long


class WorkerRoster:
    """The workers that answered the latest ping. A ping older than `WORKERS_FRESH_S` is renewed in the background
    (only the first request waits for one), so `/health` answers without waiting out the ping's timeout."""

    def __init__(self, celery: Celery) -> None:
        self.celery, self.workers, self.pinged_at = celery, None, 0.0
        self._renewal: asyncio.Task | None = None

    async def _ping(self) -> list[str]:
        replies = await run_in_threadpool(self.celery.control.ping, timeout=0.5)
        self.workers, self.pinged_at = sorted(name for reply in replies for name in reply), time.monotonic()
        return self.workers

    async def current(self) -> list[str]:
        if self.workers is None:
            return await self._ping()
        stale = time.monotonic() - self.pinged_at >= WORKERS_FRESH_S
        if stale and (self._renewal is None or self._renewal.done()):
            self._renewal = asyncio.create_task(self._ping())
        return self.workers


@router.get("/health", responses=error_responses(503))
async def health(request: Request, store: StoreDep, response: Response) -> dict[str, object]:
    """Redis reachability (naming no host: anyone may ask), and the workers that answered a ping in the last few
    seconds."""
    try:
        await run_in_threadpool(store.ping)
    except RedisError as error:
        log.warning("Redis is unreachable: %s", error)
        response.status_code = 503
        return {"redis": "unreachable", "workers": []}
    return {"redis": "ok", "workers": await request.app.state.workers.current()}
