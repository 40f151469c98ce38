"""The Redis job store: job records (the source of truth for state) and compact per-iteration curves.

A curve is one Redis string of packed little-endian float32 `(lr, loss)` records, one per iteration from 0:
appending a batch is one `APPEND`, "since iteration N" is one `GETRANGE`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

POINT = np.dtype([("lr", "<f4"), ("loss", "<f4")])
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
JSON_FIELDS = ("spec", "bounds", "warnings", "result", "epoch_history")
INT_FIELDS = ("attempts", "iteration", "total_iterations", "epoch", "epochs")

# KEYS: job, curve. ARGV: now, runner, max_attempts, stale_after, force. Returns [outcome, attempts].
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', 0} end
local now = tonumber(ARGV[1])
local stale = now - tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0') > tonumber(ARGV[4])
if state == 'running' and not (stale or ARGV[5] == '1') then return {'busy', 0} end
if state ~= 'queued' and state ~= 'running' then return {'finished', 0} end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
  return {'finished', 0}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', ARGV[1], 'error',
    'Gave up after ' .. ARGV[3] .. ' attempts: the worker running this job was lost each time')
  return {'exhausted', attempts}
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[1], 'heartbeat_at', ARGV[1],
  'runner', ARGV[2], 'iteration', 0, 'epoch', 0, 'epoch_history', '[]')
return {'claimed', attempts}
"""

# KEYS: job. ARGV: now. Returns the state after the request.
_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1], 'cancel_requested', 1)
  return 'cancelled'
end
if state == 'running' then redis.call('HSET', KEYS[1], 'cancel_requested', 1) end
return state
"""

# KEYS: job. ARGV: now, state, error, result, runner. Finishes only the runner's own running job.
_FINISH = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'runner') ~= ARGV[5] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[1], 'error', ARGV[3], 'result', ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to start a job: `claimed`, `busy`, `finished`, `exhausted` or `missing`."""

    outcome: str
    attempts: int


@dataclass(frozen=True)
class Curve:
    """Per-iteration columns of a job's curve (float32, as stored)."""

    iterations: np.ndarray
    lrs: np.ndarray
    losses: np.ndarray


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    job: dict[str, Any] = {key.decode(): value.decode() for key, value in raw.items()}
    for field in JSON_FIELDS:
        job[field] = json.loads(job[field]) if job.get(field) else None
    for field in INT_FIELDS:
        job[field] = int(job[field]) if job.get(field) else 0
    for field in ("created_at", "started_at", "finished_at", "heartbeat_at"):
        job[field] = float(job[field]) if job.get(field) else None
    job["cancel_requested"] = job.get("cancel_requested") == "1"
    job["error"] = job.get("error") or None
    return job


