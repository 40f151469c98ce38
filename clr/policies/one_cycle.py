"""Smith's 1cycle (arXiv 1803.09820) with its inverse momentum, as PyTorch's `OneCycleLR` computes them."""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import numpy as np
from pydantic import Field

from clr.requests import LearningRate, MomentumCycling, WholeTrainingPolicy
from clr.schedules import Iterations, Schedule, check_argument, check_choice, check_positive_lr, like

Anneal = Literal["cos", "linear"]
ANNEALS: tuple[str, ...] = get_args(Anneal)


def anneal(start: float, end: float, pct, strategy: str, xp=np):
    """PyTorch's `OneCycleLR` annealing from `start` to `end` at `pct` (0 to 1), cosine or linear."""
    if strategy == "cos":
        return end + (start - end) / 2.0 * (xp.cos(math.pi * pct) + 1.0)
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
    check_argument(isinstance(total_steps, int) and total_steps >= 2, "total_steps", total_steps, "an int >= 2")
    check_argument(0 < pct_start < 1, "pct_start", pct_start, "in (0, 1)")
    check_choice("anneal_strategy", anneal_strategy, ANNEALS)
    phases = one_cycle_phases(total_steps, pct_start, three_phase, values)

    def formula(it, xp):  # past the last phase it holds the final value
        it = xp.where(it > phases[-1][1], like(it, phases[-1][1]), it)
        value = None
        for start, end, first, last in reversed(phases):
            here = anneal(first, last, (it - start) / (end - start), anneal_strategy, xp)
            value = here if value is None else xp.where(it <= end, here, value)
        return value

    def below_total_steps(it: np.ndarray, iterations: Iterations) -> None:
        check_argument(bool(np.all(it < total_steps)), "iterations", iterations, f"< total_steps={total_steps}")

    return Schedule(formula, below_total_steps)


def one_cycle_lr(max_lr: float, total_steps: int, pct_start: float = 0.3, anneal_strategy: Anneal = "cos",
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False) -> Schedule:
    """Smith's 1cycle LR: from `max_lr / div_factor` up to `max_lr` over `pct_start` of the steps, then down to
    `max_lr / div_factor / final_div_factor`; equal to PyTorch's `OneCycleLR` at every step."""
    check_positive_lr("max_lr", max_lr)
    check_argument(div_factor > 0, "div_factor", div_factor, "> 0")
    check_argument(final_div_factor > 0, "final_div_factor", final_div_factor, "> 0")
    initial = max_lr / div_factor
    return _one_cycle(total_steps, pct_start, anneal_strategy, three_phase,
                      (initial, max_lr, initial / final_div_factor))


def one_cycle_momentum(total_steps: int, base_momentum: float = 0.85, max_momentum: float = 0.95,
                       pct_start: float = 0.3, anneal_strategy: Anneal = "cos", three_phase: bool = False) -> Schedule:
    """The momentum that goes with `one_cycle_lr`: down while the LR rises, back up as it falls; equal to
    `OneCycleLR`'s momentum."""
    check_argument(0 <= base_momentum <= max_momentum < 1, "base_momentum", base_momentum, "in [0, max_momentum]")
    values = (max_momentum, base_momentum, max_momentum)
    return _one_cycle(total_steps, pct_start, anneal_strategy, three_phase, values)


class OneCycleRequest(MomentumCycling, WholeTrainingPolicy):
    """Smith's 1cycle over the whole training (`clr.policies.one_cycle_lr`), its momentum cycled by default (as
    PyTorch's `OneCycleLR` and fastai's `fit_one_cycle` do); `max_lr` may come from a range test."""

    oracle = staticmethod(one_cycle_lr)
    rate = "max_lr"
    momentum_follows = ("one_cycle", one_cycle_momentum, ("total_steps", "pct_start", "anneal_strategy", "three_phase"))
    policy: Literal["one_cycle"]
    cycle_momentum: bool = True
    base_momentum: float = Field(0.85, ge=0, lt=1)
    max_momentum: float = Field(0.95, gt=0, lt=1)
    max_lr: LearningRate | None = None
    pct_start: float = Field(0.3, gt=0, lt=1)
    anneal_strategy: Anneal = "cos"
    div_factor: float = Field(25.0, gt=0, allow_inf_nan=False)
    final_div_factor: float = Field(1e4, gt=0, allow_inf_nan=False)
    three_phase: bool = False

    def schedule_arguments(self, peak_lr: float, total_steps: int, per_epoch: int | None) -> dict[str, Any]:
        return {"max_lr": peak_lr, "total_steps": total_steps, **self.lr_arguments(frozenset({"policy", "max_lr"}))}
