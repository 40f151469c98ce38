"""The curve store: bytes per point and ingest rate for 1,000,000 iterations, curve reads over real HTTP, and
MLflow's local tracking store side by side on a 100,000-iteration curve."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from api.keys import ApiKey, KeyStore
from bench.common import claimed_job, interleaved_runs, random_curve, redis_store, table
from clr_service.stack import free_port, start_api, stop
from worker.reporting import JobReporter
from worker.settings import Settings
from worker.store import JobStore

TRAINING_SPEC = {"kind": "benchmark"}
EXECUTION = 64  # points handed over per execution of the train step
FLUSH_EVERY = 1000  # executions between flushes (the reporter thread flushes on a timer)


def ingest(store: JobStore, points: int) -> tuple[str, float]:
    """Feed a curve through the job reporter as training would; return the job id and points per second."""
    lrs, losses = random_curve(points)
    job_id, attempt = claimed_job(store, "training", TRAINING_SPEC)
    reporter = JobReporter(store, job_id, attempt, Settings())
    start = time.perf_counter()
    for execution, first in enumerate(range(0, points, EXECUTION)):
        last = min(first + EXECUTION, points)
        reporter.push(np.arange(first, last), lrs[first:last], losses[first:last])
        if execution % FLUSH_EVERY == FLUSH_EVERY - 1:
            reporter.flush()
    reporter.flush()
    return job_id, points / (time.perf_counter() - start)


def latencies(client: httpx.Client, path: str, params: dict, requests: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    seconds = []
    for _ in range(requests):
        start = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        seconds.append(time.perf_counter() - start)
    p50, p99 = np.percentile(seconds, [50, 99]) * 1000
    return float(p50), float(p99)


def http_reads(store: JobStore, redis_url: str, job_id: str, points: int, requests: int) -> list[list[object]]:
    port = free_port()
    api = start_api("127.0.0.1", port, os.environ | {"REDIS_URL": redis_url})
    try:
        token = KeyStore(store.redis).create(ApiKey(f"bench-{port}", admin=True))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as client:
            path = f"/jobs/{job_id}/curves"
            assert len(client.get(path, params={"max_points": 2000}).json()["iteration"]) <= 2000
            downsampled = latencies(client, path, {"max_points": 2000}, requests)
            since = latencies(client, path, {"since": points - 1000}, requests)
    finally:
        stop([api])
    return [
        [f"`curves?max_points=2000` on {points:,} iterations", f"{downsampled[0]:.1f}", f"{downsampled[1]:.1f}", 50],
        [f"`curves?since={points - 1000}` (last 1,000)", f"{since[0]:.1f}", f"{since[1]:.1f}", 10],
    ]


def versus_mlflow(store: JobStore, mlflow_python: str, points: int, repetitions: int) -> list[list[object]]:
    lrs, losses = random_curve(points)

    def ours() -> dict[str, float]:
        job_id, attempt = claimed_job(store, "training", TRAINING_SPEC)
        start = time.perf_counter()
        for first in range(0, points, 500):
            store.report(job_id, attempt, first, lrs[first:first + 500], losses[first:first + 500])
        write = time.perf_counter() - start
        start = time.perf_counter()
        assert len(store.curve(job_id).losses) == points
        read = time.perf_counter() - start
        size = store.curve_bytes(job_id)
        store.delete(job_id)
        return {"write_s": write, "read_s": read, "bytes": size}

    def mlflow() -> dict[str, float]:
        script = Path(__file__).with_name("mlflow_store.py")
        out = subprocess.run([mlflow_python, str(script), str(points)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    runs = interleaved_runs({"ours": ours, "mlflow": mlflow}, repetitions)
    median = {side: {key: statistics.median(run[key] for run in values) for key in values[0]}
              for side, values in runs.items()}
    return [
        [measure, f"{median['ours'][key]:.4g}", f"{median['mlflow'][key]:.4g}",
         f"{median['mlflow'][key] / median['ours'][key]:.0f}x"]
        for measure, key in (("write, s", "write_s"), ("read, s", "read_s"), ("bytes", "bytes"))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--mlflow-points", type=int, default=100_000)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--mlflow-python", help="a Python with MLflow installed; the comparison is skipped without")
    args = parser.parse_args()
    with redis_store() as (store, redis_url):
        rates = []
        for _ in range(args.repetitions):
            job_id, rate = ingest(store, args.points)
            rates.append(rate)
            if len(rates) < args.repetitions:
                store.delete(job_id)
        stored = store.curve_bytes(job_id)
        print(table(["curve store", "measured", "target"], [
            [f"bytes per point (`MEMORY USAGE` / {args.points:,})", f"{stored / args.points:.2f}", "<= 10"],
            ["recorder ingest, points/s (median)", f"{statistics.median(rates):,.0f}", ">= 1,000,000"],
        ]))
        print()
        print(table(["HTTP on loopback, 200 requests", "p50 ms", "p99 ms", "target p50 ms"],
                    http_reads(store, redis_url, job_id, args.points, args.requests)))
        if args.mlflow_python:
            print()
            print(table([f"{args.mlflow_points:,}-iteration (lr, loss) curve", "ours", "MLflow local store",
                         "MLflow / ours"], versus_mlflow(store, args.mlflow_python, args.mlflow_points,
                                                          args.repetitions)))


if __name__ == "__main__":
    sys.exit(main())
