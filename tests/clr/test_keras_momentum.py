"""Momentum cycled in-graph: each optimizer's update uses the schedule's momentum of its iteration, and a `.keras`
file keeps the schedule."""

import keras
import numpy as np
import pytest

from clr.keras_momentum import ScheduledMomentumAdam, ScheduledMomentumRMSprop, ScheduledMomentumSGD
from clr.keras_schedule import CyclicalMomentumSchedule, CyclicalSchedule, OneCycleMomentumSchedule, OneCycleSchedule
from clr.policies import cyclical_momentum, one_cycle_momentum
from tests.backends import steps_per_execution

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 3))
Y = X @ np.array([[1.0], [-2.0], [0.5]])
BATCH, STEPS = 16, 24


def numpy_updates(optimizer: str, w: np.ndarray, lrs: np.ndarray, momenta: np.ndarray) -> np.ndarray:
    """The weights of a linear model trained on MSE by `optimizer` in float64, written from the update rules."""
    velocity, second = np.zeros_like(w), np.zeros_like(w)
    for step, (lr, momentum) in enumerate(zip(lrs, momenta, strict=True)):
        batch = slice(step % 4 * BATCH, (step % 4 + 1) * BATCH)
        gradient = 2 * X[batch].T @ (X[batch] @ w - Y[batch]) / BATCH
        if optimizer == "sgd":
            velocity = momentum * velocity - lr * gradient
            w = w + velocity
        elif optimizer == "rmsprop":
            second = 0.9 * second + 0.1 * gradient**2
            velocity = momentum * velocity + lr * gradient / np.sqrt(second + 1e-7)
            w = w - velocity
        else:
            velocity = velocity + (gradient - velocity) * (1 - momentum)
            second = second + (gradient**2 - second) * (1 - 0.999)
            alpha = lr * np.sqrt(1 - 0.999 ** (step + 1)) / (1 - momentum ** (step + 1))
            w = w - velocity * alpha / (np.sqrt(second) + 1e-7)
    return w


CASES = {
    "sgd": (ScheduledMomentumSGD, {"nesterov": False}),
    "rmsprop": (ScheduledMomentumRMSprop, {}),
    "adam": (ScheduledMomentumAdam, {}),
}


@pytest.mark.parametrize(("optimizer", "policy"), [("sgd", "one_cycle"), ("rmsprop", "clr"), ("adam", "one_cycle"),
                                                   ("sgd", "clr")])
def test_each_update_uses_the_momentum_of_its_iteration(optimizer, policy, tmp_path):
    if policy == "one_cycle":
        lr, momentum = OneCycleSchedule(0.05, STEPS), OneCycleMomentumSchedule(STEPS, 0.8, 0.95)
        momenta = one_cycle_momentum(STEPS, 0.8, 0.95)(np.arange(STEPS))
    else:
        lr, momentum = CyclicalSchedule(0.005, 0.05, 5), CyclicalMomentumSchedule(0.8, 0.95, 5)
        momenta = cyclical_momentum(0.8, 0.95, 5)(np.arange(STEPS))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    start = model.get_weights()[0].astype(np.float64)
    cls, options = CASES[optimizer]
    model.compile(optimizer=cls(learning_rate=lr, momentum_schedule=momentum, **options), loss="mse",
                  steps_per_execution=steps_per_execution(4))
    model.fit(X.astype("float32"), Y.astype("float32"), batch_size=BATCH, epochs=STEPS // 4, shuffle=False,
              verbose=0)
    lrs = keras.ops.convert_to_numpy(lr(keras.ops.convert_to_tensor(np.arange(STEPS)))).astype(np.float64)
    trained = model.get_weights()[0]
    np.testing.assert_allclose(trained, numpy_updates(optimizer, start, lrs, momenta), atol=2e-5, rtol=1e-4)
    fixed = numpy_updates(optimizer, start, lrs, np.full(STEPS, 0.95))
    assert np.abs(trained - fixed).max() > 1e-3  # the check tells a cycled momentum from a fixed one

    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert type(restored.optimizer) is cls
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    assert [v.numpy().tolist() for v in restored.optimizer.variables] == [
        v.numpy().tolist() for v in model.optimizer.variables]
