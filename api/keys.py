"""API keys in Redis: a random token per key, shown once and stored only as its SHA-256; each key a tenant with its
own limits. The first admin key of an embedded stack is written to a file in the data dir (mode 0600)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from api.private import write_private

KEY_FILE = "api-key"
# A token's key in one round trip: its name by digest, then its record by name.
VERIFY = """
local name = redis.call('HGET', KEYS[1], ARGV[1])
if not name then return false end
return redis.call('HGET', KEYS[2], name)
"""


@dataclass(frozen=True)
class ApiKey:
    """A key's name (its tenant), whether it acts on every tenant's work, and its limits (None: unlimited)."""

    name: str
    admin: bool = False
    max_active_jobs: int | None = None
    max_storage_mb: float | None = None
    rate: float | None = None  # requests per second, bursts of up to max(rate, 1)
    created_at: float = 0.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    """Keys by name (`clr:keys`) and by token digest (`clr:key-digests`)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._verify = client.register_script(VERIFY)

    def create(self, key: ApiKey, token: str | None = None) -> str:
        """Record `key` with `token` (by default a new random one); return the token, which is never stored.
        Raises ValueError if the name is taken."""
        token = token or secrets.token_urlsafe(32)
        record = json.dumps(asdict(key) | {"created_at": time.time(), "digest": _digest(token)})
        if not self.redis.hsetnx("clr:keys", key.name, record):
            raise ValueError(f"A key named {key.name!r} exists; revoke it first or choose another name")
        self.redis.hset("clr:key-digests", _digest(token), key.name)
        return token

    def list(self) -> list[ApiKey]:
        return [self._key(raw) for raw in self.redis.hvals("clr:keys")]

    def revoke(self, name: str) -> bool:
        """Remove the key `name`; effective for the next request. False if there is none."""
        raw = self.redis.hget("clr:keys", name)
        if raw is None:
            return False
        with self.redis.pipeline() as pipe:
            pipe.hdel("clr:key-digests", json.loads(raw)["digest"])
            pipe.hdel("clr:keys", name)
            pipe.execute()
        return True

    def verify(self, token: str) -> ApiKey | None:
        """The key whose token this is, or None."""
        raw = self._verify(keys=["clr:key-digests", "clr:keys"], args=[_digest(token)])
        return self._key(raw) if raw else None

    @staticmethod
    def _key(raw: bytes) -> ApiKey:
        record = json.loads(raw)
        record.pop("digest")
        return ApiKey(**record)


def first_admin_key(keys: KeyStore, data_dir: Path) -> Path | None:
    """On a store with no keys, make the admin key `admin` and write its token to `data_dir/api-key` (mode 0600);
    return that file, or None when keys exist already."""
    if keys.redis.hlen("clr:keys"):
        return None
    token = keys.create(ApiKey("admin", admin=True))
    data_dir.mkdir(parents=True, exist_ok=True)
    return write_private(data_dir / KEY_FILE, token + "\n")
