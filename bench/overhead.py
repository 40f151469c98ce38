"""Training overhead of the worker's path (in-graph CLR, every iteration recorded and streamed to Redis) against
plain `fit` and against a per-batch Python callback, at steps_per_execution 1 and at the baseline's fastest.

Each run trains a fresh model; the time measured runs from the end of its first epoch (tracing and XLA compilation
done) to the end of training, taken by a callback with epoch hooks only, which leaves batch dispatch untouched."""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from bench.common import claimed_job, interleaved_runs, redis_store, table  # noqa: E402
from clr import models  # noqa: E402
from clr.datasets import synthetic_images  # noqa: E402
from clr.keras_schedule import CyclicalSchedule  # noqa: E402
from clr.schedules import cyclical_lr  # noqa: E402
from worker.jobs import Split, train_recorded  # noqa: E402
from worker.reporting import JobReporter  # noqa: E402
from worker.settings import Settings  # noqa: E402

BATCH = 32
CLR = {"base_lr": 0.001, "max_lr": 0.01, "step_size": 500}


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
    """Seconds from the end of the first epoch to the end of training."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.start = time.perf_counter()

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.start


class Bench:
    """One model and data set; each variant trains a fresh model and returns (timed seconds, iterations recorded)."""

    def __init__(self, build, data, epochs: int, store) -> None:
        self.build, self.data, self.epochs, self.store = build, data, epochs, store
        self.steps = epochs * (len(data.x_train) // BATCH)
        self.timed_steps = self.steps - len(data.x_train) // BATCH

    def _model(self, learning_rate, steps_per_execution: int) -> keras.Model:
        keras.utils.set_random_seed(0)
        model = self.build(self.data.input_shape, self.data.num_classes)
        model.compile(keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy",
                      steps_per_execution=steps_per_execution)
        return model

    def _fit(self, model: keras.Model, callbacks: list, epochs: int | None = None) -> None:
        model.fit(self.data.x_train, self.data.y_train, batch_size=BATCH, epochs=epochs or self.epochs, verbose=0,
                  callbacks=callbacks)

    def baseline(self, steps_per_execution: int, epochs: int | None = None) -> tuple[float, int]:
        timer = SteadyStateTimer()
        self._fit(self._model(0.01, steps_per_execution), [timer], epochs)
        return timer.seconds, 0

    def anchor(self, steps_per_execution: int) -> tuple[float, int]:
        callback, timer = PerBatchPythonCallback(), SteadyStateTimer()
        self._fit(self._model(0.01, steps_per_execution), [callback, timer])
        return timer.seconds, len(callback.history["loss"])

    def ours(self, steps_per_execution: int) -> tuple[float, int]:
        model, timer = self._model(CyclicalSchedule(**CLR), steps_per_execution), SteadyStateTimer()
        job_id, attempt = claimed_job(self.store)
        with JobReporter(self.store, job_id, attempt, Settings()) as reporter:
            train_recorded(model, Split(self.data.x_train, self.data.y_train, None, self.data), BATCH, self.epochs,
                           reporter, extra_callbacks=[timer])
        recorded = len(self.store.curve(job_id).iterations)
        self.store.delete(job_id)
        return timer.seconds, recorded


def fastest_steps_per_execution(bench: Bench, candidates=(1, 2, 4, 8, 16, 32, 64)) -> tuple[int, dict[int, float]]:
    """The baseline's fastest `steps_per_execution`: one epoch timed after one warm-up epoch for each candidate."""
    seconds = {candidate: bench.baseline(candidate, epochs=2)[0] for candidate in candidates}
    return min(seconds, key=seconds.get), seconds


def interleaved(bench: Bench, spe: int, repetitions: int) -> dict[str, tuple[float, int]]:
    """Median timed seconds and the fewest iterations recorded, variants interleaved."""
    runs = interleaved_runs({"baseline": lambda: bench.baseline(spe), "ours": lambda: bench.ours(spe),
                             "anchor": lambda: bench.anchor(spe)}, repetitions)
    return {name: (statistics.median(s for s, _ in values), min(r for _, r in values)) for name, values in runs.items()}


def measure(name: str, bench: Bench, repetitions: int) -> list[list[object]]:
    best, search = fastest_steps_per_execution(bench)
    print(f"{name}: baseline seconds for one epoch by steps_per_execution: "
          + ", ".join(f"{k}: {v:.3f}" for k, v in search.items()), flush=True)
    rows = []
    for spe in sorted({1, best}):
        result = interleaved(bench, spe, repetitions)
        baseline = result["baseline"][0]
        rows.append([name, spe, f"{bench.timed_steps} of {bench.steps}", f"{baseline:.3f}",
                     f"{result['ours'][0] / baseline:.3f}", f"{result['anchor'][0] / baseline:.3f}",
                     f"{result['ours'][1]} / {bench.steps}", f"{result['anchor'][1]} / {bench.steps}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the default number of steps")
    args = parser.parse_args()
    mlp_data = synthetic_images(max(64, int(6_400 * args.scale)), (28, 28, 1))
    cnn_data = synthetic_images(max(64, int(640 * args.scale)), (28, 28, 1))
    rows = []
    with redis_store() as (store, _):
        rows += measure("MLP (64 hidden)", Bench(models.mlp, mlp_data, 4, store), args.repetitions)
        rows += measure("seed CNN", Bench(models.seed_cnn, cnn_data, 4, store), args.repetitions)
    print()
    print(table(["model", "steps_per_execution", "steps timed", "baseline s (median)", "ours / baseline",
                 "anchor / baseline", "ours: iterations recorded", "anchor: batch callbacks seen"], rows))


if __name__ == "__main__":
    main()
