"""The library on JAX and PyTorch trains as on TensorFlow: the seed article's callbacks and the recorder polled from
another thread, each backend in a process of its own (`KERAS_BACKEND` is read at import), from the same weights
as TensorFlow in this one, give the same losses and rates. tests/clr's other Keras tests run on each too, in a
pytest of its own."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import backends
from tests.backends import BACKEND

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(BACKEND != "tensorflow",
                                reason="compares the other backends with TensorFlow in this process")


@pytest.fixture(scope="module", params=["jax", "torch"])
def on_backend(request) -> dict:
    """The flows measured on one backend, in one process of its own."""
    return run_on(request.param, "callbacks_flow() | recorder_flow()")


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


BACKEND_SKIPS = {backends.tensorflow_only.kwargs["reason"], backends.several_steps_per_execution.kwargs["reason"]}


# tests/clr's files that use Keras; the others test numpy's and pydantic's code, the same on every backend
ON_KERAS = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests" / "clr").glob("test_*.py")
                  if "keras" in path.read_text() and path.name != "test_backends.py")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_library_suite_passes_on_each_backend(backend):
    """tests/clr's Keras tests in a pytest of its own on `backend` (with no conftest: they need none of the session's
    services), skipping only what tests/backends.py says that backend lacks."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    run = subprocess.run([sys.executable, "-m", "pytest", *ON_KERAS, "-q", "-n", "0", "-p", "no:cacheprovider",
                          "--noconftest"], capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env=env | {"KERAS_BACKEND": backend, "CLR_KERAS_BACKEND": backend,
                                    "MPLBACKEND": "Agg"})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    skips = re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", run.stdout, re.MULTILINE)
    assert set(skips) <= BACKEND_SKIPS, skips
    assert int(re.search(r"(\d+) passed", run.stdout.splitlines()[-1]).group(1)) > 60
