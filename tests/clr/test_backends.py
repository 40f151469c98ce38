"""The library on Keras's other backends, JAX and PyTorch, each in a process of its own (`KERAS_BACKEND` is read at
import): the schedules and momentum optimizers (no warning, the same LR as the numpy oracle at every iteration, a
`.keras` file that reloads, a momentum that follows its schedule) and, on PyTorch, the seed article's callbacks.
TensorFlow's are the rest of tests/clr."""

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


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_schedules_and_momentum_optimizers_run_on_every_backend(backend, tmp_path):
    out = run_on(backend, f"checks({str(tmp_path)!r})")
    assert out["backend"] == backend
    assert out["cyclical"] < 1e-6  # relative: the cycle's position is exact even in JAX's float32, at 16M steps
    assert out["peaked"] < (1e-6 if backend == "torch" else 1e-5)  # of the peak rate; JAX computes in float32
    momentum, expected = out["momentum"]
    assert momentum == pytest.approx(expected, rel=1e-6)  # set at the last of 16 steps
    assert out["reloaded_config"] and out["predictions"] < 1e-6 and out["iterations"] == 16


def callbacks_flow() -> dict:
    """The seed article's flow on this process's backend: `LRFinder`, then `CyclicLR` from the same weights."""
    import keras

    from clr.callbacks import CyclicLR, LRFinder

    rng = np.random.default_rng(0)
    x, y = rng.random((96, 6)).astype("float32"), rng.integers(0, 3, 96)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first_batch = float(model.evaluate(x[:8], y[:8], batch_size=8, verbose=0))
    finder = LRFinder(1e-4, 1.0, steps=24)
    try:
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[finder])
    except NotImplementedError as error:
        return {"refused": str(error)}
    cyclic = CyclicLR(0.01, 0.1, step_size=6)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[cyclic])
    return {"finder_losses": len(finder.losses), "finder_first": finder.losses[0], "first_batch": first_batch,
            "finder_lrs": finder.lrs[:3], "clr_iterations": cyclic.history["iterations"],
            "clr_lrs": cyclic.history["lr"], "clr_first": cyclic.history["loss"][0]}


def run_on(backend: str, call: str) -> dict:
    code = f"import json; from tests.clr.test_backends import *; print(json.dumps({call}))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=os.environ | {"KERAS_BACKEND": backend})
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_seed_articles_flow_records_the_true_loss_of_every_batch_on_pytorch():
    from clr.schedules import cyclical_lr, range_sweep

    out = run_on("torch", "callbacks_flow()")
    assert out["finder_losses"] == 24 and out["finder_lrs"] == pytest.approx(range_sweep(1e-4, 1.0, 24)[:3].tolist())
    assert out["finder_first"] == pytest.approx(out["first_batch"], rel=1e-5)  # batch 0's own loss, no running mean
    assert out["clr_first"] == pytest.approx(out["first_batch"], rel=1e-5)  # LRFinder put the weights back
    assert out["clr_iterations"] == list(range(24))
    np.testing.assert_allclose(out["clr_lrs"], cyclical_lr(0.01, 0.1, 6)(np.arange(24)), rtol=1e-6)


def test_the_recorder_says_it_does_not_record_on_jax_yet():
    assert "records on the tensorflow and torch backends, not on 'jax'" in run_on("jax", "callbacks_flow()")["refused"]
