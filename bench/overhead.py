"""Training overhead of the worker's path (in-graph CLR, every iteration recorded and streamed to a real Redis)
against plain `fit`, and of a per-batch Python callback (the anchor) the same way, at steps_per_execution 1 and at
the baseline's fastest, with bootstrap 95 % confidence intervals.

Each run trains a fresh model; the time measured runs from the end of its first epoch (tracing and compilation
done) to the end of training, taken by a callback with epoch hooks only, which leaves batch dispatch untouched.
The number of epochs is chosen so that the baseline's timed part lasts about `--seconds`. The three variants run
interleaved, in rotating order, `--repetitions` times; each ratio is taken within one repetition
(ours_i / baseline_i), and the table gives the median of these ratios with its confidence interval, for the
wall-clock time (what a user waits; the target) and for the process's CPU time (less sensitive to other work on a
shared machine, blind to time spent waiting)."""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from bench.common import claimed_job, interleaved_runs, median_ratio, redis_store, table  # noqa: E402
from clr import models  # noqa: E402
from clr.datasets import Dataset, synthetic_images  # noqa: E402
from clr.keras_schedule import CyclicalSchedule  # noqa: E402
from clr.schedules import cyclical_lr  # noqa: E402
from worker.engine.data import Split  # noqa: E402
from worker.engine.streams import train_recorded  # noqa: E402
from worker.reporting import JobReporter  # noqa: E402
from worker.settings import Settings  # noqa: E402

BATCH = 32
CLR = {"base_lr": 0.001, "max_lr": 0.01, "step_size": 500}
TARGET = 1.03  # the upper end of ours / baseline's interval
HEADER = ["model", "steps_per_execution", "steps timed", "baseline s (range)", "ours / baseline, wall [95% CI]",
          f"target: CI upper end <= {TARGET}", "ours / baseline, CPU [95% CI]", "anchor / baseline, wall [95% CI]",
          "anchor / baseline, CPU [95% CI]", "ours: iterations recorded", "anchor: batch callbacks seen"]


