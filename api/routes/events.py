"""A job, live: Server-Sent Events read from the store, so any API replica serves them and training is not slowed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from api.deps import CredentialsDep, JobDep, KeysDep, SettingsDep, StoreDep
from api.errors import error_responses
from api.keys import KeyStore
from api.routes.curves import curve_columns, json_column
from api.views import answer_as
from worker.comparisons import current
from worker.records import TERMINAL_STATES
from worker.store import JobStore

router = APIRouter(tags=["curves"])
POLL_S = 0.25
KEY_CHECK_S = 1.0  # an open stream asks again at most this often whether its key was revoked
PROGRESS = ("iteration", "total_iterations", "epoch", "epochs", "verifying")
EVENTS = ("Server-Sent Events, each one's `data` a JSON object: `state` (`state`, `attempts`; the last, terminal one "
          "also the job's `error` and `result`), `progress` (`iteration`, `total_iterations`, `epoch`, `epochs`, "
          "`verifying`), `points` (the new iterations' columns, as `curves` has them; the event's id is the next "
          "iteration, to resume from as `Last-Event-ID`), `epoch` (`epoch` and that epoch's metrics), and `error` "
          "(`detail`) once the key is revoked. The stream ends after the terminal `state` (or the `error`); comment "
          "lines keep it alive meanwhile")


def _event(name: str, data: dict[str, Any], event_id: int | None = None) -> dict[str, str]:
    return {"event": name, "data": json.dumps(data)} | ({"id": str(event_id)} if event_id is not None else {})


class KeyCheck:
    """Whether the API key a stream was opened with is revoked, asked of the key store at most every `KEY_CHECK_S`."""

    def __init__(self, keys: KeyStore, token: str) -> None:
        self.keys, self.token, self.due = keys, token, time.monotonic() + KEY_CHECK_S

    async def revoked(self) -> bool:
        if time.monotonic() < self.due:
            return False
        self.due = time.monotonic() + KEY_CHECK_S
        return await run_in_threadpool(self.keys.verify, self.token) is None


async def job_events(store: JobStore, job_id: str, since: int, key: KeyCheck) -> AsyncIterator[dict[str, str]]:
    """`state`, `progress`, `points` (from iteration `since`; each event's id is the next iteration) and `epoch`
    events as the stored job changes; the last is the terminal `state`, or an `error` once `key` is revoked."""
    state = progress = None
    epochs_sent = 0
    while (job := await run_in_threadpool(lambda: current(store, store.get(job_id)))) is not None:
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
        if await key.revoked():
            yield _event("error", {"detail": "Authorization: the API key was revoked; the stream ends"})
            return
        await asyncio.sleep(POLL_S)


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse,
            responses=answer_as("text/event-stream", EVENTS, binary=False) | error_responses(404))
async def stream_job_events(
    job: JobDep, store: StoreDep, settings: SettingsDep, keys: KeysDep, credentials: CredentialsDep,
    last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,13}$", description="Resume after this event")] = None,
) -> EventSourceResponse:
    """The job live, until it ends (or the key is revoked: an `error` event, within seconds): every iteration once,
    in order, from `Last-Event-ID` on after a reconnect."""
    events = job_events(store, job["id"], int(last_event_id or 0), KeyCheck(keys, credentials.credentials))
    return EventSourceResponse(events, ping=settings.sse_ping_s)
