"""A job's reporter: a background thread that polls the in-graph recorder, streams curves, progress and
heartbeats to Redis and watches for a cancel, so the training thread does no reporting work at all."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from worker.settings import Settings
from worker.store import JobStore

log = logging.getLogger(__name__)


def finite_or_none(value: Any) -> float | None:
    """A metric as JSON can hold it: non-finite values become None."""
    number = float(value)
    return number if math.isfinite(number) else None


class JobReporter:
    """Collects points from the training thread; a daemon thread writes them every `flush_interval_s`."""

    def __init__(self, store: JobStore, job_id: str, runner: str, settings: Settings) -> None:
        self.store, self.job_id, self.runner, self.settings = store, job_id, runner, settings
        self.cancel_requested = threading.Event()
        self._lock = threading.Lock()
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._progress: dict[str, int] = {}
        self._history: list[dict[str, float | None]] = []
        self._history_written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reporter-{job_id}", daemon=True)
        self._cancel_seen_at: float | None = None
        self._sources: list[Callable[[], int]] = []

    def __enter__(self) -> JobReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()

    def watch(self, poll: Callable[[], int]) -> None:
        """Call `poll` before each flush (an `IterationRecorder.poll` that pushes here)."""
        self._sources.append(poll)

    def unwatch(self, poll: Callable[[], int]) -> None:
        """Stop calling `poll`."""
        self._sources.remove(poll)

    def push(self, iterations: np.ndarray, lrs: np.ndarray, losses: np.ndarray) -> None:
        """Queue points of consecutive iterations."""
        with self._lock:
            self._pending.append((lrs, losses))
            self._progress["iteration"] = int(iterations[-1]) + 1

    def set_progress(self, **progress: int) -> None:
        """Queue progress fields such as `total_iterations`, `epoch`, `epochs`."""
        with self._lock:
            self._progress.update(progress)

    def epoch_done(self, epoch: int, logs: dict[str, Any]) -> None:
        """Queue one epoch's metrics."""
        with self._lock:
            self._history.append({name: finite_or_none(value) for name, value in logs.items()})
            self._progress["epoch"] = epoch

    @property
    def history(self) -> list[dict[str, float | None]]:
        """Per-epoch metrics so far."""
        with self._lock:
            return list(self._history)

    def flush(self) -> None:
        """Write what is queued: the curve in one APPEND, then progress and heartbeat."""
        with self._lock:
            pending, self._pending = self._pending, []
            progress, self._progress = self._progress, {}
            history = self._history if len(self._history) > self._history_written else None
            self._history_written = len(self._history)
        if pending:
            self.store.append_curve(self.job_id, np.concatenate([p[0] for p in pending]), np.concatenate([p[1] for p in pending]))
        self.store.update(self.job_id, heartbeat_at=time.time(), **progress)
        if history is not None:
            self.store.set_json(self.job_id, epoch_history=history)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.flush_interval_s):
            try:
                for poll in list(self._sources):
                    poll()
                self.flush()
                self._watch_cancel()
            except Exception:  # a Redis hiccup must not kill the job; the next flush retries
                log.exception("Reporting job %s failed", self.job_id)

    def _watch_cancel(self) -> None:
        if self._cancel_seen_at is None and self.store.cancel_requested(self.job_id):
            self._cancel_seen_at = time.monotonic()
            self.cancel_requested.set()
        if self._cancel_seen_at is not None and time.monotonic() - self._cancel_seen_at > self.settings.cancel_grace_s:
            log.error("Job %s did not stop within %ss of its cancel: ending the process", self.job_id,
                      self.settings.cancel_grace_s)
            self.flush()
            self.store.finish(self.job_id, self.runner, "cancelled",
                              error=f"Cancelled by force: training did not stop within {self.settings.cancel_grace_s}s")
            os._exit(1)