class JobStore:
    """Job records, curves and uploaded-dataset metadata in one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._cancel = client.register_script(_CANCEL)
        self._finish = client.register_script(_FINISH)

    @classmethod
    def from_url(cls, url: str) -> JobStore:
        """A store on the Redis server at `url`."""
        return cls(redis.Redis.from_url(url))

    @staticmethod
    def _job_key(job_id: str) -> str:
        return f"clr:job:{job_id}"

    @staticmethod
    def _curve_key(job_id: str) -> str:
        return f"clr:curve:{job_id}"

    def create(self, kind: str, spec: dict[str, Any], bounds: tuple[float, float] | None = None,
               warnings: tuple[str, ...] = ()) -> str:
        """Record a new queued job; return its id."""
        job_id, now = uuid.uuid4().hex, time.time()
        fields = {
            "id": job_id,
            "kind": kind,
            "state": "queued",
            "spec": json.dumps(spec),
            "bounds": json.dumps(bounds),
            "warnings": json.dumps(list(warnings)),
            "created_at": now,
            "attempts": 0,
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(self._job_key(job_id), mapping=fields)
            pipe.zadd("clr:jobs", {job_id: now})
            pipe.execute()
        return job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job record, or None for an unknown id."""
        raw = self.redis.hgetall(self._job_key(job_id))
        return _decode(raw) if raw else None

    def list(self, kind: str | None, state: str | None, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Jobs newest first, filtered by kind and state: (number matching, one page)."""
        ids = [job_id.decode() for job_id in self.redis.zrevrange("clr:jobs", 0, -1)]
        with self.redis.pipeline() as pipe:
            for job_id in ids:
                pipe.hmget(self._job_key(job_id), "kind", "state")
            heads = pipe.execute()
        matching = [
            job_id
            for job_id, (job_kind, job_state) in zip(ids, heads, strict=True)
            if job_kind is not None
            and kind in (None, job_kind.decode())
            and state in (None, job_state.decode())
        ]
        page = [self.get(job_id) for job_id in matching[offset : offset + limit]]
        return len(matching), [job for job in page if job is not None]

    def claim(self, job_id: str, runner: str, max_attempts: int, stale_after: float, runner_lost: bool) -> Claim:
        """Atomically move a queued job (or one whose runner is lost) to running; truncate its partial curve."""
        outcome, attempts = self._claim(
            keys=[self._job_key(job_id), self._curve_key(job_id)],
            args=[time.time(), runner, max_attempts, stale_after, int(runner_lost)],
        )
        return Claim(outcome.decode(), int(attempts))

    def update(self, job_id: str, **fields: Any) -> None:
        """Set plain fields of the job record (progress, heartbeat, totals)."""
        self.redis.hset(self._job_key(job_id), mapping=fields)

    def set_json(self, job_id: str, **fields: Any) -> None:
        """Set JSON fields of the job record (warnings, epoch history)."""
        self.update(job_id, **{name: json.dumps(value) for name, value in fields.items()})

    def finish(
        self, job_id: str, runner: str, state: str, result: dict | None = None, error: str | None = None
    ) -> bool:
        """End the runner's own running job in `state`; False if it no longer owns a running job."""
        done = self._finish(
            keys=[self._job_key(job_id)], args=[time.time(), state, error or "", json.dumps(result), runner]
        )
        return bool(done)

    def request_cancel(self, job_id: str) -> str | None:
        """Cancel a queued job now, or flag a running one; return the state after, None for an unknown id."""
        state = self._cancel(keys=[self._job_key(job_id)], args=[time.time()])
        return state.decode() if state else None

    def cancel_requested(self, job_id: str) -> bool:
        """Whether a cancel was asked for."""
        return self.redis.hget(self._job_key(job_id), "cancel_requested") == b"1"

    def delete(self, job_id: str) -> None:
        """Remove the job record and its curve."""
        with self.redis.pipeline() as pipe:
            pipe.delete(self._job_key(job_id), self._curve_key(job_id))
            pipe.zrem("clr:jobs", job_id)
            pipe.execute()

    def append_curve(self, job_id: str, lrs: np.ndarray, losses: np.ndarray) -> None:
        """Append per-iteration points in one command."""
        points = np.empty(len(lrs), POINT)
        points["lr"], points["loss"] = lrs, losses
        self.redis.append(self._curve_key(job_id), points.tobytes())

    def curve(self, job_id: str, since: int = 0) -> Curve:
        """The curve from iteration `since` on."""
        raw = self.redis.getrange(self._curve_key(job_id), since * POINT.itemsize, -1) if since >= 0 else b""
        points = np.frombuffer(raw[: len(raw) - len(raw) % POINT.itemsize], POINT)
        return Curve(np.arange(since, since + len(points)), points["lr"], points["loss"])

    def curve_bytes(self, job_id: str) -> int | None:
        """Memory Redis uses for the curve (`MEMORY USAGE`)."""
        return self.redis.memory_usage(self._curve_key(job_id), samples=0)

    def save_dataset(self, dataset_id: str, meta: dict[str, Any]) -> None:
        """Record an uploaded dataset's metadata."""
        self.redis.hset("clr:datasets", dataset_id, json.dumps(meta))

    def dataset(self, dataset_id: str) -> dict[str, Any] | None:
        """An uploaded dataset's metadata, or None."""
        raw = self.redis.hget("clr:datasets", dataset_id)
        return json.loads(raw) if raw else None

    def datasets(self) -> list[dict[str, Any]]:
        """All uploaded datasets' metadata."""
        return [json.loads(raw) for raw in self.redis.hvals("clr:datasets")]
