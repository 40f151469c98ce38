"""The anchor of `bench.api_overhead`: the least a `GET /jobs/{id}` can do, as a bare FastAPI route. It looks up the
bearer token's digest, as the API's key check does, and answers the job's Redis hash as JSON; served as the API is
(`uvicorn`, the guarded protocol, one process), on the Redis in `REDIS_URL`."""

from __future__ import annotations

import hashlib
import os

import redis
from fastapi import FastAPI, HTTPException, Request

app = FastAPI()
client = redis.Redis.from_url(os.environ["REDIS_URL"])


@app.get("/jobs/{job_id}")
def job(job_id: str, request: Request) -> dict[str, str]:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    if client.hget("clr:key-digests", hashlib.sha256(token.encode()).hexdigest()) is None:
        raise HTTPException(401)
    return {name.decode(): value.decode() for name, value in client.hgetall(f"clr:job:{job_id}").items()}
