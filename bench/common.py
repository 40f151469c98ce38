"""What the benchmarks share: a real Redis for the run, interleaved timing, markdown tables."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from api.stack import free_port, start_redis, stop
from worker.store import JobStore


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


def interleaved_medians(variants: dict[str, Callable[[], object]], repetitions: int) -> dict[str, float]:
    """Median seconds of each variant, the variants run in rotating order within each repetition."""
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repetition in range(repetitions):
        for name in names[repetition % len(names):] + names[: repetition % len(names)]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
