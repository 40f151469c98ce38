"""The schedules in-graph, as Keras `LearningRateSchedule`s: no Python runs per batch. Each is pinned to its numpy
oracle (`clr.schedules`, `clr.policies`) by tests. The momentum schedules drive `clr.keras_momentum`'s optimizers."""

from __future__ import annotations

import math

import keras
from keras import ops

from clr.policies import (
    anneal,
    constant_lr,
    cosine_restarts_lr,
    cyclical_momentum,
    one_cycle_lr,
    one_cycle_momentum,
    one_cycle_phases,
)
from clr.schedules import check_clr_arguments


def cycle_amplitude(step, step_size: float, mode: str, gamma: float, shape: str):
    """The window times the amplitude scale (`a * s` of docs/schedules.md) at the optimizer's iteration `step`,
    in float64: float32 loses the position within a cycle after a few thousand steps."""
    it = ops.cast(step, "float64")
    cycle = ops.floor(1.0 + it / (2.0 * step_size))
    x = ops.abs(it / step_size - 2.0 * cycle + 1.0)
    if shape == "linear":
        window = ops.maximum(0.0, 1.0 - x)
    elif shape == "parabolic":
        window = 1.0 - ops.square(x)
    else:
        window = (1.0 + ops.cos(math.pi * x)) / 2.0
    if mode == "triangular":
        return window
    if mode == "triangular2":
        return window * ops.power(0.5, cycle - 1.0)
    return window * ops.exp(it * math.log(gamma))


def phased(step, phases: list[tuple[float, float, float, float]], anneal_strategy: str):
    """The value of `clr.policies.one_cycle_phases` at the optimizer's iteration `step`, in float32; past the last
    phase it holds the final value (`fit` cannot be refused mid-run, as the numpy oracle refuses such steps)."""
    it = ops.minimum(ops.cast(step, "float64"), phases[-1][1])
    value = None
    for start, end, first, last in reversed(phases):
        here = anneal(first, last, (it - start) / (end - start), anneal_strategy, ops.cos)
        value = here if value is None else ops.where(it <= end, here, value)
    return ops.cast(value, "float32")


@keras.saving.register_keras_serializable(package="clr")
class CyclicalSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`lr(it)` of `clr.schedules.cyclical_lr`, evaluated by the optimizer at its own iteration count."""

    def __init__(self, base_lr, max_lr, step_size, mode="triangular", gamma=1.0, shape="linear"):
        check_clr_arguments(base_lr, max_lr, step_size, mode, gamma, shape)
        self.base_lr, self.max_lr, self.step_size = base_lr, max_lr, step_size
        self.mode, self.gamma, self.shape = mode, gamma, shape

    def __call__(self, step):
        amplitude = cycle_amplitude(step, self.step_size, self.mode, self.gamma, self.shape)
        return ops.cast(self.base_lr + (self.max_lr - self.base_lr) * amplitude, "float32")

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "max_lr": self.max_lr,
            "step_size": self.step_size,
            "mode": self.mode,
            "gamma": self.gamma,
            "shape": self.shape,
        }


@keras.saving.register_keras_serializable(package="clr")
class OneCycleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`clr.policies.one_cycle_lr` in-graph: PyTorch's `OneCycleLR` LR at the optimizer's iteration count."""

    def __init__(self, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos", div_factor=25.0,
                 final_div_factor=1e4, three_phase=False):
        one_cycle_lr(max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, three_phase)
        self.max_lr, self.total_steps, self.pct_start = max_lr, total_steps, pct_start
        self.anneal_strategy, self.div_factor, self.final_div_factor = anneal_strategy, div_factor, final_div_factor
        self.three_phase = three_phase
        initial = max_lr / div_factor
        self._phases = one_cycle_phases(total_steps, pct_start, three_phase,
                                        (initial, max_lr, initial / final_div_factor))

    def __call__(self, step):
        return phased(step, self._phases, self.anneal_strategy)

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "anneal_strategy": self.anneal_strategy, "div_factor": self.div_factor,
                "final_div_factor": self.final_div_factor, "three_phase": self.three_phase}


