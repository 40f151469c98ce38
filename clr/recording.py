"""Recording of every iteration's learning rate and true per-batch loss: in-graph on TensorFlow, from the traced step
to the host on JAX, eagerly on PyTorch.

Keras's `logs["loss"]` in batch callbacks is the running mean since the start of the epoch, and with
`steps_per_execution = k` batch callbacks fire every k steps only. `IterationRecorder` instead has each training
step write its iteration and own loss (and, for a float LR, the LR) into a ring buffer inside the compiled train
step; `poll()` hands the points written since the last poll to `on_iterations`, in order. Each slot carries its
iteration number, so a poll from another thread while training runs takes exactly the steps that are complete.
An LR from a `LearningRateSchedule` is a function of the iteration: it is evaluated for the polled iterations at
once instead of a second time inside every step. A recorder that `records_accuracy` also writes each step's
accuracy on its own batch (from the same forward pass) when the model is compiled with a classification loss. On
PyTorch, whose train step runs eagerly, each step writes its row into the same ring on the host. On JAX, whose train
step is a pure function of the training's state (which `fit` holds outside the variables), the traced step hands its
row to the host, which writes it into that ring (`CallbackRing`).
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
    """Where `model`'s training steps write their rows: the step's `hook` method (its result is the step's loss)
    wrapped by `recording_hook`, and `rows` of given iterations read back."""

    hook = "compute_loss"

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def recording_hook(self, compute_loss, optimizer, schedule, accuracy_of):
        """`compute_loss` that also writes the row of a training step (`recording`)."""

        def recording_compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = compute_loss(x, y, y_pred, sample_weight, training=training)
            if not training:
                return loss
            return self.recording(loss, x, y, y_pred, optimizer, schedule, accuracy_of)

        return recording_compute_loss

    def completed(self) -> int:
        """The steps the optimizer has completed (its `iterations`)."""
        return int(self.model.optimizer.iterations.numpy())

    def settle(self) -> None:
        """Wait for the rows of the steps dispatched so far."""


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


class CallbackRing(HostRing):
    """JAX: the traced step hands its row to the host (`jax.debug.callback`), which writes it into the numpy ring,
    so a poll from any thread reads it while `fit` holds the training's state outside the variables
    (`model._jax_state`) and donates it to each step. The optimizer's variables are in the step's scope in
    `compute_loss_and_updates` only: its result is the loss this ring records."""

    hook = "compute_loss_and_updates"

    def __init__(self, model: keras.Model) -> None:
        super().__init__(model)
        self._completed = int(model.optimizer.iterations.numpy())

    def recording_hook(self, compute_loss_and_updates, optimizer, schedule, accuracy_of):
        import jax

        rate = getattr(optimizer, "inner_optimizer", optimizer)._learning_rate

        def recording(trainable_variables, non_trainable_variables, metrics_variables, x, y, sample_weight,
                      training=False, optimizer_variables=None):
            loss, aux = compute_loss_and_updates(trainable_variables, non_trainable_variables, metrics_variables, x,
                                                 y, sample_weight, training=training,
                                                 optimizer_variables=optimizer_variables)
            if training:
                values = {id(variable): value for variable, value in zip(optimizer.variables, optimizer_variables,
                                                                         strict=True)}
                unscaled_loss, y_pred = aux[0], aux[1]
                lr = np.nan if schedule else values[id(rate)]
                accuracy = np.nan if accuracy_of is None else keras.ops.mean(
                    keras.ops.cast(accuracy_of(y, y_pred), "float32"))
                row = (values[id(optimizer.iterations)], lr, unscaled_loss, accuracy)
                row = jax.tree.map(jax.lax.stop_gradient, row)
                jax.debug.callback(self.write, *row)  # unordered: each row carries its iteration
            return loss, aux

        return recording

    def write(self, iteration, lr, loss, accuracy) -> None:
        iteration = int(iteration)
        self.buffer[iteration % CAPACITY] = (iteration, float(lr), float(loss), float(accuracy))
        self._completed = max(self._completed, iteration + 1)

    def completed(self) -> int:
        return self._completed

    def settle(self) -> None:
        import jax

        jax.effects_barrier()


RINGS = {"tensorflow": InGraphRing, "torch": HostRing, "jax": CallbackRing}


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
        ring_class = RINGS[keras.backend.backend()]
        other = getattr(model.__dict__.get(ring_class.hook), "recorded_by", None)
        if other is not None and other.params is self.params:  # Keras gives the callbacks of one fit one dict
            raise ValueError(
                f"{type(self).__name__} cannot record this fit: {type(other).__name__} already records it "
                "(one IterationRecorder per fit; read the other's points instead)"
            )
        if other is not None:  # left behind by a fit that raised before its end
            other._unwrap()
        self._lock = threading.Lock()
        self._ring = ring_class(model)
        loss_name = getattr(model.loss, "name", model.loss)  # a loss object's name is its function's
        self._accuracy = BATCH_ACCURACY.get(loss_name) if self.records_accuracy else None
        self._next = int(model.optimizer.iterations.numpy())
        self._unwrapped_hook = model.__dict__.get(ring_class.hook)
        recording = self._ring.recording_hook(getattr(model, ring_class.hook), model.optimizer, self._schedule(),
                                              self._accuracy)
        recording.recorded_by = self
        setattr(model, ring_class.hook, recording)
        model.make_train_function(force=True)

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

    def poll_last(self) -> int:
        """`poll()` once the steps dispatched so far have written their rows."""
        self._ring.settle()
        return self.poll()

    def on_train_end(self, logs=None):
        self.poll_last()
        self._unwrap()

    def _unwrap(self) -> None:
        """Give the model back its own step hook and a train function without the recording."""
        model, hook = self.model, self._ring.hook
        delattr(model, hook)
        if self._unwrapped_hook is not None:
            setattr(model, hook, self._unwrapped_hook)
        model.train_function = None
