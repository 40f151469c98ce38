"""What the benchmarks share: a real Redis for the run, interleaved timing, markdown tables."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from api.stack import free_port, start_redis, stop
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


def claimed_job(store: JobStore, kind: str = "training", spec: dict | None = None) -> tuple[str, int]:
    """A new job claimed by the benchmark itself, as a worker would: its id and attempt (the write fence)."""
    job_id = store.create(kind, spec or {})
    return job_id, store.claim(job_id, "bench", 1, 3600.0, False).attempts


def interleaved_runs(variants: dict[str, Callable[[], T]], repetitions: int) -> dict[str, list[T]]:
    """Each variant's results, the variants run in rotating order within each repetition."""
    names = list(variants)
    results: dict[str, list[T]] = {name: [] for name in names}
    for repetition in range(repetitions):
        for name in names[repetition % len(names):] + names[: repetition % len(names)]:
            results[name].append(variants[name]())
    return results


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
