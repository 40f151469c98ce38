"""`GET /metrics` in Prometheus's text format: the jobs as the store holds them (so every API replica reports the
same workers' figures) and this API process's requests."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import CallerDep
from api.errors import error_responses
from worker.store import JobStore

router = APIRouter(tags=["health"])
DURATION_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
QUEUE = "celery"  # the Celery queue jobs wait in (a Redis list)


class StoreCollector(Collector):
    """Job figures read from Redis at scrape time."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self):
        heads = self.store.job_heads()
        jobs = GaugeMetricFamily("clr_jobs", "Jobs by kind and state", labels=["kind", "state"])
        counts: dict[tuple[str, str], int] = {}
        for head in heads:
            counts[head["kind"], head["state"]] = counts.get((head["kind"], head["state"]), 0) + 1
        for (kind, state), count in sorted(counts.items()):
            jobs.add_metric([kind, state], count)
        yield jobs
        yield GaugeMetricFamily("clr_queue_depth", "Job messages waiting in the queue",
                                value=self.store.redis.llen(QUEUE))
        running = [head for head in heads if head["state"] == "running"]
        yield GaugeMetricFamily("clr_running_jobs", "Jobs running now", value=len(running))
        now = time.time()
        yield GaugeMetricFamily("clr_training_iterations_per_second", "Iterations per second of the running jobs",
                                value=sum(head["iteration"] / max(now - head["started_at"], 1e-9)
                                          for head in running if head["started_at"]))
        durations = [head["finished_at"] - head["started_at"] for head in heads
                     if head["finished_at"] and head["started_at"]]
        buckets = [[str(bound), sum(duration <= bound for duration in durations)] for bound in DURATION_BUCKETS]
        yield HistogramMetricFamily("clr_job_duration_seconds", "Seconds from start to end of finished jobs",
                                    buckets=[*buckets, ["+Inf", len(durations)]], sum_value=sum(durations))


class RequestMetrics:
    """ASGI middleware counting this process's requests and their latency by route template and status."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter("clr_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=registry)
        self.latency = Histogram("clr_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                                 registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def recorded_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], route, str(status)).inc()
            self.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text format"}}
    | error_responses(401, 403, 503))
async def metrics(request: Request, key: CallerDep) -> Response:
    """Jobs by kind and state, queue depth, running jobs, job durations, iterations per second, and this API
    process's requests. Admin keys only: the figures span every tenant."""
    if not key.admin:
        raise HTTPException(403, f"Key {key.name!r} is not an admin key: /metrics spans every tenant")
    body = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
