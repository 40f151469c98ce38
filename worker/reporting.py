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
import redis

from worker.settings import Settings
from worker.store import JobStore, LostClaim, through_redis_failures

log = logging.getLogger(__name__)
Batch = tuple[int, np.ndarray, np.ndarray, np.ndarray | None]  # first iteration, LRs, losses, accuracies or None


def finite_or_none(value: Any) -> float | None:
    """A metric as JSON can hold it: non-finite values become None."""
    number = float(value)
    return number if math.isfinite(number) else None


class JobReporter:
    """Collects points from the training thread; a daemon thread writes them every `flush_interval_s`.

    Points stay queued until a write of them succeeded, and each is written at its own iteration's offset, so a
    failed or repeated write neither loses nor shifts any. Written points are kept for `RETAIN_S` more seconds of
    working Redis: a Redis restarted from its append-only file may have lost the last second of writes, and the
    store's stored length says so. Every write is fenced by the claim's `attempt`: once the job is taken over or
    deleted, `lost` is set and training is asked to stop. A failure that is not a passing Redis error (a recorder
    overrun, say) is kept in `fatal` and also stops training. `drain_requested` is set when `worker` shuts down.
    """

    RETAIN_S = 30.0

    def __init__(self, store: JobStore, job_id: str, attempt: int, settings: Settings, worker: str = "") -> None:
        self.store, self.job_id, self.attempt, self.settings, self.worker = store, job_id, attempt, settings, worker
        self.phase = ""  # the curve written: the training's, or `range_test` while a training runs its own first
        self._progress_from = 0
        self.cancel_requested = threading.Event()
        self.drain_requested = threading.Event()
        self.lost = threading.Event()
        self.fatal: Exception | None = None
        self._lock = threading.Lock()
        self._pending: list[Batch] = []
        self._written: list[tuple[float, *Batch]] = []
        self._once_stored: list[tuple[int, Callable[[], None]]] = []
        self._progress: dict[str, Any] = {}
        self._history: list[dict[str, float | None]] = []
        self._history_written = 0
        self._skipped: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reporter-{job_id}", daemon=True)
        self._cancel_seen_at: float | None = None
        self._sources: list = []

    def __enter__(self) -> JobReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.lost.is_set():
            return
        try:
            through_redis_failures(self.flush, self.settings.stale_after_s)
        except LostClaim:
            self.lost.set()

    def should_stop(self) -> bool:
        """Whether training must stop: a cancel, a lost claim or a fatal reporting error."""
        return self.cancel_requested.is_set() or self.lost.is_set() or self.fatal is not None

    def start_phase(self, phase: str, fresh: bool = False, progress_from: int = 0) -> None:
        """Write what is queued, then write to the curve of `phase` ("" for the training's own), emptied first when
        `fresh`; the job's progress counts its iterations from `progress_from`."""
        through_redis_failures(self.flush, self.settings.stale_after_s)
        if fresh:
            through_redis_failures(lambda: self.store.restart_curve(self.job_id, self.attempt, phase),
                                   self.settings.stale_after_s)
        with self._lock:
            self.phase, self._progress_from = phase, progress_from
            self._written.clear()

    def resume(self, iteration: int, epoch: int = 0, history: list[dict[str, float | None]] = ()) -> int:
        """Start the attempt at `iteration` (a checkpoint's; 0 for a fresh start): cut the stored curve back to it
        and take over the epoch history. Returns the iteration started at: 0 when the curve lost points before
        `iteration`, which the caller must then start over from."""
        kept = through_redis_failures(
            lambda: self.store.resume(self.job_id, self.attempt, iteration, epoch, list(history), self.phase),
            self.settings.stale_after_s)
        if kept < iteration:
            log.warning("Job %s: the curve holds %s of the checkpoint's %s points; starting over", self.job_id,
                        kept, iteration)
            return self.resume(0)
        earlier = self.recorded().get("skipped_iterations") or []
        with self._lock:
            self._history, self._history_written = list(history), len(history)
            self._skipped = [skipped for skipped in earlier if skipped < iteration]
            if earlier:
                self._progress["skipped_iterations"] = list(self._skipped)
        return iteration

    def recorded(self) -> dict[str, Any]:
        """The job's record as stored now (what earlier attempts left), riding out Redis failures."""
        return through_redis_failures(lambda: self.store.get(self.job_id) or {}, self.settings.stale_after_s)

    def once_stored(self, iteration: int, action: Callable[[], None]) -> None:
        """Run `action` (in the reporter's thread) once the stored curve holds `iteration` points: a checkpoint
        counts only when the curve reaches it."""
        with self._lock:
            self._once_stored.append((iteration, action))

    @property
    def watched(self) -> list:
        """The recorders polled before each flush."""
        return list(self._sources)

    def watch(self, recorder) -> None:
        """Poll `recorder` (an `IterationRecorder` that pushes here) before each flush while training runs, and stop
        its model's training if reporting fails for good."""
        self._sources.append(recorder)

    def unwatch(self, recorder) -> None:
        """Stop polling `recorder`."""
        self._sources.remove(recorder)

    def push(self, iterations: np.ndarray, lrs: np.ndarray, losses: np.ndarray,
             accuracies: np.ndarray | None = None) -> None:
        """Queue points of consecutive iterations (with their batches' accuracies, where a range test records
        them)."""
        with self._lock:
            self._pending.append((int(iterations[0]), lrs, losses, accuracies))
            self._progress["iteration"] = self._progress_from + int(iterations[-1]) + 1

    def skipped(self, iterations: list[int]) -> None:
        """Queue steps of the job's curve that mixed precision's loss scaling skipped (the job's
        `skipped_iterations`, kept across resumes)."""
        with self._lock:
            self._skipped += iterations
            self._progress["skipped_iterations"] = list(self._skipped)

    def set_progress(self, **progress: Any) -> None:
        """Queue fields for the next write: progress such as `total_iterations`, `epoch`, `epochs`, or a phase's
        outcome (dicts and lists as JSON)."""
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
        """Write what is queued (points, progress, epoch history, heartbeat) in one fenced write; drop it from the
        queue only once written. Raises what the write raised (`LostClaim` included)."""
        with self._lock:
            pending, progress, phase = list(self._pending), dict(self._progress), self.phase
            history = list(self._history) if len(self._history) > self._history_written else None
        fields: dict[str, Any] = progress | ({"epoch_history": history} if history is not None else {})
        if pending:
            first = pending[0][0]
            lrs, losses = (np.concatenate([batch[index] for batch in pending]) for index in (1, 2))
            accuracies = None if pending[0][3] is None else np.concatenate([batch[3] for batch in pending])
            stored = self.store.report(self.job_id, self.attempt, first, lrs, losses, phase, accuracies, **fields)
            if stored < first:
                return self._write_again_from(stored)
        else:
            stored = self.store.report(self.job_id, self.attempt, phase=phase, **fields)
        now = time.monotonic()
        with self._lock:
            due = [action for iteration, action in self._once_stored if iteration <= stored]
            self._once_stored = [(iteration, action) for iteration, action in self._once_stored if iteration > stored]
            del self._pending[: len(pending)]
            self._written = [batch for batch in self._written if batch[0] > now - self.RETAIN_S]
            self._written += [(now, *batch) for batch in pending]
            for name, value in progress.items():
                if self._progress.get(name) == value:
                    del self._progress[name]
            if history is not None:
                self._history_written = len(history)
        for action in due:
            action()

    def _write_again_from(self, stored: int) -> None:
        """Queue again the written points from iteration `stored` on, which Redis lost."""
        with self._lock:
            kept = [batch for _, *batch in self._written if batch[0] + len(batch[1]) > stored]
            if not kept or kept[0][0] > stored:
                raise RuntimeError(f"Redis lost the curve from iteration {stored} on, beyond what this runner kept")
            first, *columns = kept[0]
            kept[0] = (stored, *(None if column is None else column[stored - first:] for column in columns))
            self._pending[:0] = kept
            self._written.clear()
        log.warning("Job %s: Redis lost the curve from iteration %s on; writing it again", self.job_id, stored)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.flush_interval_s):
            try:
                for recorder in self.watched:
                    recorder.poll()
                self.flush()
                self._watch_cancel()
            except LostClaim:
                log.error("Job %s was taken over or deleted: this runner stops", self.job_id)
                self.lost.set()
                return self._stop_training()
            except redis.RedisError:  # passing: the next flush retries
                log.exception("Reporting job %s failed; retrying", self.job_id)
            except Exception as error:  # the recorder overran, or worse: retrying cannot help
                log.exception("Reporting job %s failed for good", self.job_id)
                self.fatal = error
                return self._stop_training()

    def _stop_training(self) -> None:
        for recorder in self.watched:
            recorder.model.stop_training = True

    def _watch_cancel(self) -> None:
        if self.worker and self.store.workers.draining(self.worker):
            self.drain_requested.set()
        if self._cancel_seen_at is None and self.store.cancel_requested(self.job_id):
            self._cancel_seen_at = time.monotonic()
            self.cancel_requested.set()
        seen_at = self._cancel_seen_at
        overdue = seen_at is not None and time.monotonic() - seen_at > self.settings.cancel_grace_s
        if overdue and self._sources:  # only while training runs: loading, compiling and evaluating end by themselves
            log.error("Job %s did not stop within %ss of its cancel: ending the process", self.job_id,
                      self.settings.cancel_grace_s)
            self.flush()
            self.store.finish(self.job_id, self.attempt, "cancelled",
                              error=f"Cancelled by force: training did not stop within {self.settings.cancel_grace_s}s")
            os._exit(1)
