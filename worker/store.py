"""The Redis job store: job records (the source of truth for state) and compact per-iteration curves.

A curve is one Redis string of packed little-endian float32 `(lr, loss)` records, one per iteration from 0: a batch
is written at its own offset with one `SETRANGE` (writing it again changes nothing), "since iteration N" is one
`GETRANGE`. Every write of a runner is fenced by its attempt number: a superseded runner cannot touch the job.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import redis

from clr.analysis import BLOCK, block_summaries
from worker.coordination import Coordination
from worker.records import JobRecord, decode, job_key
from worker.tenancy import Tenancy, active_key
from worker.upload_registry import UploadRegistry

log = logging.getLogger(__name__)
T = TypeVar("T")
POINT = np.dtype([("lr", "<f4"), ("loss", "<f4")])
ACCURACY = np.dtype("<f4")  # a range test's per-batch accuracy, a column of its own beside the curve
BLOCK_POINTS = 1024  # iterations a block summary of a curve covers
CANDIDATE_PHASES = tuple(f"candidate_{index}" for index in range(8))  # the curves of a range test's verification
# The curves a training keeps beside its own: its range test's, and a fine-tuning's whole network's and its range test's
TRAINING_PHASES = ("range_test", "unfrozen", "unfrozen_range_test")

# Time comes from Redis (`TIME`), so every worker judges staleness on one clock.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
"""

# Ended jobs, counted as each ends (once: every end is a fenced state change), for monitoring: `kind:state` counts,
# and a histogram of the seconds from the last attempt's start to the end (`le:BOUND` counts, `count`, `sum`).
ENDED_KEY, DURATION_KEY = "clr:stats:ended", "clr:stats:duration"
WAITING_KEY = "clr:waiting"  # queued jobs by when their last message was sent (a zset)
DURATION_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
_ENDED = _NOW + f"""
local function ended(job, state)
  redis.call('HINCRBY', '{ENDED_KEY}', redis.call('HGET', job, 'kind') .. ':' .. state, 1)
  local started = tonumber(redis.call('HGET', job, 'started_at') or '')
  if not started then return end
  local seconds = now - started
  for _, bound in ipairs({{{", ".join(map(str, DURATION_BUCKETS))}}}) do
    if seconds <= bound then redis.call('HINCRBY', '{DURATION_KEY}', 'le:' .. bound, 1) end
  end
  redis.call('HINCRBY', '{DURATION_KEY}', 'count', 1)
  redis.call('HINCRBYFLOAT', '{DURATION_KEY}', 'sum', seconds)
end
"""

# KEYS: job, curve, job id. ARGV: runner, max_attempts, stale_after, force. Returns [outcome, attempts]. The curve
# is kept: the runner cuts it back to where it resumes (`_RESUME`).
_CLAIM = _ENDED + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', 0} end
local stale = now - tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0') > tonumber(ARGV[3])
if state == 'running' and not (stale or ARGV[4] == '1') then return {'busy', 0} end
if state ~= 'queued' and state ~= 'running' then return {'finished', 0} end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', now)
  ended(KEYS[1], 'cancelled')
  return {'finished', 0}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', now, 'error',
    'Gave up after ' .. ARGV[2] .. ' attempts: the worker running this job was lost each time')
  ended(KEYS[1], 'failed')
  redis.call('SREM', 'clr:running', KEYS[3])
  return {'exhausted', attempts}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', now, 'heartbeat_at', now, 'runner', ARGV[1])
redis.call('SADD', 'clr:running', KEYS[3])
return {'claimed', attempts}
"""

# The fence of every runner write: the job still exists, runs, and is on the writer's attempt (else -1).
_OWNED = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[1] then
  return -1
end
"""

