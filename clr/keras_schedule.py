"""The cyclical schedule in-graph, as a Keras `LearningRateSchedule`: no Python runs per batch."""

from __future__ import annotations

import math

import keras
from keras import ops

from clr.schedules import check_clr_arguments


@keras.saving.register_keras_serializable(package="clr")
class CyclicalSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`lr(it)` of `clr.schedules.cyclical_lr`, evaluated by the optimizer at its own iteration count."""

    def __init__(self, base_lr, max_lr, step_size, mode="triangular", gamma=1.0, shape="linear"):
        check_clr_arguments(base_lr, max_lr, step_size, mode, gamma, shape)
        self.base_lr, self.max_lr, self.step_size = base_lr, max_lr, step_size
        self.mode, self.gamma, self.shape = mode, gamma, shape

    def __call__(self, step):
        it = ops.cast(step, "float64")  # float32 loses the position within a cycle after a few thousand steps
        cycle = ops.floor(1.0 + it / (2.0 * self.step_size))
        x = ops.abs(it / self.step_size - 2.0 * cycle + 1.0)
        if self.shape == "linear":
            window = ops.maximum(0.0, 1.0 - x)
        elif self.shape == "parabolic":
            window = 1.0 - ops.square(x)
        else:
            window = (1.0 + ops.cos(math.pi * x)) / 2.0
        if self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            scale = ops.power(0.5, cycle - 1.0)
        else:
            scale = ops.exp(it * math.log(self.gamma))
        return ops.cast(self.base_lr + (self.max_lr - self.base_lr) * window * scale, "float32")

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "max_lr": self.max_lr,
            "step_size": self.step_size,
            "mode": self.mode,
            "gamma": self.gamma,
            "shape": self.shape,
        }
