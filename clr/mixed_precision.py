"""Mixed precision that keeps the schedule on the batch index (TensorFlow backend).

Under `mixed_float16`, Keras's `LossScaleOptimizer` skips a step whose scaled gradients overflow and does not
advance `iterations` then: an in-graph schedule falls one step behind the batch index at each skip, and a recorder
keyed by `iterations` would give two batches one slot. `BatchCountingLossScaleOptimizer` counts a skipped step as
taken (the schedule stays on the batch index) and marks it, for `clr.recording.IterationRecorder` to report.
"""

from __future__ import annotations

import keras
from keras import ops

from clr.recording import CAPACITY


@keras.saving.register_keras_serializable(package="clr")
class BatchCountingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras's dynamic loss scaling, a skipped step counted: the inner optimizer's `iterations` advance on it too,
    and `skipped` holds, in the slot of each skipped iteration `it` (`it % CAPACITY`), `it + 1` (0: none)."""

    def build(self, var_list):
        self.skipped = self.add_variable(shape=(CAPACITY,), dtype="int64", initializer="zeros", aggregation="none",
                                         name="skipped")
        super().build(var_list)

    def _stateful_handle_non_finite_grads(self):
        super()._stateful_handle_non_finite_grads()
        iteration = ops.cast(self.inner_optimizer.iterations, "int64")
        self.skipped.assign(ops.scatter_update(self.skipped, ops.reshape(iteration % CAPACITY, (1, 1)),
                                               ops.reshape(iteration + 1, (1,))))
        self.inner_optimizer.iterations.assign_add(1)

    def skipped_among(self, iterations) -> list[int]:
        """Which of `iterations` (steps that have run) were skipped."""
        marks = ops.convert_to_numpy(self.skipped)[iterations % CAPACITY]
        return [int(it) for it, mark in zip(iterations, marks, strict=True) if mark == it + 1]
