import itertools
import threading

import keras
import numpy as np
import pytest

from clr import datasets, models
from clr.callbacks import CyclicLR, LRFinder
from clr.keras_schedule import CyclicalSchedule
from clr.recording import IterationRecorder
from clr.schedules import MODES, SHAPES, cyclical_lr
from tests.backends import several_steps_per_execution, steps_per_execution
from tests.helpers import wait_until

BATCH = 32


@pytest.fixture(scope="module")
def digits():
    data = datasets.digits()
    return data.x_train[:640], data.y_train[:640]


def compiled_mlp(optimizer=None, steps_per_execution=1, seed=0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = models.mlp((8, 8, 1), 10)
    model.compile(
        optimizer or keras.optimizers.SGD(0.05),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


class WeightsBeforeEachBatch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights, self.running_means = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append(self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        self.running_means.append(logs["loss"])


def test_recorded_loss_is_the_true_per_batch_loss_over_several_epochs(digits):
    x, y = digits
    model = compiled_mlp()
    clr, weights = CyclicLR(0.01, 0.1, step_size=15), WeightsBeforeEachBatch()
    model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, callbacks=[clr, weights], verbose=0)
    assert clr.history["iterations"] == list(range(60))

    replay = compiled_mlp()
    per_batch = []
    for it, batch_weights in enumerate(weights.weights):
        replay.set_weights(batch_weights)
        batch = slice((it % 20) * BATCH, (it % 20 + 1) * BATCH)
        per_batch.append(replay.train_on_batch(x[batch], y[batch])[0])
    np.testing.assert_allclose(clr.history["loss"], per_batch, rtol=2e-5)
    # Keras's own logs["loss"] is a running mean: it differs from the true loss after each epoch's first batch.
    assert not np.allclose(weights.running_means, per_batch, rtol=1e-3)
    np.testing.assert_allclose(weights.running_means[20], per_batch[20], rtol=2e-5)


@pytest.mark.parametrize("optimizer", [keras.optimizers.SGD, keras.optimizers.Adam])
def test_cyclic_lr_sets_the_schedule_and_continues_across_fit_calls(digits, optimizer):
    x, y = digits
    model = compiled_mlp(optimizer(0.5))
    clr = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=7, mode="triangular2")
    model.fit(x, y, batch_size=BATCH, epochs=1, callbacks=[clr], verbose=0)
    model.fit(x, y, batch_size=BATCH, epochs=2, callbacks=[clr], verbose=0)
    expected = cyclical_lr(0.001, 0.006, 7, "triangular2")(np.arange(60))
    assert clr.history["iterations"] == list(range(60))
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-6)
    assert np.all(np.isfinite(clr.history["loss"]))
    clr.reset()
    assert clr.clr_iterations == 0 and clr.history["lr"] == []


def test_cyclic_lr_refuses_an_optimizer_built_with_a_schedule(digits):
    x, y = digits
    model = compiled_mlp(keras.optimizers.SGD(CyclicalSchedule(0.001, 0.01, 10)))
    with pytest.raises(TypeError, match="build the optimizer with a float learning rate"):
        model.fit(x, y, batch_size=BATCH, epochs=1, callbacks=[CyclicLR()], verbose=0)