# KEYS: job, curve, its accuracy column, its block summaries. ARGV: attempt, iteration, then field, value pairs. Cuts
# the curve (and the column) back to `iteration` points (fewer when fewer are stored), drops the summaries, sets the
# fields, and logs the attempt's start. Returns the points kept, or -1 when fenced off.
_RESUME = _OWNED + """
redis.call('DEL', KEYS[4])
local kept = math.min(tonumber(ARGV[2]), math.floor(redis.call('STRLEN', KEYS[2]) / 8))
if kept == 0 then redis.call('DEL', KEYS[2], KEYS[3])
else
  redis.call('SET', KEYS[2], redis.call('GETRANGE', KEYS[2], 0, kept * 8 - 1))
  if redis.call('STRLEN', KEYS[3]) > kept * 4 then
    redis.call('SET', KEYS[3], redis.call('GETRANGE', KEYS[3], 0, kept * 4 - 1))
  end
end
local resumes = cjson.decode(redis.call('HGET', KEYS[1], 'resumes') or '[]')
table.insert(resumes, {attempt = tonumber(ARGV[1]), resumed_from = kept})
redis.call('HSET', KEYS[1], 'resumes', cjson.encode(resumes), 'iteration', kept, unpack(ARGV, 3))
return kept
"""

# KEYS: job, curve, its accuracy column, its block summaries. ARGV: attempt. Empties them; returns 0, or -1 when
# fenced off.
_RESTART_CURVE = _OWNED + """
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 0
"""

# KEYS: job, curve, its accuracy column. ARGV: attempt, byte offset of the points, points, their accuracies (4 bytes
# each, or empty), then field, value pairs. Writes the points (and accuracies) at their own offset (a repeated write
# changes nothing), the fields and a heartbeat. Returns the bytes the curve then holds; the points are not written
# when they would leave a gap (a restarted Redis lost the last writes before them).
_REPORT = _NOW + _OWNED + """
redis.call('HSET', KEYS[1], 'heartbeat_at', now, unpack(ARGV, 5))
local stored = redis.call('STRLEN', KEYS[2])
if tonumber(ARGV[2]) > stored then return stored end
if #ARGV[3] > 0 then redis.call('SETRANGE', KEYS[2], tonumber(ARGV[2]), ARGV[3]) end
if #ARGV[4] > 0 then redis.call('SETRANGE', KEYS[3], tonumber(ARGV[2]) / 2, ARGV[4]) end
return redis.call('STRLEN', KEYS[2])
"""

# KEYS: a curve's block summaries, the curve. ARGV: the summaries' length read, the summaries that follow, the curve
# bytes they cover. Appends them unless the summaries changed meanwhile or the curve no longer holds what they cover
# (a resume or restart cut it, and dropped the summaries). Returns 1 if it did.
_EXTEND_BLOCKS = """
if redis.call('STRLEN', KEYS[1]) ~= tonumber(ARGV[1]) or redis.call('STRLEN', KEYS[2]) < tonumber(ARGV[3]) then
  return 0
end
redis.call('APPEND', KEYS[1], ARGV[2])
return 1
"""

# KEYS: job, job id. ARGV: attempt. Puts the runner's own running job back in the queue, its attempt not counted
# (a worker shutting down after a checkpoint).
_REQUEUE = _OWNED + """
redis.call('HSET', KEYS[1], 'state', 'queued')
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('SREM', 'clr:running', KEYS[2])
return 1
"""

# KEYS: job, job id. ARGV: stale_after. Puts a running job whose runner stopped heartbeating back in the queue (its
# attempt counted). Returns 1 if it did.
_REQUEUE_STALE = _NOW + """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' then redis.call('SREM', 'clr:running', KEYS[2]) return 0 end
if now - tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0') <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'runner', '')
redis.call('SREM', 'clr:running', KEYS[2])
return 1
"""

# KEYS: job, job id. ARGV: stale_after. Returns the state after the request: a queued job, or a running one whose runner
# stopped heartbeating, is cancelled at once; a live running one is asked to stop.
_CANCEL = _ENDED + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
local stale = now - tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0') > tonumber(ARGV[1])
if state == 'queued' or (state == 'running' and stale) then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', now, 'cancel_requested', 1)
  ended(KEYS[1], 'cancelled')
  redis.call('SREM', 'clr:running', KEYS[2])
  return 'cancelled'
