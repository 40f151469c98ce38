"""What the workers' processes tell each other through Redis: that one is shutting down (its jobs checkpoint and go
back to the queue), who is taking over lost jobs now, and which job messages wait in Celery's queue."""

from __future__ import annotations

import json

import redis

QUEUE = "celery"  # the Celery queue jobs wait in (a Redis list)
TAKEOVER_LOCK = "clr:takeover-lock"


class Coordination:
    """Drain requests, the takeover lock and the queue, on the store's Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def drain(self, worker: str, within_s: float) -> None:
        """Ask the jobs of `worker` (shutting down) to checkpoint and go back to the queue."""
        self.redis.set(f"clr:drain:{worker}", 1, ex=max(1, round(within_s)))

    def draining(self, worker: str) -> bool:
        """Whether `worker` is shutting down."""
        return bool(self.redis.exists(f"clr:drain:{worker}"))

    def take_over_lock(self, holder: str, for_s: float) -> bool:
        """Whether `holder` now holds the takeover lock, for `for_s` (False: another holds it)."""
        return bool(self.redis.set(TAKEOVER_LOCK, holder, nx=True, px=int(for_s * 1000)))

    def queue_depth(self) -> int:
        """Job messages waiting in the queue."""
        return self.redis.llen(QUEUE)

    def queued_job_ids(self) -> set[str]:
        """The task ids (each a job's id) of the messages waiting in the queue, kombu's JSON envelopes."""
        return {json.loads(message)["headers"]["id"] for message in self.redis.lrange(QUEUE, 0, -1)}
