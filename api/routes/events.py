"""A job, live: Server-Sent Events read from the store, so any API replica serves them and training is not slowed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from api.deps import JobDep, SettingsDep, StoreDep
from api.errors import error_responses
from api.routes.curves import curve_columns, json_column
from worker.store import TERMINAL_STATES, JobStore

router = APIRouter(tags=["curves"])
POLL_S = 0.25
PROGRESS = ("iteration", "total_iterations", "epoch", "epochs", "verifying")


def _event(name: str, data: dict[str, Any], event_id: int | None = None) -> dict[str, str]:
    return {"event": name, "data": json.dumps(data)} | ({"id": str(event_id)} if event_id is not None else {})


async def job_events(store: JobStore, job_id: str, since: int) -> AsyncIterator[dict[str, str]]:
    """`state`, `progress`, `points` (from iteration `since`; each event's id is the next iteration) and `epoch`
    events as the stored job changes; the last is the terminal `state`."""
    state = progress = None
    epochs_sent = 0
    while (job := await run_in_threadpool(store.get, job_id)) is not None:
        if job["state"] != state and job["state"] not in TERMINAL_STATES:
            state = job["state"]
            yield _event("state", {"state": state, "attempts": job["attempts"]})
        if (now := {name: job.get(name) for name in PROGRESS}) != progress:
            progress = now
            yield _event("progress", progress)
        columns = await run_in_threadpool(curve_columns, job, store, since)
        if count := len(columns["iteration"]):
            since += count
            yield _event("points", {name: json_column(values) for name, values in columns.items()}, since)
        for epoch in (job["epoch_history"] or [])[epochs_sent:]:
            epochs_sent += 1
            yield _event("epoch", {"epoch": epochs_sent, **epoch})
        if job["state"] in TERMINAL_STATES:
            yield _event("state", {"state": job["state"], "attempts": job["attempts"], "error": job["error"],
                                   "result": job["result"]})
            return
        await asyncio.sleep(POLL_S)


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse, responses={
    200: {"content": {"text/event-stream": {}}, "description": "`state`, `progress`, `points` and `epoch` events"}}
    | error_responses(404))
async def stream_job_events(
    job: JobDep, store: StoreDep, settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,13}$", description="Resume after this event")] = None,
) -> EventSourceResponse:
    """The job live, until it ends: every iteration once, in order, from `Last-Event-ID` on after a reconnect."""
    return EventSourceResponse(job_events(store, job["id"], int(last_event_id or 0)), ping=settings.sse_ping_s)
