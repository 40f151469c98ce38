"""Cyclical learning-rate schedules and range-test sweeps as functions of the iteration.

A `Schedule` is written once, as a formula over an array namespace: called with iterations it computes in numpy (the
oracle the callbacks are tested against), and `clr.keras_schedule` evaluates the same formula in-graph with
`keras.ops`. The other policies (`clr.policies`) are written the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

Mode = Literal["triangular", "triangular2", "exp_range"]
Shape = Literal["linear", "parabolic", "sinusoidal"]
Sweep = Literal["exponential", "linear"]
ScaleMode = Literal["cycle", "iterations"]

MODES: tuple[str, ...] = get_args(Mode)
SHAPES: tuple[str, ...] = get_args(Shape)
SWEEPS: tuple[str, ...] = get_args(Sweep)
SCALE_MODES: tuple[str, ...] = get_args(ScaleMode)

Iterations = int | npt.NDArray[np.integer]
Formula = Callable[[Any, Any], Any]


def received(name: str, value: object) -> str:
    """The tail of a validation message: `Received: name=value`."""
    return f"Received: {name}={value!r}"


def check_argument(condition: bool, name: str, value: object, requirement: str) -> None:
    """Raise ValueError naming `name`, `value` and the `requirement` it breaks, unless `condition` holds."""
    if not condition:
        raise ValueError(f"Argument `{name}` must be {requirement}. {received(name, value)}")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise ValueError unless `value` is one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"Argument `{name}` must be one of {', '.join(allowed)}. {received(name, value)}")


def check_positive_lr(name: str, value: float) -> None:
    """Raise ValueError unless `value` is a finite number > 0."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"Argument `{name}` must be a finite number > 0. {received(name, value)}")


def check_lr_range(low_name: str, low: float, high_name: str, high: float) -> None:
    """Raise ValueError unless both rates are finite and positive, and `low < high`."""
    check_positive_lr(low_name, low)
    check_positive_lr(high_name, high)
    if not low < high:
        raise ValueError(
            f"Argument `{low_name}` must be < `{high_name}`. {received(low_name, low)}, {high_name}={high!r}"
        )


def check_clr_arguments(base_lr: float, max_lr: float, step_size: float, mode: str, gamma: float, shape: str) -> None:
    """Validate the arguments of a cyclical schedule; raise ValueError naming the first bad one."""
    check_lr_range("base_lr", base_lr, "max_lr", max_lr)
    if not (isinstance(step_size, int | float) and math.isfinite(step_size) and step_size >= 1):
        raise ValueError(f"Argument `step_size` must be >= 1. {received('step_size', step_size)}")
    check_choice("mode", mode, MODES)
    check_choice("shape", shape, SHAPES)
    if not (isinstance(gamma, int | float) and 0 < gamma <= 1):
        raise ValueError(f"Argument `gamma` must be in (0, 1]. {received('gamma', gamma)}")
    if gamma != 1.0 and mode != "exp_range":
        raise ValueError(f"Argument `gamma` is only used with mode='exp_range'. {received('gamma', gamma)}")


def as_output(iterations: Iterations, values: np.ndarray) -> float | npt.NDArray[np.float64]:
    """A float for a scalar iteration, the array otherwise."""
    return float(values) if np.ndim(iterations) == 0 else values


def as_iterations(iterations: Iterations) -> np.ndarray:
    """Validated iterations as float64."""
    it = np.asarray(iterations)
    if not np.issubdtype(it.dtype, np.integer) or it.ndim > 1 or np.any(it < 0):
        raise ValueError(f"Iterations must be an int >= 0 or a 1-D array of them. {received('iterations', iterations)}")
    return it.astype(np.float64)


@dataclass(frozen=True)
class Schedule:
    """A schedule of the iteration, written once: `formula(it, xp)` gives the values at iterations `it` (float64)
    with the array namespace `xp`, numpy here and `keras.ops` in-graph. Called with iterations, it is the numpy
    oracle; `check` may refuse some of them (the in-graph schedule cannot refuse a step mid-`fit`)."""

    formula: Formula
    check: Callable[[np.ndarray, Iterations], None] | None = None

    def __call__(self, iterations: Iterations) -> float | npt.NDArray[np.float64]:
        it = as_iterations(iterations)
        if self.check is not None:
            self.check(it, iterations)
        return as_output(iterations, np.broadcast_to(self.formula(it, np), it.shape).astype(np.float64))


def cycle_position(it, step_size: float, xp):
    """The cycle number (from 1) and the position `x` within it (1 at a cycle's start, 0 at its peak) of
    docs/schedules.md, from the iteration's remainder in its cycle: exact for whole iterations and step sizes in
    float32 as in float64 (`it / step_size` in float32 drifts within a cycle after a few thousand steps)."""
    period = 2.0 * step_size
    within = xp.mod(it, period)
    return (it - within) / period + 1.0, xp.abs(within - step_size) / step_size


def like(x, value: float):
    """`value` as an array of `x`'s shape and dtype. The formulas keep to arithmetic, `mod`, `where` and the
    elementwise functions, with arrays for operands: Keras's `minimum`, `maximum` and `floor` compute in float32 on
    some backends, whatever their operands' dtype."""
    return x * 0.0 + value


