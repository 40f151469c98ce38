"""Discriminative rates: each layer group of a real `fit` moves at every step exactly as under an optimizer of its
own at its factor times the schedule's rate (the reference: one plain Keras optimizer per group, applied by hand);
freezing; the groups' checks; a saved training state reloads."""

import keras
import numpy as np
import pytest

from clr import layer_rates
from clr.config import LayerGroups
from clr.keras_schedule import CyclicalSchedule

FACTORS = [0.01, 0.1, 1.0]
BATCH, BATCHES = 8, 12


def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="body"),
                             keras.layers.Dense(8, activation="relu", name="neck"), keras.layers.Dense(3, name="head")])


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(BATCH * BATCHES, 6)).astype("float32"), rng.integers(0, 3, BATCH * BATCHES)


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
OPTIMIZERS = {"sgd": (keras.optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
              "adam": (keras.optimizers.Adam, {}), "rmsprop": (keras.optimizers.RMSprop, {"momentum": 0.5})}


class WeightsEachStep(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([layer.get_weights() for layer in self.model.layers])


class Gradients:
    """Each layer's gradients of `LOSS` on a batch at a model's weights, on any backend: the step plain Keras's SGD
    takes in a copy at a rate of 2**12, over that rate (a power of two: the division is exact; at rate 1 a small
    gradient would lose its digits in the weights' subtraction)."""

    RATE = 2.0**12

    def __init__(self, like: keras.Model) -> None:
        self.probe = keras.models.clone_model(like)
        self.probe.compile(keras.optimizers.SGD(self.RATE), LOSS)

    def __call__(self, model: keras.Model, x, y) -> list[list]:
        self.probe.set_weights(model.get_weights())
        self.probe.train_on_batch(x, y)
        return [[keras.ops.convert_to_tensor((before - after) / self.RATE)
                 for before, after in zip(layer.get_weights(), probe.get_weights(), strict=True)]
                for layer, probe in zip(model.layers, self.probe.layers, strict=True)]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_group_moves_at_its_factor_of_the_scheduled_rate_at_every_step(name):
    optimizer_class, options = OPTIMIZERS[name]
    fitted, x, y = model(), *data()
    groups = layer_rates.layer_groups(fitted, ["neck", "head"], FACTORS)
    assert [group["layers"] for group in groups] == [["body"], ["neck"], ["head"]]
    optimizer = layer_rates.LAYER_RATE_OPTIMIZERS[optimizer_class](
        learning_rate=CyclicalSchedule(0.01, 0.1, 4), factors=layer_rates.variable_factors(fitted, groups), **options)
    fitted.compile(optimizer, LOSS)
    weights = WeightsEachStep()
    fitted.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0, callbacks=[weights])

    reference = model()
    per_group = [optimizer_class(learning_rate=CyclicalSchedule(0.01 * factor, 0.1 * factor, 4), **options)
                 for factor in FACTORS]
    gradients_of = Gradients(reference)
    for step in range(BATCHES):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        layers = [layer.trainable_variables for layer in reference.layers]
        gradients = gradients_of(reference, x[batch], y[batch])
        for layer_optimizer, layer_gradients, variables in zip(per_group, gradients, layers, strict=True):
            layer_optimizer.apply(layer_gradients, variables)
        for got, expected in zip(weights.steps[step], reference.layers, strict=True):
            for value, want in zip(got, expected.get_weights(), strict=True):
                np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)


def test_frozen_layers_do_not_move_and_a_saved_training_state_reloads(tmp_path):
    fitted, x, y = model(), *data()
    assert layer_rates.freeze(fitted, 1) == ["body"]
    groups = layer_rates.layer_groups(fitted, ["head"], [0.1, 1.0])
    frozen = fitted.layers[0].get_weights()
    optimizer = layer_rates.LAYER_RATE_OPTIMIZERS[keras.optimizers.SGD](
        learning_rate=0.05, factors=layer_rates.variable_factors(fitted, groups))
    assert set(optimizer.factors.values()) == {0.1} and len(optimizer.factors) == 2  # neck's kernel and bias
    fitted.compile(optimizer, LOSS)
    fitted.fit(x, y, batch_size=BATCH, verbose=0)
    for value, before in zip(fitted.layers[0].get_weights(), frozen, strict=True):
        np.testing.assert_array_equal(value, before)
    fitted.save(tmp_path / "tuned.keras")
    reloaded = keras.saving.load_model(tmp_path / "tuned.keras")
    assert type(reloaded.optimizer).__name__ == "LayerRatesSGD" and reloaded.optimizer.factors == optimizer.factors


def test_groups_and_freezing_are_checked_naming_the_argument():
    built = model()
    with pytest.raises(ValueError, match="no layer named 'trunk'; its layers: body, neck, head"):
        layer_rates.layer_groups(built, ["trunk"], [0.1, 1.0])
    with pytest.raises(ValueError, match="`starts` must name layers in the model's order"):
        layer_rates.layer_groups(built, ["head", "neck"], FACTORS)
    with pytest.raises(ValueError, match="`factors` must hold one factor per group"):
        layer_rates.layer_groups(built, ["head"], FACTORS)
    with pytest.raises(ValueError, match="must leave a layer to train"):
        layer_rates.freeze(built, 3)
    with pytest.raises(ValueError, match="no layer named 'trunk'"):
        layer_rates.freeze(built, until="trunk")
    assert layer_rates.freeze(built, until="head") == ["body", "neck"]


def test_the_slice_preset_spaces_the_factors_as_fastai_does():
    assert LayerGroups(starts=["neck", "head"]).resolved_factors() == pytest.approx(FACTORS)
    assert LayerGroups(starts=["head"]).resolved_factors() == pytest.approx([0.01, 1.0])
    with pytest.raises(ValueError, match=r"the last \(the head's\) 1"):
        LayerGroups(starts=["head"], factors=[1.0, 0.5])
