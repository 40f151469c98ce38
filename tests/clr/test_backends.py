"""The library on Keras's other backends, JAX and PyTorch, each in a process of its own (`KERAS_BACKEND` is read at
import): the schedules and momentum optimizers (no warning, the same LR as the numpy oracle at every iteration, a
`.keras` file that reloads, a momentum that follows its schedule), the seed article's callbacks and the recorder
polled from another thread, each training as on TensorFlow (this process) from the same weights. TensorFlow's own
are the rest of tests/clr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ITERATIONS = np.r_[np.arange(80), np.arange(100_000, 100_040), np.arange(16_000_000, 16_000_020)]


def checks(folder: str) -> dict:
    """What the test asserts, measured on this process's backend (the schedules' warnings are errors)."""
    import warnings

    import keras

    from clr.keras_momentum import ScheduledMomentumSGD
    from clr.keras_schedule import (
        ConstantSchedule,
        CosineRestartsSchedule,
        CyclicalSchedule,
        OneCycleMomentumSchedule,
        OneCycleSchedule,
    )
    from clr.policies import constant_lr, cosine_restarts_lr, one_cycle_lr, one_cycle_momentum
    from clr.schedules import cyclical_lr

    def worst(in_graph, oracle, iterations, scale):  # the largest error, relative to `scale`
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # JAX's "float64 ... truncated to float32", say
            values = np.array([float(in_graph(int(it))) for it in iterations])
        return float(np.max(np.abs(values - oracle(iterations)) / scale))

    short = np.arange(1000)
    out = {"backend": keras.backend.backend(), "cyclical": max(
        worst(CyclicalSchedule(1e-3, 6e-3, 9, mode, gamma, shape), cyclical_lr(1e-3, 6e-3, 9, mode, gamma, shape),
              ITERATIONS, cyclical_lr(1e-3, 6e-3, 9, mode, gamma, shape)(ITERATIONS))
        for mode, gamma, shape in (("triangular", 1.0, "linear"), ("triangular2", 1.0, "parabolic"),
                                   ("exp_range", 0.995, "sinusoidal")))}
    out["peaked"] = max(worst(OneCycleSchedule(0.1, 1000), one_cycle_lr(0.1, 1000), short, 0.1),
                        worst(CosineRestartsSchedule(0.05, 10), cosine_restarts_lr(0.05, 10), short, 0.05),
                        worst(ConstantSchedule(0.03), constant_lr(0.03), short, 0.03))

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 6)).astype("float32"), rng.integers(0, 3, 64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    momentum = OneCycleMomentumSchedule(16, 0.8, 0.95)
    model.compile(ScheduledMomentumSGD(momentum, learning_rate=CyclicalSchedule(0.01, 0.1, 3)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    out["momentum"] = [float(keras.ops.convert_to_numpy(model.optimizer.momentum)),
                       float(one_cycle_momentum(16, 0.8, 0.95)(15))]
    path = f"{folder}/model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    out["reloaded_config"] = reloaded.optimizer._learning_rate.get_config() == {
        "base_lr": 0.01, "max_lr": 0.1, "step_size": 3, "mode": "triangular", "gamma": 1.0, "shape": "linear"}
    out["predictions"] = float(np.max(np.abs(reloaded.predict(x, verbose=0) - model.predict(x, verbose=0))))
    out["iterations"] = int(keras.ops.convert_to_numpy(reloaded.optimizer.iterations))
    return out


@pytest.fixture(scope="module", params=["jax", "torch"])
def on_backend(request, tmp_path_factory) -> dict:
    """Everything measured on one backend, in one process of its own."""
    folder = tmp_path_factory.mktemp(request.param)
    return run_on(request.param, f"checks({str(folder)!r}) | callbacks_flow() | recorder_flow()")


def test_the_schedules_and_momentum_optimizers_run_on_every_backend(on_backend):
    out = on_backend
    assert out["backend"] in ("jax", "torch")
    assert out["cyclical"] < 1e-6  # relative: the cycle's position is exact even in JAX's float32, at 16M steps
    assert out["peaked"] < (1e-6 if out["backend"] == "torch" else 1e-5)  # of the peak rate; JAX computes in float32
    momentum, expected = out["momentum"]
    assert momentum == pytest.approx(expected, rel=1e-6)  # set at the last of 16 steps
    assert out["reloaded_config"] and out["predictions"] < 1e-6 and out["iterations"] == 16


def small_model(rng):
    """A small classifier with weights drawn by numpy: the same on every backend."""
    import keras

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.set_weights([rng.normal(0, 0.5, weight.shape).astype("float32") for weight in model.get_weights()])
    return model


def callbacks_flow() -> dict:
    """The seed article's flow on this process's backend: `LRFinder`, then `CyclicLR` from the same weights."""
    import keras

    from clr.callbacks import CyclicLR, LRFinder

    rng = np.random.default_rng(0)
    x, y = rng.random((96, 6)).astype("float32"), rng.integers(0, 3, 96)
    model = small_model(rng)
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first_batch = float(model.evaluate(x[:8], y[:8], batch_size=8, verbose=0))
    finder = LRFinder(1e-4, 1.0, steps=24)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[finder])
    cyclic = CyclicLR(0.01, 0.1, step_size=6)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[cyclic])
    return {"finder_losses": finder.losses, "first_batch": first_batch, "finder_lrs": finder.lrs[:3],
            "clr_iterations": cyclic.history["iterations"], "clr_lrs": cyclic.history["lr"],
            "clr_losses": cyclic.history["loss"]}


def recorder_flow() -> dict:
    """An in-graph schedule at `steps_per_execution=4`, its points polled from another thread while `fit` runs."""
    import threading

    import keras

    from clr.keras_schedule import CyclicalSchedule
    from clr.recording import IterationRecorder

    class Points(IterationRecorder):
        def on_train_begin(self, logs=None):
            self.points = []
            super().on_train_begin(logs)
            self.polls = threading.Thread(target=self.poll_until_done)
            self.done = threading.Event()
            self.polls.start()

        def poll_until_done(self):
            while not self.done.wait(0.001):
                self.poll()

        def on_train_end(self, logs=None):
            self.done.set()
            self.polls.join()
            super().on_train_end(logs)

        def on_iterations(self, iterations, lrs, losses, accuracies):
            self.points += zip(iterations.tolist(), lrs.tolist(), losses.tolist(), strict=True)

    rng = np.random.default_rng(1)
    x, y = rng.random((96, 6)).astype("float32"), rng.integers(0, 3, 96)
    model = small_model(rng)
    model.compile(keras.optimizers.SGD(CyclicalSchedule(0.01, 0.1, 5)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=1 if keras.backend.backend() == "torch" else 4)  # PyTorch's must be 1
    recorder = Points()
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[recorder])
    iterations, lrs, losses = zip(*recorder.points, strict=True)
    return {"spe_iterations": iterations, "spe_lrs": lrs, "spe_losses": losses, "spe_metrics": model.metrics_names}


def run_on(backend: str, call: str) -> dict:
    code = f"import json; from tests.clr.test_backends import *; print(json.dumps({call}))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=os.environ | {"KERAS_BACKEND": backend})
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def on_tensorflow() -> dict:
    return callbacks_flow() | recorder_flow()  # this process's backend


def test_the_seed_articles_flow_and_the_recorder_run_on_every_backend_as_on_tensorflow(on_backend, on_tensorflow):
    from clr.schedules import cyclical_lr, range_sweep

    out = on_backend
    assert len(out["finder_losses"]) == 24
    assert out["finder_lrs"] == pytest.approx(range_sweep(1e-4, 1.0, 24)[:3].tolist())
    assert out["finder_losses"][0] == pytest.approx(out["first_batch"], rel=1e-5)  # batch 0's own loss, no running mean
    assert out["clr_losses"][0] == pytest.approx(out["first_batch"], rel=1e-5)  # LRFinder put the weights back
    assert out["clr_iterations"] == list(range(24))
    np.testing.assert_allclose(out["clr_lrs"], cyclical_lr(0.01, 0.1, 6)(np.arange(24)), rtol=1e-6)
    # The same weights and LRs as on TensorFlow, so the same losses: each step trained at the LR the callback set
    np.testing.assert_allclose(out["finder_losses"], on_tensorflow["finder_losses"], rtol=1e-4)
    np.testing.assert_allclose(out["clr_losses"], on_tensorflow["clr_losses"], rtol=1e-4)

    assert out["spe_iterations"] == list(range(36))  # every step once, in order, polled while fit ran
    np.testing.assert_allclose(out["spe_lrs"], cyclical_lr(0.01, 0.1, 5)(np.arange(36)), rtol=1e-6)
    np.testing.assert_allclose(out["spe_losses"], on_tensorflow["spe_losses"], rtol=1e-4)
    assert out["spe_metrics"] == on_tensorflow["spe_metrics"] == ["loss"]  # the ring adds no metric of its own