def cycle_window(x, shape: str, xp):
    """The window `a` of docs/schedules.md at the cycle position `x`."""
    if shape == "linear":
        return xp.where(x < 1.0, 1.0 - x, like(x, 0.0))
    if shape == "parabolic":
        return 1.0 - xp.square(x)
    return (1.0 + xp.cos(math.pi * x)) / 2.0


def amplitude_scale(it, cycle, mode: str, gamma: float, xp):
    """The amplitude scale `s` of docs/schedules.md for `mode`."""
    if mode == "triangular":
        return 1.0
    if mode == "triangular2":
        return xp.exp((cycle - 1.0) * math.log(0.5))
    return xp.exp(it * math.log(gamma))


def cycled(start: float, peak: float, step_size: float, mode: str, gamma: float, shape: str) -> Formula:
    """The cycle arithmetic, once: from `start` to `peak` and back every `2 * step_size` iterations,
    `start + (peak - start) * a * s` (the LR rises towards its peak, a cyclical momentum falls)."""

    def formula(it, xp):
        cycle, x = cycle_position(it, step_size, xp)
        return start + (peak - start) * cycle_window(x, shape, xp) * amplitude_scale(it, cycle, mode, gamma, xp)

    return formula


def cyclical_lr(
    base_lr: float,
    max_lr: float,
    step_size: float,
    mode: Mode = "triangular",
    gamma: float = 1.0,
    shape: Shape = "linear",
    *,
    scale_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    scale_mode: ScaleMode = "cycle",
) -> Schedule:
    """The cyclical schedule `it -> lr(it)` of docs/schedules.md (the LR used by batch `it`).

    A custom `scale_fn` (numpy only) replaces the mode's amplitude scale; it receives the cycle number
    (`scale_mode="cycle"`) or the iteration (`scale_mode="iterations"`), as in the Keras callback the seed article used.
    """
    check_clr_arguments(base_lr, max_lr, step_size, mode, gamma, shape)
    check_choice("scale_mode", scale_mode, SCALE_MODES)
    if scale_fn is None:
        return Schedule(cycled(base_lr, max_lr, step_size, mode, gamma, shape))

    def formula(it, xp):
        cycle, x = cycle_position(it, step_size, xp)
        scale = np.asarray(scale_fn(cycle if scale_mode == "cycle" else it), dtype=np.float64)
        return base_lr + (max_lr - base_lr) * cycle_window(x, shape, xp) * scale

    return Schedule(formula)


def cyclical_momentum(base_momentum: float, max_momentum: float, step_size: float, mode: Mode = "triangular",
                      gamma: float = 1.0, shape: Shape = "linear") -> Schedule:
    """Momentum cycled against the LR: `max_momentum - (max_momentum - base_momentum) * a * s` with the window `a`
    and scale `s` of `cyclical_lr`; equal to PyTorch's `CyclicLR(cycle_momentum=True)` for the linear shape."""
    check_argument(0 <= base_momentum < max_momentum < 1, "base_momentum", base_momentum, "in [0, max_momentum)")
    check_argument(math.isfinite(step_size) and step_size >= 1, "step_size", step_size, ">= 1")
    return Schedule(cycled(max_momentum, base_momentum, step_size, mode, gamma, shape))


def range_sweep(
    start_lr: float, end_lr: float, num_iterations: int, sweep: Sweep = "exponential"
) -> npt.NDArray[np.float64]:
    """Return the learning rates of a range test: `num_iterations` values from `start_lr` to `end_lr`."""
    check_lr_range("start_lr", start_lr, "end_lr", end_lr)
    check_choice("sweep", sweep, SWEEPS)
    if not (isinstance(num_iterations, int | np.integer) and num_iterations >= 2):
        raise ValueError(f"Argument `num_iterations` must be an int >= 2. {received('num_iterations', num_iterations)}")
    fraction = np.arange(num_iterations) / (num_iterations - 1)
    if sweep == "exponential":
        return start_lr * (end_lr / start_lr) ** fraction
    return start_lr + (end_lr - start_lr) * fraction


@dataclass(frozen=True)
class StepSizeAdvice:
    """Smith's advice: `step_size` between 2 and 10 epochs of iterations."""

    iterations_per_epoch: int
    min_step_size: int
    max_step_size: int

    def epochs(self, step_size: float) -> float:
        """The number of epochs that `step_size` iterations span."""
        return step_size / self.iterations_per_epoch

    def contains(self, step_size: float) -> bool:
        """Whether `step_size` lies in the recommended range."""
        return self.min_step_size <= step_size <= self.max_step_size


def step_size_advice(num_samples: int, batch_size: int) -> StepSizeAdvice:
    """Iterations per epoch for this data and the recommended 2x-10x range of `step_size`."""
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if not (isinstance(value, int | np.integer) and value >= 1):
            raise ValueError(f"Argument `{name}` must be an int >= 1. {received(name, value)}")
    per_epoch = math.ceil(num_samples / batch_size)
    return StepSizeAdvice(per_epoch, 2 * per_epoch, 10 * per_epoch)
