"""Recording of every iteration's learning rate and true per-batch loss: in-graph on TensorFlow and JAX, eagerly on
PyTorch.

Keras's `logs["loss"]` in batch callbacks is the running mean since the start of the epoch, and with
`steps_per_execution = k` batch callbacks fire every k steps only. `IterationRecorder` instead has each training
step write its iteration and own loss (and, for a float LR, the LR) into a ring buffer inside the compiled train
step; `poll()` hands the points written since the last poll to `on_iterations`, in order. Each slot carries its
iteration number, so a poll from another thread while training runs takes exactly the steps that are complete.
An LR from a `LearningRateSchedule` is a function of the iteration: it is evaluated for the polled iterations at
once instead of a second time inside every step. A recorder that `records_accuracy` also writes each step's
accuracy on its own batch (from the same forward pass) when the model is compiled with a classification loss. On
PyTorch, whose train step runs eagerly, each step writes its row into the same ring on the host. On JAX, whose train
step is a pure function of the training's state, the ring is the state of a metric (`StateRing`), which Keras passes
through every step and holds, between steps, in the fit's state rather than in the variables.
"""

from __future__ import annotations

import threading

import keras
import numpy as np

CAPACITY = 2**16  # slots: far more steps than run between two polls


class RecorderOverrun(RuntimeError):
    """More steps ran between two polls than the ring buffer holds."""


# Accuracy of one batch for each classification loss, as Keras's "accuracy" metric reads it.
BATCH_ACCURACY = {
    "sparse_categorical_crossentropy": keras.metrics.sparse_categorical_accuracy,
    "categorical_crossentropy": keras.metrics.categorical_accuracy,
    "binary_crossentropy": keras.metrics.binary_accuracy,
}


def global_batch_mean(value, x):
    """The mean over the whole batch a step trains on of a replica's mean over its share: under a distribution
    strategy, the shares' means weighted by their samples (TensorFlow)."""
    import tensorflow as tf

    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return value
    samples = tf.cast(tf.shape(tf.nest.flatten(x)[0])[0], value.dtype)
    total, count = tf.distribute.get_replica_context().all_reduce("sum", [value * samples, samples])
    return total / count


def global_batch_loss(loss, x):
    """The loss of the whole batch a step trains on. Under a distribution strategy each replica computes the loss of
    its share divided by the number of replicas (as Keras scales it for the gradient sum; TensorFlow)."""
    import tensorflow as tf

    return global_batch_mean(loss * tf.distribute.get_strategy().num_replicas_in_sync, x)


def sync_fit_state(model: keras.Model) -> None:
    """Have the model's variables hold a running `fit`'s state, to read or set them between two steps. On JAX, `fit`
    keeps it outside them (writing it back at each epoch's end) and, once synced, reads them again before its next
    step; on TensorFlow and PyTorch the variables are the state."""
    if keras.backend.backend() == "jax":
        model.jax_state_sync()


class Ring:
    """Where `model`'s training steps write their rows: `recording` in the step, `rows` of given iterations."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def completed(self) -> int:
        """The steps the optimizer has completed (its `iterations`)."""
        return int(self.model.optimizer.iterations.numpy())

    def close(self) -> None:
        """Detach the ring from the model."""


class InGraphRing(Ring):
    """TensorFlow: the ring is a variable each compiled step writes its row into."""

    def __init__(self, model: keras.Model) -> None:
        import tensorflow as tf

        super().__init__(model)
        self.tf, self.buffer = tf, tf.Variable(np.full((CAPACITY, 4), -1.0), trainable=False, name="iteration_buffer")

    def recording(self, loss, x, y, y_pred, optimizer, schedule, accuracy_of):
        """`loss`, once this step's row is written."""
        tf = self.tf
        iteration = tf.cast(tf.convert_to_tensor(optimizer.iterations), tf.int64)
        lr = tf.constant(np.nan, tf.float64) if schedule else tf.cast(optimizer.learning_rate, tf.float64)
        accuracy = (tf.constant(np.nan, tf.float64) if accuracy_of is None else tf.cast(
            global_batch_mean(tf.reduce_mean(tf.cast(accuracy_of(y, y_pred), tf.float32)), x), tf.float64))
        row = tf.stack([tf.cast(iteration, tf.float64), lr, tf.cast(global_batch_loss(loss, x), tf.float64), accuracy])
        write = self.buffer.scatter_nd_update(tf.reshape(iteration % CAPACITY, (1, 1)), tf.reshape(row, (1, 4)))
        with tf.control_dependencies([write]):
            return tf.identity(loss)

    def rows(self, iterations: np.ndarray) -> np.ndarray:
        return self.tf.gather(self.buffer, iterations % CAPACITY).numpy()


