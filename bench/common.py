"""What the benchmarks share: a real Redis and API for the run, interleaved timing, statistics, markdown tables."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from scipy import stats

from api.keys import ApiKey, KeyStore
from clr_service.stack import free_port, start_api, start_redis, stop
from worker.store import JobStore

T = TypeVar("T")


@contextlib.contextmanager
def redis_store() -> Iterator[tuple[JobStore, str]]:
    """A JobStore on a fresh embedded Redis server, and its URL."""
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        process = start_redis(port, Path(directory))
        url = f"redis://127.0.0.1:{port}/0"
        try:
            yield JobStore.from_url(url), url
        finally:
            stop([process])


@contextlib.contextmanager
def served_api(store: JobStore, redis_url: str, workers: int = 1) -> Iterator[tuple[str, str]]:
    """The API under uvicorn (`workers` processes) on `redis_url`: its base URL and an admin key's token."""
    port = free_port()
    api = start_api("127.0.0.1", port, os.environ | {"REDIS_URL": redis_url}, workers)
    try:
        yield f"http://127.0.0.1:{port}", KeyStore(store.redis).create(ApiKey(f"bench-{port}", admin=True))
    finally:
        stop([api])


def claimed_job(store: JobStore, kind: str = "training", spec: dict | None = None) -> tuple[str, int]:
    """A new job claimed by the benchmark itself, as a worker would: its id and attempt (the write fence)."""
    job_id = store.create(kind, spec or {})
    return job_id, store.claim(job_id, "bench", 1, 3600.0, False).attempts


def add_jobs(store: JobStore, count: int, owner: str) -> None:
    """`count` finished jobs of tenant `owner`, written straight into Redis in pipelined batches."""
    with store.redis.pipeline(transaction=False) as pipe:
        for index in range(count):
            job_id = f"{index:032x}"
            pipe.hset(f"clr:job:{job_id}", mapping={"id": job_id, "owner": owner, "kind": "training",
                                                     "state": "succeeded", "spec": "{}", "created_at": index})
            pipe.zadd(f"clr:jobs:{owner}", {job_id: index})
            pipe.zadd("clr:jobs", {job_id: index})
            if index % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()


def random_curve(points: int) -> tuple[np.ndarray, np.ndarray]:
    """Plausible (lr, loss) columns."""
    rng = np.random.default_rng(0)
    return rng.random(points) * 0.1, rng.random(points) * 3


def write_curve(store: JobStore, job_id: str, attempt: int, points: int, chunk: int = 100_000) -> None:
    """`points` points of a claimed job's curve, in reports of `chunk`."""
    lrs, losses = random_curve(points)
    for first in range(0, points, chunk):
        store.report(job_id, attempt, first, lrs[first:first + chunk], losses[first:first + chunk])


def interleaved_runs(variants: dict[str, Callable[[], T]], repetitions: int) -> dict[str, list[T]]:
    """Each variant's results, the variants run in rotating order within each repetition."""
    names = list(variants)
    results: dict[str, list[T]] = {name: [] for name in names}
    for repetition in range(repetitions):
        for name in names[repetition % len(names):] + names[: repetition % len(names)]:
            results[name].append(variants[name]())
    return results


@dataclass(frozen=True)
class Interval:
    """A median and its bootstrap 95 % confidence interval."""

    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.median:.3f} [{self.low:.3f}, {self.high:.3f}]"


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> Interval:
    """The median of the paired ratios `numerators[i] / denominators[i]` (runs of one repetition), with a
    percentile-bootstrap 95 % confidence interval (`scipy.stats.bootstrap`, 10,000 resamples)."""
    ratios = np.asarray(numerators) / np.asarray(denominators)
    if len(ratios) < 2:
        return Interval(float(ratios[0]), float("nan"), float("nan"))
    interval = stats.bootstrap((ratios,), np.median, confidence_level=0.95, n_resamples=10_000,
                               method="percentile", random_state=0).confidence_interval
    return Interval(float(np.median(ratios)), float(interval.low), float(interval.high))


def ratio_of_medians(numerators: Sequence[float], denominators: Sequence[float]) -> Interval:
    """`median(numerators) / median(denominators)` of two independent samples, with a percentile-bootstrap 95 %
    confidence interval (each sample resampled on its own, 10,000 resamples)."""
    ratio = float(np.median(numerators) / np.median(denominators))
    if min(len(numerators), len(denominators)) < 2:
        return Interval(ratio, float("nan"), float("nan"))
    interval = stats.bootstrap((np.asarray(numerators), np.asarray(denominators)),
                               lambda top, bottom: np.median(top) / np.median(bottom), vectorized=False,
                               confidence_level=0.95, n_resamples=10_000, method="percentile",
                               random_state=0).confidence_interval
    return Interval(ratio, float(interval.low), float(interval.high))


def percentiles_ms(seconds: Sequence[float], *levels: int) -> list[float]:
    """Percentiles of durations in seconds, in milliseconds."""
    return [float(value) for value in np.percentile(np.asarray(seconds) * 1000, levels)]


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