def test_lr_finder_infers_its_length_from_fit_and_restores_the_model(digits):
    x, y = digits
    model = compiled_mlp(keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(x[:64], y[:64], batch_size=BATCH, epochs=1, verbose=0)  # builds the optimizer's state
    weights = model.get_weights()
    optimizer_state = [v.numpy() for v in model.optimizer.variables]
    finder = LRFinder(min_lr=1e-4, max_lr=0.1)
    model.fit(x, y, batch_size=BATCH, epochs=3, callbacks=[finder], verbose=0)
    assert len(finder.lrs) == len(finder.losses) == len(finder.smoothed_losses) == 60
    np.testing.assert_allclose(finder.lrs, np.geomspace(1e-4, 0.1, 60), rtol=1e-6)
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    for before, after in zip(optimizer_state, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    bounds = finder.suggestion()
    assert 1e-4 <= bounds.min_lr < bounds.max_lr <= 0.1
    assert finder.plot().startswith(b"\x89PNG")


def test_lr_finder_stops_on_divergence(digits):
    x, y = digits
    model = compiled_mlp(keras.optimizers.SGD(0.01))
    finder = LRFinder(min_lr=1e-3, max_lr=1e4, steps=200, stop_factor=4.0)
    model.fit(x, y, batch_size=BATCH, epochs=10, callbacks=[finder], verbose=0)
    assert 2 <= len(finder.losses) < 200
    last = finder.smoothed_losses[-1]
    assert not np.isfinite(last) or last > 4 * min(finder.smoothed_losses)


def test_lr_finder_needs_a_length_it_can_infer():
    model = compiled_mlp()

    def batches():
        while True:
            yield np.zeros((BATCH, 8, 8, 1), np.float32), np.zeros(BATCH, np.int64)

    with pytest.raises(ValueError, match="pass `steps` to LRFinder"):
        model.fit(batches(), epochs=1, shuffle=False, callbacks=[LRFinder()], verbose=0)


@pytest.mark.parametrize(("mode", "shape"), list(itertools.product(MODES, SHAPES)))
def test_in_graph_schedule_equals_the_numpy_schedule(mode, shape):
    gamma = 0.995 if mode == "exp_range" else 1.0
    in_graph = CyclicalSchedule(1e-3, 6e-3, 9, mode=mode, gamma=gamma, shape=shape)
    # exact far into training on every backend (JAX computes in float32: the cycle's position is taken in integers)
    iterations = np.r_[np.arange(9 * 8 + 1), np.arange(100_000, 100_040), np.arange(16_000_000, 16_000_020)]
    values = [float(in_graph(int(it))) for it in iterations]
    np.testing.assert_allclose(values, cyclical_lr(1e-3, 6e-3, 9, mode, gamma, shape)(iterations), rtol=1e-6)
    assert CyclicalSchedule.from_config(in_graph.get_config()).get_config() == in_graph.get_config()
    assert in_graph.get_config() == {
        "base_lr": 1e-3, "max_lr": 6e-3, "step_size": 9, "mode": mode, "gamma": gamma, "shape": shape
    }


def test_in_graph_schedule_validates_like_the_numpy_one():
    with pytest.raises(ValueError, match="Argument `step_size` must be >= 1. Received: step_size=0"):
        CyclicalSchedule(1e-3, 6e-3, 0)


def test_a_keras_file_with_the_schedule_reloads(digits, tmp_path):
    x, y = digits
    schedule = CyclicalSchedule(1e-3, 6e-3, 10, mode="exp_range", gamma=0.99, shape="sinusoidal")
    model = compiled_mlp(keras.optimizers.SGD(schedule))
    model.fit(x[:64], y[:64], batch_size=BATCH, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    restored = reloaded.optimizer._learning_rate
    assert isinstance(restored, CyclicalSchedule)
    assert restored.get_config() == schedule.get_config()
    np.testing.assert_allclose(reloaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), rtol=1e-6)


class Collect(IterationRecorder):
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.iterations, self.lrs, self.losses, self.calls = [], [], [], 0
        self.started = True

    def on_iterations(self, iterations, lrs, losses, accuracies):
        self.calls += 1
        self.iterations += iterations.tolist()
        self.lrs += lrs.tolist()
        self.losses += losses.tolist()


class CollectEachExecution(Collect):
    def on_train_batch_end(self, batch, logs=None):
        self.poll()


@several_steps_per_execution
def test_recorder_sees_every_iteration_with_steps_per_execution(digits):
    x, y = digits
    schedule = CyclicalSchedule(1e-3, 6e-2, 9, mode="triangular2")
    model = compiled_mlp(keras.optimizers.SGD(schedule), steps_per_execution=8)
    recorder = CollectEachExecution()
    model.fit(x[:608], y[:608], batch_size=BATCH, epochs=3, callbacks=[recorder], verbose=0)  # 19 steps an epoch
    assert recorder.iterations == list(range(57))
    assert recorder.calls == 3 * 3  # 8 + 8 + 3 steps an epoch
    np.testing.assert_allclose(recorder.lrs, cyclical_lr(1e-3, 6e-2, 9, "triangular2")(np.arange(57)), rtol=1e-6)
    assert np.all(np.isfinite(recorder.losses))
    # After fit the model trains without the recorder's hook.
    assert "compute_loss" not in model.__dict__


class AwaitPolls(keras.callbacks.Callback):
    """At each epoch's end, waits until the other thread has polled the epoch's steps (not this thread)."""

    def __init__(self, recorder: Collect) -> None:
        super().__init__()
        self.recorder, self.seen_in_fit = recorder, []

    def on_epoch_end(self, epoch, logs=None):
        steps = (epoch + 1) * self.params["steps"]
        wait_until(lambda: len(self.recorder.iterations) >= steps, f"the poller to take epoch {epoch}'s steps", 10)
        self.seen_in_fit.append(len(self.recorder.iterations))


def test_polling_from_another_thread_while_training_takes_each_step_once(digits):
    x, y = digits
    schedule = CyclicalSchedule(1e-3, 6e-2, 7, mode="exp_range", gamma=0.99)
    model = compiled_mlp(keras.optimizers.SGD(schedule), steps_per_execution=steps_per_execution(4))
    recorder, stop = Collect(), threading.Event()
    awaits = AwaitPolls(recorder)

    def poll_until_stopped():
        while not stop.wait(0.001):
            if getattr(recorder, "started", False):
                recorder.poll()

    poller = threading.Thread(target=poll_until_stopped)
    poller.start()
    try:
        model.fit(x, y, batch_size=8, epochs=2, callbacks=[recorder, awaits], verbose=0)
    finally:
        stop.set()
        poller.join()
    assert awaits.seen_in_fit == [80, 160]  # each epoch's points taken while fit ran, by the other thread
    assert recorder.iterations == list(range(160))
    np.testing.assert_allclose(recorder.lrs, cyclical_lr(1e-3, 6e-2, 7, "exp_range", 0.99)(np.arange(160)), rtol=1e-6)


@several_steps_per_execution
@pytest.mark.parametrize("callback", [CyclicLR(0.01, 0.1, 20), LRFinder(1e-4, 1.0)], ids=["CyclicLR", "LRFinder"])
def test_per_batch_callbacks_refuse_steps_per_execution_they_cannot_follow(digits, callback):
    model = compiled_mlp(steps_per_execution=8)
    x, y = digits
    with pytest.raises(ValueError, match="once every 8 steps with steps_per_execution=8.*CyclicalSchedule"):
        model.fit(x, y, batch_size=32, epochs=1, callbacks=[callback], verbose=0)


def test_a_second_recorder_in_one_fit_is_refused_clearly(digits):
    model = compiled_mlp()
    x, y = digits
    with pytest.raises(ValueError, match="CyclicLR cannot record this fit: IterationRecorder already records it"):
        model.fit(x, y, batch_size=32, epochs=1, callbacks=[IterationRecorder(), CyclicLR(0.01, 0.1, 20)], verbose=0)
    history = model.fit(x, y, batch_size=32, epochs=1, callbacks=[CyclicLR(0.01, 0.1, 20)], verbose=0)
    assert len(history.history["loss"]) == 1  # the refused fit left the model usable