end
if state == 'running' then redis.call('HSET', KEYS[1], 'cancel_requested', 1) end
return state
"""

# KEYS: job, job id. ARGV: attempt, state, error, result. Ends only the writer's own running attempt.
_FINISH = _ENDED + _OWNED + """
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', now, 'error', ARGV[3], 'result', ARGV[4])
ended(KEYS[1], ARGV[2])
redis.call('SREM', 'clr:running', KEYS[2])
return 1
"""

# KEYS: job. ARGV: state, error, result. Ends a job no worker runs, once: returns 0 when it had ended.
_SETTLE = _ENDED + """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finished_at', now, 'error', ARGV[2], 'result', ARGV[3])
ended(KEYS[1], ARGV[1])
return 1
"""


def new_job_id() -> str:
    return uuid.uuid4().hex


class LostClaim(RuntimeError):
    """The job was taken over by another attempt, or deleted: this runner must stop writing to it."""


def through_redis_failures(call: Callable[[], T], within_s: float) -> T:
    """`call()`, retried every second through Redis errors for up to `within_s`; then the error propagates."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return call()
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            log.warning("Redis failed; retrying", exc_info=True)
            time.sleep(1)


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
    accuracies: np.ndarray | None = None  # a range test's, for a classification loss


def _pairs(**fields: Any) -> list[Any]:
    """Hash fields as `HSET` arguments, dicts and lists as JSON, None as empty (read back as None)."""
    return [item for name, value in fields.items()
            for item in (name, json.dumps(value) if isinstance(value, dict | list) else "" if value is None else value)]


