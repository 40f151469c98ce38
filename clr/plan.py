"""A training's plan from its spec and the size of its data: iterations per epoch, step size, epochs, and the advice
a user should see before it runs (Smith: a step of 2 to 10 epochs; stop at the end of a cycle, where the LR is
lowest). Pure arithmetic, shared by the API at submit time and by the worker."""

from __future__ import annotations

import math
from dataclasses import dataclass

from clr.config import CLRConfig, TrainingSpec
from clr.requests import WholeTrainingPolicy
from clr.schedules import StepSizeAdvice, step_size_advice


@dataclass(frozen=True)
class TrainingPlan:
    """How long a training runs and with which step size, and what the user should know about it."""

    iterations_per_epoch: int
    step_size: int | None  # None for policies other than `clr`
    epochs: int
    warnings: tuple[str, ...]

    @property
    def total_iterations(self) -> int:
        return self.epochs * self.iterations_per_epoch


def iterations_per_epoch(train_samples: int, batch_size: int, validation_split: float = 0.0) -> int:
    """Batches per epoch of the part of `train_samples` left for training after the validation split."""
    fit_samples = math.floor(train_samples * (1 - validation_split))
    if fit_samples < 1:
        raise ValueError(
            f"Argument `validation_split` leaves no training samples of {train_samples}. "
            f"Received: validation_split={validation_split}"
        )
    return step_size_advice(fit_samples, batch_size).iterations_per_epoch


def step_size_warning(step_size: int, per_epoch: int) -> list[str]:
    """Smith's advice on `step_size`, if it is outside 2 to 10 epochs."""
    advice = StepSizeAdvice(per_epoch, 2 * per_epoch, 10 * per_epoch)
    if advice.contains(step_size):
        return []
    return [f"step_size={step_size} is {step_size / per_epoch:.2g} epochs of {per_epoch} iterations; Smith recommends "
            f"2 to 10 epochs ({advice.min_step_size} to {advice.max_step_size} iterations)"]


def cycle_end_warning(step_size: int, total_iterations: int, per_epoch: int) -> list[str]:
    """A warning when `total_iterations` stops mid-cycle, saying where the last whole cycle ends and how to fix it."""
    cycle = 2 * step_size
    if total_iterations % cycle == 0:
        return []
    whole = total_iterations // cycle
    fixes = [f"`cycles` instead of `epochs` (cycles={max(1, round(total_iterations / cycle))})"]
    epochs_per_whole_cycles = math.lcm(per_epoch, cycle) // per_epoch
    if epochs_per_whole_cycles <= 2 * max(1, total_iterations // per_epoch):
        fixes.append(f"epochs a multiple of {epochs_per_whole_cycles}")
    return [f"training ends mid-cycle, at iteration {total_iterations} of cycles of {cycle} iterations "
            f"(the last whole cycle ends at iteration {whole * cycle}); give " + " or ".join(fixes)]


def plan_training(spec: TrainingSpec, train_samples: int) -> TrainingPlan:
    """The plan of `spec` on data with `train_samples` training samples (before the validation split)."""
    per_epoch = iterations_per_epoch(train_samples, spec.batch_size, spec.validation_split)
    if spec.clr is None:  # 1cycle and SGDR span the training as given: no cycles of a step size to advise on
        return TrainingPlan(per_epoch, None, spec.epochs, ())
    step_size = spec.clr.step_size_for(per_epoch)
    warnings = step_size_warning(step_size, per_epoch)
    if spec.cycles is None:
        epochs = spec.epochs
        warnings += cycle_end_warning(step_size, epochs * per_epoch, per_epoch)
    else:
        cycle_iterations = spec.cycles * 2 * step_size
        epochs = max(1, round(cycle_iterations / per_epoch))
        if epochs * per_epoch != cycle_iterations:
            warnings.append(
                f"cycles={spec.cycles} is {cycle_iterations} iterations, {cycle_iterations / per_epoch:.3g} epochs of "
                f"{per_epoch}: training runs {epochs} epochs ({epochs * per_epoch} iterations); a `step_size_epochs` "
                "of whole epochs ends exactly at the cycle's end"
            )
    return TrainingPlan(per_epoch, step_size, epochs, tuple(warnings))


def momentum_cycle(policy: CLRConfig | WholeTrainingPolicy, lr_arguments: dict) -> dict | None:
    """The momentum schedule cycled against the LR schedule of `lr_arguments`, as `{"policy": ..., "arguments":
    ...}` (the arguments of its numpy factory and of its in-graph class), or None when it is fixed."""
    if not getattr(policy, "cycle_momentum", False):
        return None
    momentum_policy, _, shared = policy.momentum_follows
    arguments = {"base_momentum": policy.base_momentum, "max_momentum": policy.max_momentum}
    return {"policy": momentum_policy, "arguments": arguments | {name: lr_arguments[name] for name in shared}}
