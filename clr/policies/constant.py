"""The constant rate: the fixed-LR baseline of Smith's Table 1, which the cyclical policies are measured against."""

from __future__ import annotations

from typing import Any, Literal

from clr.requests import LearningRate, WholeTrainingPolicy
from clr.schedules import Schedule, check_positive_lr


def constant_lr(lr: float) -> Schedule:
    """The same rate at every iteration."""
    check_positive_lr("lr", lr)
    return Schedule(lambda it, xp: it * 0.0 + lr)


class ConstantRequest(WholeTrainingPolicy):
    """A fixed rate (`clr.policies.constant_lr`), given, not taken from a range test (whose bounds are the edges of a
    good range, not a rate to hold)."""

    oracle = staticmethod(constant_lr)
    rate = "lr"
    policy: Literal["constant"]
    lr: LearningRate

    def schedule_arguments(self, peak_lr: float, total_steps: int, per_epoch: int | None) -> dict[str, Any]:
        return {"lr": peak_lr}