class HostRing(Ring):
    """PyTorch: the train step runs eagerly, and writes its row into a numpy ring."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(model)
        self.buffer = np.full((CAPACITY, 4), -1.0)

    def recording(self, loss, x, y, y_pred, optimizer, schedule, accuracy_of):
        iteration = int(keras.ops.convert_to_numpy(optimizer.iterations))
        lr = np.nan if schedule else float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        accuracy = np.nan if accuracy_of is None else float(
            keras.ops.convert_to_numpy(keras.ops.mean(keras.ops.cast(accuracy_of(y, y_pred), "float32"))))
        self.buffer[iteration % CAPACITY] = (iteration, lr, float(keras.ops.convert_to_numpy(loss)), accuracy)
        return loss

    def rows(self, iterations: np.ndarray) -> np.ndarray:
        return self.buffer[iterations % CAPACITY].copy()


class RingState(keras.metrics.Metric):
    """The ring as a metric's state (JAX): the steps written so far, each slot's iteration and its LR, loss and
    accuracy. It reports nothing and is not reset at each epoch, as Keras resets metrics."""

    def __init__(self, start: int) -> None:
        super().__init__(name="clr_iteration_ring")
        self.steps = self.add_variable((), keras.initializers.Constant(start), dtype="int32", name="steps")
        self.iterations = self.add_variable((CAPACITY,), keras.initializers.Constant(-1), dtype="int32",
                                            name="iterations")
        self.values = self.add_variable((CAPACITY, 3), "zeros", dtype="float32", name="values")

    def update_state(self, *args, **kwargs) -> None:
        """Written by the recording step instead (`write`)."""

    def reset_state(self) -> None:
        """Kept across epochs."""

    def result(self) -> dict:
        return {}

    def write(self, lr, loss, accuracy) -> None:
        """Write one step's row at the next slot."""
        step = self.steps.value
        slot = step % CAPACITY
        self.iterations.assign(keras.ops.slice_update(self.iterations.value, (slot,), keras.ops.reshape(step, (1,))))
        row = keras.ops.reshape(keras.ops.stack([keras.ops.cast(value, "float32") for value in (lr, loss, accuracy)]),
                                (1, 3))
        self.values.assign(keras.ops.slice_update(self.values.value, (slot, 0), row))
        self.steps.assign(step + 1)


