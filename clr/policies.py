"""Schedules beyond the seed's cyclical LR, as pure numpy functions of the iteration (the oracle, like
`clr.schedules.cyclical_lr`): Smith's 1cycle with its inverse momentum, cyclical momentum, SGDR's warm restarts, and
the constant rate they are measured against.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np

from clr.schedules import (
    Iterations,
    Mode,
    Schedule,
    Shape,
    amplitude_scale,
    as_iterations,
    as_output,
    check_choice,
    check_positive_lr,
    cycle_window,
    received,
)

Anneal = Literal["cos", "linear"]
ANNEALS: tuple[str, ...] = get_args(Anneal)


def _check(condition: bool, name: str, value: object, requirement: str) -> None:
    if not condition:
        raise ValueError(f"Argument `{name}` must be {requirement}. {received(name, value)}")


def anneal(start: float, end: float, pct, strategy: str, cos=np.cos):
    """PyTorch's `OneCycleLR` annealing from `start` to `end` at `pct` (0 to 1), cosine or linear; `cos` lets the
    in-graph schedule pass its own."""
    if strategy == "cos":
        return end + (start - end) / 2.0 * (cos(np.pi * pct) + 1.0)
    return (end - start) * pct + start


def one_cycle_phases(total_steps: int, pct_start: float, three_phase: bool,
                     values: tuple[float, float, float]) -> list[tuple[float, float, float, float]]:
    """The 1cycle phases of docs/schedules.md over `(initial, peak, final)` values, each as `(start_step,
    end_step, start_value, end_value)`, with PyTorch's `OneCycleLR` end steps (the last phase holds every later
    step)."""
    initial, peak, final = values
    up = float(pct_start * total_steps) - 1
    ends = [(up, initial, peak), (2 * up, peak, initial), (total_steps - 1, initial, final)] if three_phase else [
        (up, initial, peak), (total_steps - 1, peak, final)]
    starts = [0.0] + [end for end, _, _ in ends[:-1]]
    return [(start, end, first, last) for start, (end, first, last) in zip(starts, ends, strict=True)]


def _one_cycle(total_steps: int, pct_start: float, anneal_strategy: str, three_phase: bool,
               values: tuple[float, float, float]) -> Schedule:
    _check(isinstance(total_steps, int) and total_steps >= 2, "total_steps", total_steps, "an int >= 2")
    _check(0 < pct_start < 1, "pct_start", pct_start, "in (0, 1)")
    check_choice("anneal_strategy", anneal_strategy, ANNEALS)
    phases = one_cycle_phases(total_steps, pct_start, three_phase, values)

    def schedule(iterations: Iterations) -> float | np.ndarray:
        it = as_iterations(iterations)
        _check(bool(np.all(it < total_steps)), "iterations", iterations, f"< total_steps={total_steps}")
        out = np.empty_like(it)
        for index, (start, end, first, last) in reversed(list(enumerate(phases))):  # earlier phases overwrite
            here = it <= end if index < len(phases) - 1 else np.ones(it.shape, dtype=bool)
            out[here] = anneal(first, last, (it[here] - start) / (end - start), anneal_strategy)
        return as_output(iterations, out)

    return schedule


def one_cycle_lr(max_lr: float, total_steps: int, pct_start: float = 0.3, anneal_strategy: Anneal = "cos",
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False) -> Schedule:
    """Smith's 1cycle LR: from `max_lr / div_factor` up to `max_lr` over `pct_start` of the steps, then down to
    `max_lr / div_factor / final_div_factor`; equal to PyTorch's `OneCycleLR` at every step."""
    check_positive_lr("max_lr", max_lr)
    _check(div_factor > 0, "div_factor", div_factor, "> 0")
    _check(final_div_factor > 0, "final_div_factor", final_div_factor, "> 0")
    initial = max_lr / div_factor
    return _one_cycle(total_steps, pct_start, anneal_strategy, three_phase,
                      (initial, max_lr, initial / final_div_factor))