@keras.saving.register_keras_serializable(package="clr")
class CosineRestartsSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`clr.policies.cosine_restarts_lr` in-graph, in float64 (Keras's `CosineDecayRestarts` computes in float32)."""

    def __init__(self, initial_lr, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
        cosine_restarts_lr(initial_lr, first_decay_steps, t_mul, m_mul, alpha)
        self.initial_lr, self.first_decay_steps = initial_lr, first_decay_steps
        self.t_mul, self.m_mul, self.alpha = t_mul, m_mul, alpha

    def __call__(self, step):
        fraction = ops.cast(step, "float64") / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = ops.floor(fraction)
            fraction = fraction - restart
        else:
            restart = ops.floor(ops.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul))
            done = (1.0 - ops.power(self.t_mul, restart)) / (1.0 - self.t_mul)
            fraction = (fraction - done) / ops.power(self.t_mul, restart)
        decayed = 0.5 * ops.power(self.m_mul, restart) * (1.0 + ops.cos(math.pi * fraction))
        return ops.cast(self.initial_lr * ((1.0 - self.alpha) * decayed + self.alpha), "float32")

    def get_config(self):
        return {"initial_lr": self.initial_lr, "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="clr")
class ConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`clr.policies.constant_lr` in-graph: the same rate at every iteration."""

    def __init__(self, lr):
        constant_lr(lr)
        self.lr = lr

    def __call__(self, step):
        return ops.cast(ops.full(ops.shape(step), self.lr), "float32")

    def get_config(self):
        return {"lr": self.lr}


@keras.saving.register_keras_serializable(package="clr")
class CyclicalMomentumSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`clr.policies.cyclical_momentum` in-graph: the momentum falls as the cyclical LR of the same cycle rises."""

    def __init__(self, base_momentum, max_momentum, step_size, mode="triangular", gamma=1.0, shape="linear"):
        cyclical_momentum(base_momentum, max_momentum, step_size, mode, gamma, shape)
        self.base_momentum, self.max_momentum, self.step_size = base_momentum, max_momentum, step_size
        self.mode, self.gamma, self.shape = mode, gamma, shape

    def __call__(self, step):
        amplitude = cycle_amplitude(step, self.step_size, self.mode, self.gamma, self.shape)
        return ops.cast(self.max_momentum - (self.max_momentum - self.base_momentum) * amplitude, "float32")

    def get_config(self):
        return {"base_momentum": self.base_momentum, "max_momentum": self.max_momentum, "step_size": self.step_size,
                "mode": self.mode, "gamma": self.gamma, "shape": self.shape}


@keras.saving.register_keras_serializable(package="clr")
class OneCycleMomentumSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`clr.policies.one_cycle_momentum` in-graph: PyTorch's `OneCycleLR` momentum at the optimizer's iteration."""

    def __init__(self, total_steps, base_momentum=0.85, max_momentum=0.95, pct_start=0.3, anneal_strategy="cos",
                 three_phase=False):
        one_cycle_momentum(total_steps, base_momentum, max_momentum, pct_start, anneal_strategy, three_phase)
        self.total_steps, self.base_momentum, self.max_momentum = total_steps, base_momentum, max_momentum
        self.pct_start, self.anneal_strategy, self.three_phase = pct_start, anneal_strategy, three_phase
        values = (max_momentum, base_momentum, max_momentum)
        self._phases = one_cycle_phases(total_steps, pct_start, three_phase, values)

    def __call__(self, step):
        return phased(step, self._phases, self.anneal_strategy)

    def get_config(self):
        return {"total_steps": self.total_steps, "base_momentum": self.base_momentum,
                "max_momentum": self.max_momentum, "pct_start": self.pct_start,
                "anneal_strategy": self.anneal_strategy, "three_phase": self.three_phase}
