"""`GET /metrics` in Prometheus's text format: the jobs as the store holds them (so every API replica reports the
same workers' figures) and this API process's requests."""

from __future__ import annotations

import itertools
import time

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import CallerDep
from api.errors import error_responses
from worker.kinds import KINDS
from worker.records import TERMINAL_STATES
from worker.store import DURATION_BUCKETS, JobStore

router = APIRouter(tags=["health"])
JOB_STATES = ("queued", "running", *sorted(TERMINAL_STATES))


class StoreCollector(Collector):
    """Job figures read from Redis at scrape time: gauges of the jobs held now (0 for a kind and state none is
    in), and counters of the jobs ended so far, which only grow (deleting a job takes nothing from them)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self):
        heads = self.store.job_heads()
        counts = dict.fromkeys(itertools.product(KINDS, JOB_STATES), 0)
        for head in heads:
            counts[head["kind"], head["state"]] = counts.get((head["kind"], head["state"]), 0) + 1
        jobs = GaugeMetricFamily("clr_jobs", "Jobs held now, by kind and state", labels=["kind", "state"])
        for (kind, state), count in sorted(counts.items()):
            jobs.add_metric([kind, state], count)
        yield jobs
        yield GaugeMetricFamily("clr_queue_depth", "Job messages waiting in the queue",
                                value=self.store.workers.queue_depth())
        running = [head for head in heads if head["state"] == "running"]
        yield GaugeMetricFamily("clr_running_jobs", "Jobs running now", value=len(running))
        now = time.time()
        yield GaugeMetricFamily("clr_training_iterations_per_second", "Iterations per second of the running jobs",
                                value=sum(head["iteration"] / max(now - head["started_at"], 1e-9)
                                          for head in running if head["started_at"]))
        ended, durations = self.store.ended_counts()
        finished = CounterMetricFamily("clr_jobs_ended", "Jobs ended so far, by kind and final state",
                                       labels=["kind", "state"])
        for kind, state in itertools.product(KINDS, TERMINAL_STATES):
            finished.add_metric([kind, state], ended.get((kind, state), 0))
        yield finished
        buckets = [[str(bound), durations.get(f"le:{bound}", 0)] for bound in DURATION_BUCKETS]
        yield HistogramMetricFamily("clr_job_duration_seconds", "Seconds from the last start to the end of ended jobs",
                                    buckets=[*buckets, ["+Inf", durations.get("count", 0)]],
                                    sum_value=durations.get("sum", 0))


def route_template(scope: Scope) -> str:
    """The path template of the route a request matched (`/jobs/{job_id}`; the docs' and static files' routes
    too, which record no route in the scope), else `unmatched`."""
    if (route := scope.get("route")) is not None:
        return route.path
    matched = (route.path for route in scope["app"].routes if route.matches(scope)[0] == Match.FULL)
    return next(matched, "unmatched")


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
        started, status, streamed = time.perf_counter(), 500, False

        async def recorded_send(message: Message) -> None:
            nonlocal status, streamed
            if message["type"] == "http.response.start":
                status = message["status"]
                streamed = MutableHeaders(scope=message).get("content-type", "").startswith("text/event-stream")
            await send(message)

        try:
            await self.app(scope, receive, recorded_send)
        finally:
            route = route_template(scope)
            self.requests.labels(scope["method"], route, str(status)).inc()
            if not streamed:  # an event stream lasts as long as its job: no request latency
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
