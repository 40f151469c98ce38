"""In-graph recording of every iteration's learning rate and true per-batch loss.

Keras's `logs["loss"]` in batch callbacks is the running mean since the start of the epoch, and with
`steps_per_execution = k` batch callbacks fire every k steps only. `IterationRecorder` instead writes each training
step's own loss and LR into a ring buffer of k slots inside the compiled train step, and hands the new points to
`on_iterations` after every execution: every iteration, at the speed of the compiled loop.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


class IterationRecorder(keras.callbacks.Callback):
    """Base callback: override `on_iterations(iterations, lrs, losses)` to receive every training step."""

    def on_iterations(self, iterations: np.ndarray, lrs: np.ndarray, losses: np.ndarray) -> None:
        """Called after each execution with the steps it ran (global optimizer iterations), in order."""

    def on_train_begin(self, logs=None):
        model = self.model
        capacity = max(1, int(model.steps_per_execution))
        self._buffer = keras.Variable(np.zeros((capacity, 2), np.float32), trainable=False, name="iteration_buffer")
        self._seen = int(model.optimizer.iterations.numpy())
        self._unwrapped_compute_loss = model.__dict__.get("compute_loss")
        model.compute_loss = self._recording_compute_loss(model.compute_loss)
        model.make_train_function(force=True)

    def _recording_compute_loss(self, compute_loss):
        buffer, optimizer = self._buffer, self.model.optimizer

        def recording_compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = compute_loss(x, y, y_pred, sample_weight, training=training)
            if training:
                slot = ops.mod(ops.cast(optimizer.iterations, "int32"), buffer.shape[0])
                point = ops.stack([ops.cast(optimizer.learning_rate, "float32"), ops.cast(loss, "float32")])
                buffer.assign(ops.scatter_update(buffer, ops.reshape(slot, (1, 1)), ops.reshape(point, (1, 2))))
            return loss

        return recording_compute_loss

    def on_train_batch_end(self, batch, logs=None):
        done = int(self.model.optimizer.iterations.numpy())
        if done == self._seen:
            return
        iterations = np.arange(self._seen, done)
        points = self._buffer.numpy()[iterations % self._buffer.shape[0]].astype(np.float64)
        self._seen = done
        self.on_iterations(iterations, points[:, 0], points[:, 1])

    def on_train_end(self, logs=None):
        model = self.model
        del model.compute_loss
        if self._unwrapped_compute_loss is not None:
            model.compute_loss = self._unwrapped_compute_loss
        model.train_function = None