def one_cycle_momentum(total_steps: int, base_momentum: float = 0.85, max_momentum: float = 0.95,
                       pct_start: float = 0.3, anneal_strategy: Anneal = "cos", three_phase: bool = False) -> Schedule:
    """The momentum that goes with `one_cycle_lr`: down while the LR rises, back up as it falls (Smith, arXiv
    1803.09820); equal to `OneCycleLR`'s momentum."""
    _check(0 <= base_momentum <= max_momentum < 1, "base_momentum", base_momentum, "in [0, max_momentum]")
    values = (max_momentum, base_momentum, max_momentum)
    return _one_cycle(total_steps, pct_start, anneal_strategy, three_phase, values)


def cyclical_momentum(base_momentum: float, max_momentum: float, step_size: float, mode: Mode = "triangular",
                      gamma: float = 1.0, shape: Shape = "linear") -> Schedule:
    """Momentum cycled against the LR: `max_momentum - (max_momentum - base_momentum) * a * s` with the window `a`
    and scale `s` of `cyclical_lr`; equal to PyTorch's `CyclicLR(cycle_momentum=True)` for the linear shape."""
    _check(0 <= base_momentum < max_momentum < 1, "base_momentum", base_momentum, "in [0, max_momentum)")
    _check(math.isfinite(step_size) and step_size >= 1, "step_size", step_size, ">= 1")

    def schedule(iterations: Iterations) -> float | np.ndarray:
        it = as_iterations(iterations)
        cycle = np.floor(1.0 + it / (2.0 * step_size))
        x = np.abs(it / step_size - 2.0 * cycle + 1.0)
        scale = amplitude_scale(it, cycle, mode, gamma)
        return as_output(iterations, max_momentum - (max_momentum - base_momentum) * cycle_window(x, shape) * scale)

    return schedule


def cosine_restarts_lr(initial_lr: float, first_decay_steps: int, t_mul: float = 2.0, m_mul: float = 1.0,
                       alpha: float = 0.0) -> Schedule:
    """SGDR (Loshchilov and Hutter): cosine decay from `initial_lr` to `alpha * initial_lr` over a period that starts
    at `first_decay_steps` and grows by `t_mul` at each restart, the peak scaled by `m_mul`; equal to Keras's
    `CosineDecayRestarts`."""
    check_positive_lr("initial_lr", initial_lr)
    _check(isinstance(first_decay_steps, int) and first_decay_steps >= 1, "first_decay_steps", first_decay_steps,
           "an int >= 1")
    _check(t_mul >= 1, "t_mul", t_mul, ">= 1")
    _check(0 < m_mul <= 1, "m_mul", m_mul, "in (0, 1]")
    _check(0 <= alpha < 1, "alpha", alpha, "in [0, 1)")

    def schedule(iterations: Iterations) -> float | np.ndarray:
        fraction = as_iterations(iterations) / first_decay_steps
        if t_mul == 1.0:
            restart = np.floor(fraction)
            fraction = fraction - restart
        else:
            restart = np.floor(np.log(1.0 - fraction * (1.0 - t_mul)) / np.log(t_mul))
            done = (1.0 - t_mul**restart) / (1.0 - t_mul)
            fraction = (fraction - done) / t_mul**restart
        decayed = 0.5 * m_mul**restart * (1.0 + np.cos(np.pi * fraction))
        return as_output(iterations, initial_lr * ((1.0 - alpha) * decayed + alpha))

    return schedule


def constant_lr(lr: float) -> Schedule:
    """The same rate at every iteration: the fixed-LR baseline of Smith's Table 1."""
    check_positive_lr("lr", lr)

    def schedule(iterations: Iterations) -> float | np.ndarray:
        return as_output(iterations, np.full(as_iterations(iterations).shape, float(lr)))

    return schedule


def momentum_schedule(cycle: dict) -> Schedule:
    """The momentum schedule `clr.plan.momentum_cycle` describes."""
    return {"clr": cyclical_momentum, "one_cycle": one_cycle_momentum}[cycle["policy"]](**cycle["arguments"])