def resnet(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """A real-size model: ResNet50V2 (23.5 M parameters), untrained."""
    return keras.applications.ResNet50V2(weights=None, input_shape=input_shape, classes=num_classes)


@dataclass(frozen=True)
class Workload:
    """A model on synthetic images: `samples` make one epoch; `candidates` are the steps_per_execution searched."""

    name: str
    build: Callable[[tuple[int, ...], int], keras.Model]
    shape: tuple[int, ...]
    samples: int
    candidates: tuple[int, ...]


WORKLOADS = {
    "mlp": Workload("MLP (64 hidden)", models.mlp, (28, 28, 1), 6_400, (1, 2, 4, 8, 16, 32, 64)),
    "seed_cnn": Workload("seed CNN", models.seed_cnn, (28, 28, 1), 640, (1, 2, 4, 8, 16, 32, 64)),
    # About 5 s a step on 2 cores: dispatch (well under 1 ms) cannot matter, so only steps_per_execution 1.
    "resnet50v2": Workload("ResNet50V2, 32x32x3", resnet, (32, 32, 3), 32, (1,)),
}


class PerBatchPythonCallback(keras.callbacks.Callback):
    """The anchor: sets the LR from Python before each batch and records `logs` after it, as the seed article's
    callbacks do."""

    def __init__(self) -> None:
        super().__init__()
        self.schedule = cyclical_lr(**CLR)
        self.iteration = 0
        self.history: dict[str, list[float]] = {"lr": [], "loss": []}

    def on_train_batch_begin(self, batch, logs=None):
        lr = self.schedule(self.iteration)
        self.model.optimizer.learning_rate = lr
        self.history["lr"].append(lr)

    def on_train_batch_end(self, batch, logs=None):
        self.history["loss"].append(float(logs["loss"]))
        self.iteration += 1


class SteadyStateTimer(keras.callbacks.Callback):
    """Wall-clock and CPU seconds (this process's, every thread's) from the end of the first epoch to the end of
    training."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.start = time.perf_counter(), time.process_time()

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.start[0], time.process_time() - self.start[1]


class Bench:
    """One model and data set; each variant trains a fresh model for `epochs` and returns ((wall, CPU) seconds
    timed, iterations recorded)."""

    def __init__(self, build, data: Dataset, store) -> None:
        self.build, self.data, self.store = build, data, store
        self.per_epoch = math.ceil(len(data.x_train) / BATCH)

    def _model(self, learning_rate, steps_per_execution: int) -> keras.Model:
        keras.utils.set_random_seed(0)
        model = self.build(self.data.input_shape, self.data.num_classes)
        model.compile(keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy",
                      steps_per_execution=steps_per_execution)
        return model

    def _fit(self, model: keras.Model, callbacks: list, epochs: int) -> None:
        model.fit(self.data.x_train, self.data.y_train, batch_size=BATCH, epochs=epochs, verbose=0,
                  callbacks=callbacks)

    def baseline(self, steps_per_execution: int, epochs: int) -> tuple[tuple[float, float], int]:
        timer = SteadyStateTimer()
        self._fit(self._model(0.01, steps_per_execution), [timer], epochs)
        return timer.seconds, 0

    def anchor(self, steps_per_execution: int, epochs: int) -> tuple[tuple[float, float], int]:
        callback, timer = PerBatchPythonCallback(), SteadyStateTimer()
        self._fit(self._model(0.01, steps_per_execution), [callback, timer], epochs)
        return timer.seconds, len(callback.history["loss"])

    def ours(self, steps_per_execution: int, epochs: int) -> tuple[tuple[float, float], int]:
        model, timer = self._model(CyclicalSchedule(**CLR), steps_per_execution), SteadyStateTimer()
        job_id, attempt = claimed_job(self.store)
        with JobReporter(self.store, job_id, attempt, Settings()) as reporter:
            train_recorded(model, Split(self.data.x_train, self.data.y_train, None, self.data), BATCH, epochs,
                           reporter, extra_callbacks=[timer])
        recorded = len(self.store.curve(job_id).iterations)
        self.store.delete(job_id)
        return timer.seconds, recorded


def epoch_seconds(bench: Bench, candidates: tuple[int, ...]) -> dict[int, float]:
    """The baseline's seconds for one epoch (after a warm-up epoch) at each candidate `steps_per_execution`."""
    return {candidate: bench.baseline(candidate, epochs=2)[0][0] for candidate in candidates}


def measure(workload: Workload, bench: Bench, spe: int, epoch_s: float, seconds: float, repetitions: int
            ) -> list[object]:
    """One table row: the three variants interleaved, each for enough epochs to time about `seconds`."""
    epochs = 1 + max(1, math.ceil(seconds / epoch_s))
    runs = interleaved_runs({name: functools.partial(getattr(bench, name), spe, epochs)
                             for name in ("baseline", "ours", "anchor")}, repetitions)
    wall = {name: [timed[0] for timed, _ in values] for name, values in runs.items()}
    cpu = {name: [timed[1] for timed, _ in values] for name, values in runs.items()}
    ours = median_ratio(wall["ours"], wall["baseline"])
    steps = epochs * bench.per_epoch
    verdict = "met" if ours.high <= TARGET else f"missed by {ours.high - TARGET:.3f}"
    return [workload.name, spe, f"{steps - bench.per_epoch} of {steps}",
            f"{min(wall['baseline']):.2f}-{max(wall['baseline']):.2f}", ours, verdict,
            median_ratio(cpu["ours"], cpu["baseline"]), median_ratio(wall["anchor"], wall["baseline"]),
            median_ratio(cpu["anchor"], cpu["baseline"]),
            f"{min(recorded for _, recorded in runs['ours'])} / {steps}",
            f"{min(recorded for _, recorded in runs['anchor'])} / {steps}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="the baseline's timed part of a run, about")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each model's samples per epoch")
    parser.add_argument("--models", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--steps-per-execution", nargs="+", type=int,
                        help="the steps_per_execution searched (default: each model's; 1 on PyTorch)")
    args = parser.parse_args()
    rows = []
    started = time.perf_counter()
    print(f"Keras backend: {keras.backend.backend()} (KERAS_BACKEND; PyTorch runs one step per execution)", flush=True)
    with redis_store() as (store, _):
        for workload in (WORKLOADS[name] for name in args.models):
            data = synthetic_images(max(BATCH, int(workload.samples * args.scale)), workload.shape)
            bench = Bench(workload.build, data, store)
            candidates = args.steps_per_execution or workload.candidates
            search = epoch_seconds(bench, tuple(candidates) if keras.backend.backend() != "torch" else (1,))
            fastest = min(search, key=search.get)
            print(f"{workload.name}: baseline seconds for one epoch of {bench.per_epoch} steps by "
                  "steps_per_execution: " + ", ".join(f"{k}: {v:.3f}" for k, v in search.items()), flush=True)
            for spe in sorted({1, fastest}):
                rows.append(measure(workload, bench, spe, search[spe], args.seconds, args.repetitions))
                print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    print(f"\n{args.repetitions} repetitions, {time.perf_counter() - started:.0f} s\n")
    print(table(HEADER, rows))


if __name__ == "__main__":
    main()