class StateRing(Ring):
    """JAX: the ring is a metric of the model (`RingState`). While `fit` runs, Keras keeps the training's state
    outside the variables (`model._jax_state`, written back at each epoch's end), and each step donates the state
    before it, so a read from another thread may find it gone: the next poll reads the newer one. The optimizer's
    variables are not in the step's scope either, so a float LR is read from the state when polled (exact where it
    changes only between polls, as `clr.callbacks` set it)."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(model)
        self._completed = int(model.optimizer.iterations.numpy())
        self.metric = RingState(self._completed)
        model._metrics.append(self.metric)

    def close(self) -> None:
        self.model._metrics.remove(self.metric)

    def recording(self, loss, x, y, y_pred, optimizer, schedule, accuracy_of):
        accuracy = np.nan if accuracy_of is None else keras.ops.mean(keras.ops.cast(accuracy_of(y, y_pred), "float32"))
        self.metric.write(np.nan, loss, accuracy)
        return loss

    def _read(self, read):
        """`read(value)` of the current values (`value(variable)`): from the state a running `fit` holds, else from
        the variables; None while neither holds them (`fit` took them for a step and has not handed them back yet:
        the next poll reads them)."""
        state = getattr(self.model, "_jax_state", None) or {}
        held = {id(variable): value for group, variables in (
            ("metrics_variables", self.model.metrics_variables),
            ("optimizer_variables", self.model.optimizer.variables))
            for variable, value in zip(variables, state.get(group) or (), strict=False)}

        def value(variable):
            if id(variable) in held:
                return held[id(variable)]
            if variable._value is None:  # purged: `fit` holds it
                raise LookupError(variable.path)
            return variable.value

        try:
            return read(value)
        except LookupError:
            return None
        except (RuntimeError, ValueError) as error:  # donated to the step under way
            if "deleted" not in str(error) and "donated" not in str(error):
                raise
            return None

    def completed(self) -> int:
        steps = self._read(lambda value: int(np.asarray(value(self.metric.steps))))
        self._completed = self._completed if steps is None else steps
        return self._completed

    def rows(self, iterations: np.ndarray) -> np.ndarray:
        slots = iterations % CAPACITY

        def read(value):
            lr = float(np.asarray(value(self.model.optimizer._learning_rate))) if isinstance(
                self.model.optimizer._learning_rate, keras.Variable) else np.nan
            written = np.asarray(keras.ops.take(value(self.metric.iterations), slots)).astype(np.float64)
            values = np.asarray(keras.ops.take(value(self.metric.values), slots, axis=0)).astype(np.float64)
            return np.column_stack([written, np.full(len(slots), lr), values[:, 1:]])

        return self._read(read)


RINGS = {"tensorflow": InGraphRing, "torch": HostRing, "jax": StateRing}


class IterationRecorder(keras.callbacks.Callback):
    """Base callback: override `on_iterations(iterations, lrs, losses)`; call `poll()` when points are wanted.

    Subclasses that need the points after every execution call `poll()` from `on_train_batch_end`; those that can
    wait poll from another thread, and keep Keras's batch-end dispatch asynchronous. `on_train_end` polls last.
    """

    records_accuracy = False

    def on_iterations(self, iterations: np.ndarray, lrs: np.ndarray, losses: np.ndarray,
                      accuracies: np.ndarray | None) -> None:
        """Called with the steps completed since the last poll (global optimizer iterations), in order; `accuracies`
        of their batches where recorded, else None."""

    def on_skipped(self, iterations: list[int]) -> None:
        """Called, before `on_iterations`, with those of its steps that mixed precision's loss scaling skipped (their
        gradients overflowed: the weights did not change), under `clr.mixed_precision`'s optimizer."""

    def on_train_begin(self, logs=None):
        model = self.model
        other = getattr(model.__dict__.get("compute_loss"), "recorded_by", None)
        if other is not None and other.params is self.params:  # Keras gives the callbacks of one fit one dict
            raise ValueError(
                f"{type(self).__name__} cannot record this fit: {type(other).__name__} already records it "
                "(one IterationRecorder per fit; read the other's points instead)"
            )
        if other is not None:  # left behind by a fit that raised before its end
            other._unwrap()
        self._lock = threading.Lock()
        self._ring = RINGS[keras.backend.backend()](model)
        loss_name = getattr(model.loss, "name", model.loss)  # a loss object's name is its function's
        self._accuracy = BATCH_ACCURACY.get(loss_name) if self.records_accuracy else None
        self._next = int(model.optimizer.iterations.numpy())
        self._unwrapped_compute_loss = model.__dict__.get("compute_loss")
        model.compute_loss = self._recording_compute_loss(model.compute_loss)
        model.make_train_function(force=True)

    def _recording_compute_loss(self, compute_loss):
        ring, optimizer, schedule, accuracy_of = self._ring, self.model.optimizer, self._schedule(), self._accuracy

        def recording_compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = compute_loss(x, y, y_pred, sample_weight, training=training)
            if not training:
                return loss
            return ring.recording(loss, x, y, y_pred, optimizer, schedule, accuracy_of)

        recording_compute_loss.recorded_by = self
        return recording_compute_loss

    @property
    def trained(self) -> keras.Model:
        """The model, as any thread may read it: on JAX, Keras's `Callback.model` first writes a running fit's state
        back into the variables (`jax_state_sync`), which only the training's own thread may do between its steps."""
        return self._model

    def _schedule(self) -> keras.optimizers.schedules.LearningRateSchedule | None:
        optimizer = self.trained.optimizer
        learning_rate = getattr(optimizer, "inner_optimizer", optimizer)._learning_rate  # a loss scaler's inner one
        return learning_rate if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) else None

    def poll(self) -> int:
        """Hand the steps completed since the last poll to `on_iterations`; return how many there were."""
        with self._lock:
            pending = self._ring.completed() - self._next
            if pending <= 0:
                return 0
            if pending > CAPACITY:
                raise RecorderOverrun(f"{pending} steps ran between two polls; the recorder holds {CAPACITY}")
            expected = self._next + np.arange(pending)
            rows = self._ring.rows(expected)
            if rows is None:  # not readable now (JAX: the state is in a step); the next poll takes them
                return 0
            complete = rows[:, 0] == expected
            count = pending if complete.all() else int(np.argmin(complete))
            if count:
                self._next += count
                iterations, lrs = expected[:count], rows[:count, 1]
                if (skipped_among := getattr(self.trained.optimizer, "skipped_among", None)) and (
                        skipped := skipped_among(iterations)):
                    self.on_skipped(skipped)
                if schedule := self._schedule():
                    lrs = keras.ops.convert_to_numpy(schedule(iterations)).astype(np.float64)
                self.on_iterations(iterations, lrs, rows[:count, 2],
                                   None if self._accuracy is None else rows[:count, 3])
            return count

    def on_train_end(self, logs=None):
        self.poll()
        self._unwrap()

    def _unwrap(self) -> None:
        """Give the model back its own `compute_loss` and a train function without the recording."""
        model = self.model
        self._ring.close()
        del model.compute_loss
        if self._unwrapped_compute_loss is not None:
            model.compute_loss = self._unwrapped_compute_loss
        model.train_function = None
