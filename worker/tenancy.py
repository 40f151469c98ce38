"""What each tenant (an API key's name) has in the store: its queued and running jobs, and the bytes it stores."""

from __future__ import annotations

import redis

from worker.records import TERMINAL_STATES, job_key

# KEYS: usage. ARGV: bytes, quota ('' for none). Counts the bytes only if the total stays within the quota; returns
# the total it would reach.
_RESERVE = """
local after = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
if not quota or after <= quota then redis.call('INCRBY', KEYS[1], ARGV[1]) end
return after
"""


def active_key(owner: str) -> str:
    """The set of tenant `owner`'s jobs that were queued or running when last looked at."""
    return f"clr:active:{owner}"


def usage_key(owner: str) -> str:
    """The bytes tenant `owner` stores."""
    return f"clr:usage:{owner}"


class Tenancy:
    """Per-tenant counts for limits and quotas."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._reserve = client.register_script(_RESERVE)

    def active_jobs(self, owner: str) -> int:
        """How many queued and running jobs tenant `owner` has."""
        return len(self.active_job_ids(owner))

    def active_job_ids(self, owner: str) -> list[str]:
        """Tenant `owner`'s queued and running jobs (ended ones leave its active set here)."""
        members = [job_id.decode() for job_id in self.redis.smembers(active_key(owner))]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in members:
                pipe.hget(job_key(job_id), "state")
            states = pipe.execute()
        ended = [job_id for job_id, state in zip(members, states, strict=True)
                 if state is None or state.decode() in TERMINAL_STATES]
        if ended:
            self.redis.srem(active_key(owner), *ended)
        return [job_id for job_id in members if job_id not in ended]

    def add_usage(self, owner: str, stored_bytes: int) -> None:
        """Count bytes tenant `owner` stores (datasets, models); negative when removed."""
        self.redis.incrby(usage_key(owner), stored_bytes)

    def reserve_usage(self, owner: str, stored_bytes: int, quota: float | None) -> int:
        """Count `stored_bytes` more for tenant `owner` only if it then stores at most `quota` bytes (None: no
        quota), in one atomic step; return the bytes it would store: more than `quota` when nothing was counted."""
        return self._reserve(keys=[usage_key(owner)], args=[stored_bytes, "" if quota is None else quota])

    def usage(self, owner: str) -> int:
        """Bytes tenant `owner` stores."""
        return int(self.redis.get(usage_key(owner)) or 0)
