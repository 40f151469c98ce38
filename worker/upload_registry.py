"""The metadata of uploaded datasets and models, and of unfinished chunked uploads, by id."""

from __future__ import annotations

import json
from typing import Any, Literal

import redis

from worker.tenancy import usage_key

UploadKind = Literal["datasets", "models", "uploads"]  # "uploads": unfinished chunked uploads

# KEYS: the kind's uploads, usage. ARGV: upload id, its bytes. Forgets the upload and gives its bytes back, once:
# returns 0 when it was gone already.
_FORGET_UPLOAD = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DECRBY', KEYS[2], ARGV[2])
return 1
"""


class UploadRegistry:
    """One Redis hash per kind of upload: id to metadata (JSON)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._forget = client.register_script(_FORGET_UPLOAD)

    def save(self, kind: UploadKind, upload_id: str, meta: dict[str, Any]) -> None:
        """Record an uploaded dataset's or model's metadata."""
        self.redis.hset(f"clr:{kind}", upload_id, json.dumps(meta))

    def get(self, kind: UploadKind, upload_id: str) -> dict[str, Any] | None:
        """An uploaded dataset's or model's metadata, or None."""
        raw = self.redis.hget(f"clr:{kind}", upload_id)
        return json.loads(raw) if raw else None

    def delete(self, kind: UploadKind, upload_id: str) -> None:
        """Forget an upload's metadata."""
        self.redis.hdel(f"clr:{kind}", upload_id)

    def forget(self, kind: UploadKind, upload_id: str, owner: str, stored_bytes: int) -> bool:
        """Forget an upload's metadata and give its `stored_bytes` back to tenant `owner`, atomically and once; False
        when another request forgot it first."""
        return self._forget(keys=[f"clr:{kind}", usage_key(owner)], args=[upload_id, stored_bytes]) == 1

    def lock(self, upload_id: str) -> redis.lock.Lock:
        """The lock a request holds on an unfinished upload while it adds a part, finishes or abandons it."""
        return self.redis.lock(f"clr:lock:uploads:{upload_id}", timeout=3600)

    def all(self, kind: UploadKind, owner: str | None = None) -> list[dict[str, Any]]:
        """Uploaded datasets' or models' metadata: tenant `owner`'s (None: everyone's)."""
        every = [json.loads(raw) for raw in self.redis.hvals(f"clr:{kind}")]
        return [meta for meta in every if owner is None or meta.get("owner") == owner]
