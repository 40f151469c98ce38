"""A job's record as the store keeps it (a Redis hash) and hands it out (`JobRecord`): the contract between the API
and the workers."""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
JSON_FIELDS = (
    "spec", "bounds", "warnings", "result", "epoch_history", "resumes", "range_test", "momentum_cycle", "verification",
    "verifying", "children", "comparison", "skipped_iterations", "head", "unfrozen_range_test", "unfrozen_bounds")
INT_FIELDS = ("attempts", "iteration", "total_iterations", "epoch", "epochs")
TIME_FIELDS = ("created_at", "started_at", "finished_at", "heartbeat_at")


class JobRecord(TypedDict, total=False):
    """A job: who submitted what, where it stands, and what it left. Every field is there once the job is created,
    None (0 for the counts) until its runner sets it; `JobStore.job_heads` hands out only some."""

    id: str
    owner: str  # the tenant: the name of the key that submitted it
    kind: str  # a `worker.kinds.KINDS` name
    state: State
    spec: dict[str, Any]  # the kind's spec, as JSON
    bounds: list[float] | None  # `[min_lr, max_lr]` the API resolved from a `range_test_id`
    warnings: list[str]
    created_at: float  # seconds since the epoch, by the API's clock; the other times by Redis's
    started_at: float | None  # the last attempt's start
    heartbeat_at: float | None
    finished_at: float | None
    runner: str  # the process running it (`host:pid`), empty when none
    attempts: int  # the fencing token of its runner's writes
    iteration: int  # progress: iterations recorded so far, of `total_iterations`; the epoch under way, of `epochs`
    total_iterations: int
    epoch: int
    epochs: int
    epoch_history: dict[str, list[float | None]] | None  # per-epoch metrics, kept across resumes
    resumes: list[dict[str, int]] | None  # each resume's attempt and the iteration it went on from
    range_test: dict[str, Any] | None  # the result of the range test a training ran first
    momentum_cycle: dict[str, Any] | None  # `clr.plan.momentum_cycle`, where the momentum cycles
    verification: list[dict[str, Any]] | None  # a verified range test's candidates so far
    verifying: dict[str, int] | None  # the candidate a verified range test is training: `{"candidate", "of"}`
    children: dict[str, dict[str, str]] | None  # a comparison's trainings: arm name to seed (as text) to job id
    comparison: dict[str, Any] | None  # a training a comparison runs: `{"id", "arm", "seed"}`
    skipped_iterations: list[int] | None  # its curve's steps that mixed precision's loss scaling skipped
    head: dict[str, Any] | None  # a training that `unfreeze`s: its head's stage's result, once that stage ended
    unfrozen_range_test: dict[str, Any] | None  # ...and the result of the range test its whole network ran first
    unfrozen_bounds: list[float] | None  # ...and the bounds that range test suggested
    cancel_requested: bool
    error: str | None
    result: dict[str, Any] | None  # the kind's result, once it ended


def job_key(job_id: str) -> str:
    """The Redis hash of a job's record."""
    return f"clr:job:{job_id}"


def decode(raw: dict[bytes, bytes]) -> JobRecord:
    """A job record from its Redis hash."""
    job: dict[str, Any] = {key.decode(): value.decode() for key, value in raw.items()}
    for field in JSON_FIELDS:
        job[field] = json.loads(job[field]) if job.get(field) else None
    for field in INT_FIELDS:
        job[field] = int(job[field]) if job.get(field) else 0
    for field in TIME_FIELDS:
        job[field] = float(job[field]) if job.get(field) else None
    job["cancel_requested"] = job.get("cancel_requested") == "1"
    job["error"] = job.get("error") or None
    return job  # type: ignore[return-value]
