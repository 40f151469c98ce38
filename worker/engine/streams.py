"""The recording callbacks of a job's `fit`, streaming every iteration to the job, and the worker's training loop."""

from __future__ import annotations

import keras
import numpy as np

from clr.callbacks import LRFinder
from clr.recording import IterationRecorder
from worker.engine.data import Split
from worker.engine.data_order import SeededEpochs
from worker.reporting import JobReporter


class StreamsToJob:
    """Mixin for an `IterationRecorder`: streams the points it polls to the job and stops training when the reporter
    says so (a cancel, a lost claim, a fatal reporting error)."""

    def __init__(self, reporter: JobReporter, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reporter = reporter

    def on_iterations(self, iterations, lrs, losses, accuracies):
        super().on_iterations(iterations, lrs, losses, accuracies)
        self.reporter.push(iterations, lrs, losses, accuracies)
        if self.reporter.should_stop():
            self.trained.stop_training = True

    def on_skipped(self, iterations):
        super().on_skipped(iterations)
        self.reporter.skipped(iterations)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.reporter.epoch_done(epoch + 1, logs or {})


class RangeTestStream(StreamsToJob, LRFinder):
    """`LRFinder` streaming to the job."""


class TrainingStream(StreamsToJob, IterationRecorder):
    """Polled by the reporter's thread, so Keras keeps dispatching batch ends asynchronously; stops training at
    the first non-finite loss of a step that was not skipped (mixed precision skips one whose gradients overflow),
    remembering where. `close()` takes the last points even when `fit` raised."""

    divergence: tuple[int, float] | None = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.skipped: set[int] = set()

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.reporter.watch(self)

    def on_skipped(self, iterations):
        super().on_skipped(iterations)
        self.skipped.update(iterations)

    def close(self) -> None:
        """Stop being polled by the reporter and hand it the last points (idempotent)."""
        if self in self.reporter.watched:
            self.reporter.unwatch(self)
            self.poll()

    def on_train_end(self, logs=None):
        self.close()
        super().on_train_end(logs)

    def on_iterations(self, iterations, lrs, losses, accuracies):
        super().on_iterations(iterations, lrs, losses, accuracies)
        bad = np.flatnonzero(~np.isfinite(losses) & ~np.isin(iterations, list(self.skipped)))
        if len(bad) and self.divergence is None:
            self.divergence = (int(iterations[bad[0]]), float(lrs[bad[0]]))
            self.trained.stop_training = True


def train_recorded(model: keras.Model, data: Split, batch_size: int, epochs: int, reporter: JobReporter,
                   extra_callbacks: tuple = (), data_seed: int = 0, start_iteration: int = 0,
                   stream_class: type[TrainingStream] = TrainingStream) -> TrainingStream:
    """The worker's training loop: `fit` from `start_iteration` (a checkpoint's) to the end of `epochs`, every
    iteration streamed to the job through `reporter`, the batches in the order `data_seed` fixes. A start inside an
    epoch first finishes that epoch in a `fit` of its own. Extra callbacks come first (a checkpoint restores before
    the recording starts)."""
    order = SeededEpochs(data.x, data.y, batch_size, data_seed)
    stream = stream_class(reporter=reporter)
    epoch, done = divmod(start_iteration, order.per_epoch)
    segments = [(order.rest_of_epoch(epoch, done), epoch, epoch + 1)] if done else []
    segments.append((order.epochs(), epoch + 1 if done else epoch, epochs))
    try:
        for batches, first_epoch, end_epoch in segments:
            if first_epoch < end_epoch and stream.divergence is None and not reporter.should_stop():
                model.fit(batches, initial_epoch=first_epoch, epochs=end_epoch, shuffle=False,
                          validation_data=data.validation,
                          callbacks=[order, *extra_callbacks, stream], verbose=0)
            if model.stop_training:
                break
    finally:
        stream.close()
    return stream
