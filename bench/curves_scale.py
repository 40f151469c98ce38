"""Curves at scale: a 10,000,000-iteration curve against 1,000,000- and 1,000-point ones, on a real Redis and the API
under uvicorn (httpx on loopback, one client): bytes per point (`MEMORY USAGE`), `GET /jobs/{id}/curves?max_points=2000`
(on the curve as it stands, and growing by 1,000 points before each request, as a running training's) and `?since=`
(the last 1,000 iterations) latencies, and where a raw `max_points` read spends its time."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import httpx
import numpy as np

from api.routes.curves import curve_columns
from bench.common import claimed_job, percentiles_ms, redis_store, served_api, table, write_curve
from clr.analysis import downsample_indices
from worker.store import JobStore

TARGET_MAX_POINTS_P50_MS = 200.0


def latencies(client: httpx.Client, path: str, params: dict, requests: int,
              before_each: Callable[[], None] = lambda: None) -> list[float]:
    """Seconds of each of `requests` sequential requests, `before_each` run before each (untimed)."""
    seconds = []
    for _ in range(requests):
        before_each()
        started = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        seconds.append(time.perf_counter() - started)
    return seconds


def read_split(store: JobStore, job_id: str, requests: int) -> dict[str, float]:
    """Median milliseconds of a `max_points=2000` read's parts, in this process: the Redis read, the downsampling."""
    parts: dict[str, list[float]] = {"read from Redis": [], "downsample": []}
    for _ in range(requests):
        started = time.perf_counter()
        curve = store.curve(job_id)
        read = time.perf_counter()
        downsample_indices(curve.losses, 2000)
        parts["read from Redis"].append(read - started)
        parts["downsample"].append(time.perf_counter() - read)
    return {name: percentiles_ms(seconds, 50)[0] for name, seconds in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    rows, split_rows, medians = [], [], {}
    with redis_store() as (store, redis_url):
        curves = {}
        for points in (1_000, 1_000_000, args.points):
            job_id, attempt = claimed_job(store)
            write_curve(store, job_id, attempt, points, chunk=1_000_000)
            curves[points] = job_id
        assert curve_columns(store.get(curves[args.points]), store, 0, 2000)["iteration"].size <= 2000
        with served_api(store, redis_url) as (url, token), \
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            for points, job_id in curves.items():
                path = f"/jobs/{job_id}/curves"
                size = store.curve_bytes(job_id)
                growing = growth(store, job_id)
                for query, params, before_each in (
                        ("since=<last 1,000>", {"since": max(0, points - 1_000)}, lambda: None),
                        ("max_points=2000", {"max_points": 2000}, lambda: None),
                        ("max_points=2000, growing", {"max_points": 2000}, growing)):  # the last: it grows it
                    p50, p99 = percentiles_ms(latencies(client, path, params, args.requests, before_each), 50, 99)
                    medians[points, query] = p50
                    target = ""
                    if query.startswith("max_points") and points == args.points:
                        target = f"p50 <= {TARGET_MAX_POINTS_P50_MS:g} ms: " + (
                            "met" if p50 <= TARGET_MAX_POINTS_P50_MS
                            else f"missed by {p50 - TARGET_MAX_POINTS_P50_MS:.0f} ms")
                    rows.append([f"{points:,}", f"{size / points:.2f}", f"`curves?{query}`", f"{p50:.1f}",
                                 f"{p99:.1f}", target])
                split_rows.append([f"{points:,}", *(f"{ms:.1f}" for ms in read_split(store, job_id, 5).values())])
    print(table(["curve, iterations", "bytes per point", "request", "p50 ms", "p99 ms", "target"], rows))
    print()
    print(table(["curve, iterations", "read from Redis, ms (p50)", "downsample to 2,000, ms (p50)"], split_rows))
    print()
    ratio = medians[args.points, "max_points=2000, growing"] / medians[1_000_000, "max_points=2000, growing"]
    print(f"growing `max_points=2000`, {args.points:,} over 1,000,000 points (p50): {ratio:.2f} "
          f"(target <= 2: {'met' if ratio <= 2 else f'missed by {ratio - 2:.2f}'})")


def growth(store: JobStore, job_id: str, points: int = 1_000) -> Callable[[], None]:
    """Appends `points` points to the curve at each call, as a running training's reporter does: every request then
    meets a new curve length, which no cached answer covers."""
    attempt = int(store.get(job_id)["attempts"])

    def grow() -> None:
        first = store.curve_length(job_id)
        store.report(job_id, attempt, first, np.full(points, 0.01, np.float32), np.full(points, 0.5, np.float32))
    return grow


if __name__ == "__main__":
    main()
