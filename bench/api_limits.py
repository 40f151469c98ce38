"""What tenancy and limits cost the API: `GET /jobs?limit=50` at 100 and at 100,000 jobs (served from the tenant's
index), `GET /health` latency while a 150 MB dataset uploads (streamed to disk, checked off the event loop), and
the requests per second with and without a rate limit on the key (its token bucket is one Redis script call)."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from api.keys import ApiKey, KeyStore
from bench.common import add_jobs, redis_store, table
from clr_service.stack import free_port, start_api, stop

TENANT = "bench"


def latencies_ms(client: httpx.Client, path: str, requests: int, **params) -> list[float]:
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        seconds.append(time.perf_counter() - started)
    return [s * 1000 for s in seconds]


def upload_while_polling_health(client: httpx.Client, megabytes: int) -> tuple[list[float], float]:
    """`GET /health` latencies (ms) while another client uploads an `.npz` of `megabytes`; the upload's seconds."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.npz"
        np.savez(path, x_train=np.random.default_rng(0).random((megabytes * 2**20 // 256, 8, 8), np.float32),
                 y_train=np.zeros(megabytes * 2**20 // 256, np.int64))
        done, took = threading.Event(), []

        def upload() -> None:
            started = time.perf_counter()
            with path.open("rb") as file:
                answer = client.post("/datasets", files={"file": ("big.npz", file)}, timeout=300)
            took.append(time.perf_counter() - started)
            assert answer.status_code == 201, answer.text
            done.set()

        uploader = threading.Thread(target=upload)
        uploader.start()
        seen = []
        with httpx.Client(base_url=client.base_url, timeout=30) as poller:
            while not done.is_set():
                started = time.perf_counter()
                poller.get("/health").raise_for_status()
                seen.append((time.perf_counter() - started) * 1000)
                time.sleep(0.01)
        uploader.join()
    return seen, took[0]


def requests_per_second(client: httpx.Client, seconds: float = 5.0) -> float:
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        client.get("/datasets").raise_for_status()
        count += 1
    return count / seconds


def main() -> None:
    with redis_store() as (store, url), tempfile.TemporaryDirectory() as data_dir:
        keys = KeyStore(store.redis)
        port = free_port()
        api = start_api("127.0.0.1", port, os.environ | {"REDIS_URL": url, "CLR_DATA_DIR": data_dir,
                                                         "CLR_MAX_UPLOAD_BYTES": str(400 * 2**20),
                                                         "CLR_MAX_DATASET_BYTES": str(400 * 2**20)})
        try:
            base = f"http://127.0.0.1:{port}"
            tenant = keys.create(ApiKey(TENANT))
            limited = keys.create(ApiKey("limited", rate=1e6))
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tenant}"}, timeout=30) as client:
                rows = []
                for total in (100, 100_000):
                    add_jobs(store, total, TENANT)
                    page = latencies_ms(client, "/jobs", 200, limit=50)
                    rows.append([f"`GET /jobs?limit=50` at {total:,} jobs", f"{np.percentile(page, 50):.1f}",
                                 f"{np.percentile(page, 99):.1f}"])
                health, upload_s = upload_while_polling_health(client, 150)
                rows.append([f"`GET /health` during a 150 MB upload ({upload_s:.1f} s, {len(health)} requests)",
                             f"{np.percentile(health, 50):.1f}", f"{np.percentile(health, 99):.1f}"])
                print(table(["request", "p50 ms", "p99 ms"], rows))
                with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {limited}"},
                                  timeout=30) as rate_limited:
                    plain, with_rate = [], []
                    for _ in range(3):
                        plain.append(requests_per_second(client))
                        with_rate.append(requests_per_second(rate_limited))
                print()
                print(table(["key", "requests/s (3 runs of 5 s, interleaved)", "median"], [
                    ["no rate limit", ", ".join(f"{r:.0f}" for r in plain), f"{statistics.median(plain):.0f}"],
                    ["rate limit (never reached)", ", ".join(f"{r:.0f}" for r in with_rate),
                     f"{statistics.median(with_rate):.0f}"],
                ]))
        finally:
            stop([api])


if __name__ == "__main__":
    main()