class JobStore:
    """Job records and their curves in one Redis database, beside what goes with them there: the uploads' metadata
    (`uploads`), the tenants' counts (`tenants`) and the workers' coordination (`workers`)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self.uploads = UploadRegistry(client)
        self.tenants = Tenancy(client)
        self.workers = Coordination(client)
        self._claim = client.register_script(_CLAIM)
        self._resume = client.register_script(_RESUME)
        self._report = client.register_script(_REPORT)
        self._restart_curve = client.register_script(_RESTART_CURVE)
        self._requeue = client.register_script(_REQUEUE)
        self._requeue_stale = client.register_script(_REQUEUE_STALE)
        self._cancel = client.register_script(_CANCEL)
        self._finish = client.register_script(_FINISH)
        self._settle = client.register_script(_SETTLE)
        self._extend_blocks = client.register_script(_EXTEND_BLOCKS)

    @classmethod
    def from_url(cls, url: str) -> JobStore:
        """A store on the Redis server at `url`."""
        return cls(redis.Redis.from_url(url))

    @classmethod
    def _curve_keys(cls, job_id: str, phase: str = "") -> tuple[str, str, str]:
        """The curve of `phase`, its accuracy column and its block summaries (`curve_blocks`)."""
        curve = cls._curve_key(job_id, phase)
        return curve, curve + ":accuracy", curve + ":blocks"

    @staticmethod
    def _curve_key(job_id: str, phase: str = "") -> str:
        """The job's curve; a training that runs its range test first keeps that one under `phase="range_test"`, a
        verification its candidates' under `CANDIDATE_PHASES`."""
        return f"clr:curve:{job_id}" + (f":{phase}" if phase else "")

    def create(self, kind: str, spec: dict[str, Any], bounds: tuple[float, float] | None = None,
               warnings: tuple[str, ...] = (), owner: str = "", comparison: dict[str, Any] | None = None) -> str:
        """Record a new queued job of tenant `owner` (one of `comparison`'s trainings: `{"id", "arm", "seed"}`);
        return its id."""
        job_id = new_job_id()
        self._add(job_id, owner, kind=kind, state="queued", spec=spec, bounds=list(bounds) if bounds else None,
                  warnings=list(warnings), comparison=comparison)
        return job_id

    def create_comparison(self, job_id: str, spec: dict[str, Any], children: dict[str, dict[str, str]],
                          owner: str = "") -> None:
        """Record a comparison of tenant `owner`, running from now on: no worker runs it, it ends when its
        `children` have (`settle`)."""
        self._add(job_id, owner, kind="comparison", state="running", spec=spec, warnings=[], children=children)

    def _add(self, job_id: str, owner: str, **fields: Any) -> None:
        now = time.time()
        record = {"id": job_id, "owner": owner, "created_at": now, "attempts": 0} | fields
        queued = fields["state"] == "queued"  # a job a worker runs, counted among the tenant's active ones
        if not queued:
            record["started_at"] = now
        with self.redis.pipeline() as pipe:
            pipe.hset(job_key(job_id), items=_pairs(**record))
            pipe.zadd("clr:jobs", {job_id: now})
            pipe.zadd(f"clr:jobs:{owner}", {job_id: now})
            if queued:
                pipe.sadd(active_key(owner), job_id)
                pipe.zadd(WAITING_KEY, {job_id: now})
            pipe.execute()

    def settle(self, job_id: str, state: str, result: dict[str, Any] | None = None, error: str | None = None) -> bool:
        """End a job no worker runs (a comparison) as `state`, once; False when it had ended already."""
        return self._settle(keys=[job_key(job_id)], args=[state, error or "", json.dumps(result)]) == 1

    def ask_to_cancel(self, job_id: str) -> None:
        """Mark a job no worker runs as asked to cancel (a comparison: it ends cancelled)."""
        self.redis.hset(job_key(job_id), "cancel_requested", 1)

    def get(self, job_id: str) -> JobRecord | None:
        """The job record, or None for an unknown id."""
        return self.get_many([job_id])[0]

    def get_many(self, job_ids: list[str]) -> list[JobRecord | None]:
        """The job records (None for unknown ids), in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(job_key(job_id))
            raws = pipe.execute()
        return [decode(raw) if b"kind" in raw else None for raw in raws]  # without its creation fields: no job

    def list(self, kind: str | None, state: str | None, offset: int, limit: int,
             owner: str | None = None) -> tuple[int, list[JobRecord]]:
        """Jobs newest first, of tenant `owner` (None: everyone's), filtered by kind and state: (number matching,
        one page). Unfiltered, a page reads only its own jobs from the tenant's index."""
        index = "clr:jobs" if owner is None else f"clr:jobs:{owner}"
        if kind is None and state is None:
            ids = [job_id.decode() for job_id in self.redis.zrevrange(index, offset, offset + limit - 1)]
            return self.redis.zcard(index), [job for job in self.get_many(ids) if job is not None]
        ids = [job_id.decode() for job_id in self.redis.zrevrange(index, 0, -1)]
        with self.redis.pipeline() as pipe:
            for job_id in ids:
                pipe.hmget(job_key(job_id), "kind", "state")
            heads = pipe.execute()
        matching = [
            job_id
            for job_id, (job_kind, job_state) in zip(ids, heads, strict=True)
            if job_kind is not None
            and kind in (None, job_kind.decode())
            and state in (None, job_state.decode())
        ]
        return len(matching), [job for job in self.get_many(matching[offset : offset + limit]) if job is not None]

    def job_heads(self) -> list[JobRecord]:
        """Every job's kind, state, iteration and times (what monitoring counts), in one round trip."""
        ids = [job_id.decode() for job_id in self.redis.zrange("clr:jobs", 0, -1)]
        names = ("kind", "state", "iteration", "started_at", "finished_at")
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(job_key(job_id), *names)
            rows = pipe.execute()
        return [decode({name.encode(): value for name, value in zip(names, row, strict=True) if value is not None})
                for row in rows if row[0] is not None]

    def ended_counts(self) -> tuple[dict[tuple[str, str], int], dict[str, float]]:
        """Jobs ended so far by (kind, state), and the histogram of their durations (`le:BOUND`, `count`, `sum`):
        figures that only grow, whatever is deleted since."""
        ended, durations = self.redis.hgetall(ENDED_KEY), self.redis.hgetall(DURATION_KEY)
        return ({tuple(field.decode().split(":", 1)): int(count) for field, count in ended.items()},
                {field.decode(): float(value) for field, value in durations.items()})

    def claim(self, job_id: str, runner: str, max_attempts: int, stale_after: float, runner_lost: bool) -> Claim:
        """Atomically move a queued job (or one whose runner is lost) to running. The claim's `attempts` is the
        fencing token of every later write of this runner, the first of which is `resume`."""
        outcome, attempts = self._claim(
            keys=[job_key(job_id), self._curve_key(job_id), job_id],
            args=[runner, max_attempts, stale_after, int(runner_lost)],
        )
        return Claim(outcome.decode(), int(attempts))

    def resume(self, job_id: str, attempt: int, iteration: int, epoch: int,
               epoch_history: list[dict[str, Any]], phase: str = "") -> int:
        """As the runner of `attempt`, starting: cut the curve back to `iteration` points and set the progress of
        that point; log the attempt's `resumed_from`. Returns the points kept: fewer than `iteration` when the
        curve lost some. Raises `LostClaim` if the attempt is not current."""
        kept = self._resume(keys=[job_key(job_id), *self._curve_keys(job_id, phase)],
                            args=[attempt, iteration, *_pairs(epoch=epoch, epoch_history=epoch_history)])
        if kept < 0:
            raise LostClaim(f"Job {job_id} is no longer on attempt {attempt}: taken over or deleted")
        return kept

    def restart_curve(self, job_id: str, attempt: int, phase: str) -> None:
        """As the runner of `attempt`: empty the curve of `phase`, to write it from iteration 0 again. Raises
        `LostClaim` if the attempt is not current."""
        if self._restart_curve(keys=[job_key(job_id), *self._curve_keys(job_id, phase)], args=[attempt]) < 0:
            raise LostClaim(f"Job {job_id} is no longer on attempt {attempt}: taken over or deleted")

    def report(self, job_id: str, attempt: int, first_iteration: int = 0, lrs: np.ndarray | None = None,
               losses: np.ndarray | None = None, phase: str = "", accuracies: np.ndarray | None = None,
               **fields: Any) -> int:
        """As the runner of `attempt`: write points from `first_iteration` on at their own offset, set plain fields
        (dicts and lists as JSON) and the heartbeat, atomically; return the points the curve then holds, fewer
        than `first_iteration` (and these points not written) when it lost some. Raises `LostClaim` if the attempt
        is not current."""
        points = np.empty(0 if lrs is None else len(lrs), POINT)
        if lrs is not None:
            points["lr"], points["loss"] = lrs, losses
        accuracy = b"" if accuracies is None else np.asarray(accuracies, ACCURACY).tobytes()
        stored = self._report(keys=[job_key(job_id), *self._curve_keys(job_id, phase)],
                              args=[attempt, first_iteration * POINT.itemsize, points.tobytes(), accuracy,
                                    *_pairs(**fields)])
        if stored < 0:
            raise LostClaim(f"Job {job_id} is no longer on attempt {attempt}: taken over or deleted")
        return stored // POINT.itemsize

    def requeue(self, job_id: str, attempt: int) -> bool:
        """Put the runner's own running job back in the queue without counting the attempt; False if it is no
        longer the runner's."""
        requeued = self._requeue(keys=[job_key(job_id), job_id], args=[attempt]) == 1
        if requeued:
            self.mark_waiting(job_id)
        return requeued

    def requeue_stale(self, stale_after: float) -> list[str]:
        """Put every running job whose runner stopped heartbeating for `stale_after` seconds back in the queue;
        return their ids."""
        running = [job_id.decode() for job_id in self.redis.smembers("clr:running")]
        taken = [job_id for job_id in running
                 if self._requeue_stale(keys=[job_key(job_id), job_id], args=[stale_after])]
        for job_id in taken:
            self.mark_waiting(job_id)
        return taken

    def mark_waiting(self, job_id: str) -> None:
        """Note that a message for the queued job was sent now (see `waiting_too_long`)."""
        seconds, micros = self.redis.time()
        self.redis.zadd(WAITING_KEY, {job_id: seconds + micros / 1e6})

    def waiting_too_long(self, seconds: float) -> list[str]:
        """The jobs still queued `seconds` after their last message was sent; those no longer queued are forgotten.
        Such a job's message is most likely held by a worker killed after it took it (before its child claimed the
        job, or behind a job it was running when Redis came back), which Redis keeps unacknowledged for the
        visibility timeout."""
        now, micros = self.redis.time()
        waiting = [job_id.decode() for job_id in self.redis.zrangebyscore(WAITING_KEY, "-inf", now + micros / 1e6
                                                                          - seconds)]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in waiting:
                pipe.hget(job_key(job_id), "state")
            states = pipe.execute()
        done = [job_id for job_id, state in zip(waiting, states, strict=True) if state != b"queued"]
        if done:
            self.redis.zrem(WAITING_KEY, *done)
        return [job_id for job_id in waiting if job_id not in done]

    def finish(
        self, job_id: str, attempt: int, state: str, result: dict | None = None, error: str | None = None
    ) -> bool:
        """End the runner's own running attempt in `state`; False if the attempt is no longer current."""
        done = self._finish(keys=[job_key(job_id), job_id],
                            args=[attempt, state, error or "", json.dumps(result)])
        return done == 1

    def request_cancel(self, job_id: str, stale_after: float) -> str | None:
        """Cancel a queued job, or a running one whose runner stopped heartbeating, now; ask a live running one to
        stop. Return the state after, None for an unknown id."""
        state = self._cancel(keys=[job_key(job_id), job_id], args=[stale_after])
        return state.decode() if state else None

    def cancel_requested(self, job_id: str) -> bool:
        """Whether a cancel was asked for."""
        return self.redis.hget(job_key(job_id), "cancel_requested") == b"1"

    def close(self) -> None:
        """Close the connections to Redis."""
        self.redis.close()

    def ping(self) -> bool:
        """Whether Redis answers (a RedisError when not)."""
        return self.redis.ping()

    def delete(self, job_id: str) -> None:
        """Remove the job record and its curve."""
        owner = (self.redis.hget(job_key(job_id), "owner") or b"").decode()
        with self.redis.pipeline() as pipe:
            pipe.delete(job_key(job_id), *(key for phase in ("", *TRAINING_PHASES, *CANDIDATE_PHASES)
                                                 for key in self._curve_keys(job_id, phase)))
            pipe.zrem("clr:jobs", job_id)
            pipe.zrem(f"clr:jobs:{owner}", job_id)
            pipe.srem(active_key(owner), job_id)
            pipe.srem("clr:running", job_id)
            pipe.zrem(WAITING_KEY, job_id)
            pipe.execute()

    def curve(self, job_id: str, since: int = 0, phase: str = "") -> Curve:
        """The curve (of `phase`) from iteration `since` on."""
        curve_key, accuracy_key, _ = self._curve_keys(job_id, phase)
        raw = self.redis.getrange(curve_key, since * POINT.itemsize, -1) if since >= 0 else b""
        points = np.frombuffer(raw[: len(raw) - len(raw) % POINT.itemsize], POINT)
        accuracies = np.frombuffer(self.redis.getrange(accuracy_key, since * ACCURACY.itemsize,
                                                       (since + len(points)) * ACCURACY.itemsize - 1), ACCURACY)
        return Curve(np.arange(since, since + len(points)), points["lr"], points["loss"],
                     accuracies if len(points) and len(accuracies) == len(points) else None)

    def curve_blocks(self, job_id: str, phase: str = "") -> tuple[np.ndarray, Curve]:
        """The curve's summaries (`clr.analysis.BLOCK`) of each whole block of `BLOCK_POINTS` iterations, and the
        points after them: a long curve read in kilobytes. The summaries are kept beside the curve, extended here
        by whoever reads it next (only with what the curve still holds), and dropped when a runner cuts it."""
        curve_key, _, blocks_key = self._curve_keys(job_id, phase)
        with self.redis.pipeline(transaction=True) as pipe:
            stored, summaries = pipe.strlen(curve_key).get(blocks_key).execute()
        blocks = np.frombuffer(summaries or b"", BLOCK)
        whole = stored // (POINT.itemsize * BLOCK_POINTS)
        if whole > len(blocks):
            start, end = len(blocks) * BLOCK_POINTS, whole * BLOCK_POINTS
            points = np.frombuffer(self.redis.getrange(curve_key, start * POINT.itemsize, end * POINT.itemsize - 1),
                                   POINT)
            if len(points) == end - start:
                new = block_summaries(start, points["lr"], points["loss"], BLOCK_POINTS)
                self._extend_blocks(keys=[blocks_key, curve_key],
                                    args=[len(blocks) * BLOCK.itemsize, new.tobytes(), end * POINT.itemsize])
                blocks = np.concatenate([blocks, new])
        return blocks, self.curve(job_id, len(blocks) * BLOCK_POINTS, phase)

    def curve_point(self, job_id: str, iteration: int, phase: str = "") -> tuple[int, float, float]:
        """One point of the curve: its iteration, LR and loss."""
        raw = self.redis.getrange(self._curve_key(job_id, phase), iteration * POINT.itemsize,
                                  (iteration + 1) * POINT.itemsize - 1)
        point = np.frombuffer(raw, POINT)[0]
        return iteration, float(point["lr"]), float(point["loss"])

    def curve_length(self, job_id: str, phase: str = "") -> int:
        """The iterations the curve (of `phase`) holds, without reading it."""
        return self.redis.strlen(self._curve_key(job_id, phase)) // POINT.itemsize

    def curve_bytes(self, job_id: str) -> int | None:
        """Memory Redis uses for the curve (`MEMORY USAGE`)."""
        return self.redis.memory_usage(self._curve_key(job_id), samples=0)
