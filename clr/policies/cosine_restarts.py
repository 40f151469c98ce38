"""SGDR (Loshchilov and Hutter): cosine decay with warm restarts."""

from __future__ import annotations

import math
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from clr.requests import LearningRate, WholeTrainingPolicy
from clr.schedules import Schedule, check_argument, check_positive_lr


def cosine_restarts_lr(initial_lr: float, first_decay_steps: int, t_mul: float = 2.0, m_mul: float = 1.0,
                       alpha: float = 0.0) -> Schedule:
    """Cosine decay from `initial_lr` to `alpha * initial_lr` over a period that starts at `first_decay_steps` and
    grows by `t_mul` at each restart, the peak scaled by `m_mul`; equal to Keras's `CosineDecayRestarts` (which
    computes in float32; this in float64)."""
    check_positive_lr("initial_lr", initial_lr)
    check_argument(isinstance(first_decay_steps, int) and first_decay_steps >= 1, "first_decay_steps",
                   first_decay_steps, "an int >= 1")
    check_argument(t_mul >= 1, "t_mul", t_mul, ">= 1")
    check_argument(0 < m_mul <= 1, "m_mul", m_mul, "in (0, 1]")
    check_argument(0 <= alpha < 1, "alpha", alpha, "in [0, 1)")

    def formula(it, xp):
        fraction = it / first_decay_steps
        if t_mul == 1.0:
            restart = fraction - xp.mod(fraction, 1.0)  # floor(fraction)
            fraction = fraction - restart
        else:
            grows = xp.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul)
            restart = grows - xp.mod(grows, 1.0)
            grown = xp.exp(restart * math.log(t_mul))  # t_mul ** restart
            fraction = (fraction - (1.0 - grown) / (1.0 - t_mul)) / grown
        decayed = 0.5 * xp.exp(restart * math.log(m_mul)) * (1.0 + xp.cos(math.pi * fraction))
        return initial_lr * ((1.0 - alpha) * decayed + alpha)

    return Schedule(formula)


class CosineRestartsRequest(WholeTrainingPolicy):
    """SGDR's warm restarts (`clr.policies.cosine_restarts_lr`); `initial_lr` may come from a range test (its
    `max_lr`), the first period in iterations or in epochs."""

    oracle = staticmethod(cosine_restarts_lr)
    rate = "initial_lr"
    policy: Literal["cosine_restarts"]
    initial_lr: LearningRate | None = None
    first_decay_steps: int | None = Field(None, ge=1)
    first_decay_epochs: float | None = Field(None, gt=0, le=1000, allow_inf_nan=False)
    t_mul: float = Field(2.0, ge=1, le=100, allow_inf_nan=False)
    m_mul: float = Field(1.0, gt=0, le=1)
    alpha: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _one_period(self) -> Self:
        if (self.first_decay_steps is None) == (self.first_decay_epochs is None):
            raise ValueError("Give exactly one of `first_decay_steps` (iterations) and `first_decay_epochs`")
        return self

    def schedule_arguments(self, peak_lr: float, total_steps: int, per_epoch: int | None) -> dict[str, Any]:
        if self.first_decay_steps is None and per_epoch is None:
            raise ValueError("`schedule.first_decay_epochs` needs the data's epoch length: give `dataset` and "
                             "`batch_size`, or `first_decay_steps`")
        steps = self.first_decay_steps or max(1, round(self.first_decay_epochs * per_epoch))
        return {"initial_lr": peak_lr, "first_decay_steps": steps,
                **self.model_dump(exclude={"policy", "initial_lr", "first_decay_steps", "first_decay_epochs"})}
