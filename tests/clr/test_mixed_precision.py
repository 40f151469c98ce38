"""Mixed precision's skipped steps: under Keras's own loss scaling a skipped step leaves `iterations` behind the
batch index; under `BatchCountingLossScaleOptimizer` every batch has its iteration, its rate on the schedule, and
the skipped one is reported (real `fit`, float16 on the CPU, an overflow forced by one batch)."""

import keras
import numpy as np
import pytest

from clr import models
from clr.callbacks import LRFinder
from clr.keras_schedule import CyclicalSchedule
from clr.mixed_precision import BatchCountingLossScaleOptimizer
from clr.recording import IterationRecorder
from clr.bounds import NoSuggestion, suggest_bounds
from clr.schedules import cyclical_lr
from tests.backends import tensorflow_only

BATCH, BATCHES, OVERFLOWING = 8, 12, 5


class Collect(IterationRecorder):
    def on_train_begin(self, logs=None):
        self.iterations, self.lrs, self.skipped = [], [], []
        super().on_train_begin(logs)

    def on_train_batch_end(self, batch, logs=None):
        self.poll()

    def on_iterations(self, iterations, lrs, losses, accuracies):
        self.iterations += iterations.tolist()
        self.lrs += lrs.tolist()

    def on_skipped(self, iterations):
        self.skipped += iterations


@pytest.fixture
def mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy("float32")


def fit(optimizer, recorder=None, batches=BATCHES) -> tuple[keras.Model, Collect]:
    rng = np.random.default_rng(0)
    x, y = rng.random((BATCH * batches, 6)).astype("float32"), rng.integers(0, 3, BATCH * batches)
    x[OVERFLOWING * BATCH:(OVERFLOWING + 1) * BATCH] *= 1e4  # its float16 weight gradients overflow once scaled
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    recorder = recorder or Collect()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[recorder])
    return model, recorder


def test_keras_loss_scaling_leaves_the_iteration_count_behind_the_batches(mixed_float16):
    model, _ = fit(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(CyclicalSchedule(0.01, 0.1, 4))))
    assert int(model.optimizer.iterations.numpy()) == BATCHES - 1  # the skipped step did not count


@tensorflow_only
def test_a_skipped_step_is_counted_reported_and_the_rate_stays_on_the_batch_index(mixed_float16):
    model, recorder = fit(BatchCountingLossScaleOptimizer(keras.optimizers.SGD(CyclicalSchedule(0.01, 0.1, 4))))
    assert model.dtype_policy.name == "mixed_float16"
    assert int(model.optimizer.iterations.numpy()) == BATCHES
    assert recorder.iterations == list(range(BATCHES))  # one point per batch: none lost, none written twice
    np.testing.assert_allclose(recorder.lrs, cyclical_lr(0.01, 0.1, 4)(np.arange(BATCHES)), rtol=1e-6)
    assert recorder.skipped == [OVERFLOWING]
    assert float(model.optimizer.dynamic_scale.numpy()) == 2.0**14  # halved once, by the overflow


@tensorflow_only
def test_a_keras_file_keeps_the_count_and_the_marks(mixed_float16, tmp_path):
    model, _ = fit(BatchCountingLossScaleOptimizer(keras.optimizers.SGD(CyclicalSchedule(0.01, 0.1, 4))))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded.optimizer, BatchCountingLossScaleOptimizer)
    assert int(reloaded.optimizer.iterations.numpy()) == BATCHES
    assert reloaded.optimizer.skipped_among(np.arange(BATCHES)) == [OVERFLOWING]


@tensorflow_only
def test_a_range_test_reads_its_curve_without_the_skipped_step(mixed_float16):
    finder = LRFinder(1e-4, 1.0, steps=40)
    fit(BatchCountingLossScaleOptimizer(keras.optimizers.SGD(1e-4, momentum=0.9)), finder, batches=40)
    assert len(finder.losses) == 40 and finder.skipped == [OVERFLOWING]  # kept on the curve, marked
    assert finder.momentum == 0.9  # the loss scaler's inner optimizer's, for the momentum lag
    assert finder.smoothed_losses[OVERFLOWING] == finder.smoothed_losses[OVERFLOWING - 1]  # not smoothed in
    kept = [index for index in range(40) if index != OVERFLOWING]
    read = reading(lambda: finder.suggestion())
    assert read == reading(lambda: suggest_bounds(np.take(finder.lrs, kept), np.take(finder.losses, kept),
                                                  momentum=0.9))
    assert read != reading(lambda: suggest_bounds(finder.lrs, finder.losses, momentum=0.9))


def reading(suggest) -> object:
    """A suggestion, or the reason the curve gives none."""
    try:
        return suggest()
    except NoSuggestion as refusal:
        return str(refusal)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16", "float32"])
def test_a_saved_model_computes_in_the_precision_asked_with_its_weights(policy, tmp_path):
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.BatchNormalization()])
    inputs = keras.Input((6,))
    saved = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inner(inputs)))
    saved.save(tmp_path / "model.keras")
    model = models.in_precision(models.from_file(tmp_path / "model.keras"), policy)
    computing = [layer for layer in model._flatten_layers() if layer.weights and not isinstance(layer, keras.Model)]
    assert len(computing) == 3 and {layer.dtype_policy.name for layer in computing} == {policy}
    x = np.random.default_rng(0).random((4, 6)).astype("float32")
    computed, expected = keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(saved(x))
    np.testing.assert_allclose(computed.astype("float32"), expected, atol=1e-2 if policy != "float32" else 1e-6)
