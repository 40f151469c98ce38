"""The API under load: several uvicorn workers on an embedded Redis holding 100,000 jobs and a 1,000,000-point
curve that a training keeps extending (a writer thread reporting points as a worker's reporter does, every
0.5 s). An asyncio httpx load generator on loopback runs `--clients` clients against one request at a time for
`--seconds`: closed loop (each client sends its next request as soon as the last is answered: the most the
server can take) and paced (each client sends one request a `--pace` seconds, as a dashboard polls, the clients'
starts spread over that period).
Requests/s, p50 and p99 per request, and every answer that is not 200 counted as an error."""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from bench.common import (
    add_jobs,
    claimed_job,
    percentiles_ms,
    random_curve,
    redis_store,
    served_api,
    table,
    write_curve,
)
from worker.store import JobStore

TARGET_P99_MS = 100.0
STREAM_EVERY_S = 0.5
STREAM_POINTS = 2_000  # a fast training's points per flush (4,000 iterations/s)
HEADER = ["request", "load", "requests/s", "p50 ms", "p99 ms", "errors", f"target p99 <= {TARGET_P99_MS:g} ms"]


@contextmanager
def streaming(store: JobStore, job_id: str, attempt: int, first: int) -> Iterator[list[int]]:
    """A writer thread extending the job's curve from `first` by `STREAM_POINTS` every `STREAM_EVERY_S`, with
    progress and heartbeat, until the block ends; yields a one-item list holding the points stored."""
    lrs, losses = random_curve(STREAM_POINTS)
    stored, stop = [first], threading.Event()

    def write() -> None:
        while not stop.wait(STREAM_EVERY_S):
            stored[0] = store.report(job_id, attempt, stored[0], lrs, losses, iteration=stored[0] + STREAM_POINTS)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield stored
    finally:
        stop.set()
        writer.join()


async def load(url: str, token: str, path: str, params, clients: int, seconds: float, pace: float
               ) -> tuple[list[float], int]:
    """Each request's seconds and the count of errors, `clients` clients for `seconds` (`params` is called for
    each request's query)."""
    latencies, errors = [], 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient, index: int) -> None:
        nonlocal errors
        await asyncio.sleep(index * pace / clients)  # paced clients spread over the period, not in bursts
        while (started := time.perf_counter()) < deadline:
            try:
                answer = await http.get(path, params=params())
                errors += answer.status_code != 200
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)
            if pace:
                await asyncio.sleep(max(0.0, started + pace - time.perf_counter()))

    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                 limits=limits) as http:
        await http.get("/health")
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(client(http, index) for index in range(clients)))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=4, help="uvicorn worker processes")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="per request and mode")
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between a paced client's requests")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = []
    with redis_store() as (store, redis_url):
        add_jobs(store, args.jobs, owner="bench")
        job_id, attempt = claimed_job(store)
        write_curve(store, job_id, attempt, args.points)
        with served_api(store, redis_url, args.workers) as (url, token), \
                streaming(store, job_id, attempt, args.points) as stored:
            requests = {
                "`GET /jobs/{id}`": (f"/jobs/{job_id}", dict),
                "`GET /jobs/{id}/curves?since=<last 1,000>`": (f"/jobs/{job_id}/curves",
                                                                lambda: {"since": stored[0] - 1_000}),
                f"`GET /jobs/{{id}}/curves?max_points=2000` ({args.points:,}+ points)": (
                    f"/jobs/{job_id}/curves", lambda: {"max_points": 2000}),
                f"`GET /jobs?limit=50` ({args.jobs:,} jobs)": ("/jobs", lambda: {"limit": 50}),
            }
            for mode, pace in (("closed loop", 0.0), (f"one request per {args.pace:g} s", args.pace)):
                for name, (path, params) in requests.items():
                    latencies, errors = asyncio.run(load(url, token, path, params, args.clients, args.seconds, pace))
                    p50, p99 = percentiles_ms(latencies, 50, 99)
                    verdict = "met" if p99 <= TARGET_P99_MS and not errors else \
                        f"missed by {max(0.0, p99 - TARGET_P99_MS):.0f} ms" + (f", {errors} errors" if errors else "")
                    rows.append([name, mode, f"{len(latencies) / args.seconds:.0f}", f"{p50:.1f}", f"{p99:.1f}",
                                 errors, verdict])
                    print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    print(f"\n{args.workers} uvicorn workers, {args.clients} clients, {args.seconds:g} s per row\n")
    print(table(HEADER, rows))


if __name__ == "__main__":
    main()
