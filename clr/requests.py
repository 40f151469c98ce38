"""The bases of the request models (`clr.config`, `clr.policies`): strict parsing, and what a schedule policy
declares to the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clr.schedules import Schedule

LearningRate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
MOMENTUM_FIELDS = frozenset({"cycle_momentum", "base_momentum", "max_momentum"})
MOMENTUM_SCHEDULES: dict[str, Callable[..., Schedule]] = {}  # a policy's name: the momentum cycled against its LR


class Strict(BaseModel):
    """Unknown fields are an error, not silently ignored; no value is coerced from another type (`false` is no
    number, `"3"` no integer)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class MomentumCycling(Strict):
    """Momentum cycled against the LR (Smith, arXiv 1803.09820): from `max_momentum` where the LR is lowest to
    `base_momentum` where it peaks. It replaces the optimizer's own: SGD's and RMSprop's `momentum`, Adam's `beta_1`.
    The defaults are PyTorch's `CyclicLR`'s, which cycles momentum by default; Smith's CLR paper keeps it fixed.

    A policy that cycles momentum declares `momentum_follows`: its name, the momentum's schedule, and the LR
    schedule's arguments that the momentum's shares; it joins `MOMENTUM_SCHEDULES`."""

    momentum_follows: ClassVar[tuple[str, Callable[..., Schedule], tuple[str, ...]]]
    cycle_momentum: bool = False
    base_momentum: float = Field(0.8, ge=0, lt=1)
    max_momentum: float = Field(0.9, gt=0, lt=1)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "momentum_follows" in vars(cls):
            name, schedule, _ = cls.momentum_follows
            MOMENTUM_SCHEDULES[name] = schedule

    @model_validator(mode="after")
    def _momentum_range(self) -> Self:
        if self.cycle_momentum and not self.base_momentum < self.max_momentum:
            raise ValueError(f"`base_momentum` must be < `max_momentum`. Received: base_momentum="
                             f"{self.base_momentum!r}, max_momentum={self.max_momentum!r}")
        return self

    def lr_arguments(self, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The fields that are the LR schedule's arguments (all but the momentum's and `exclude`)."""
        return self.model_dump(exclude=MOMENTUM_FIELDS | exclude)


class WholeTrainingPolicy(Strict):
    """A policy other than `clr`, spanning the whole training, as submitted (a `policy` literal names it): a module of
    `clr.policies` defines one, and it joins the registry (`clr.policies.SCHEDULE_POLICIES`). It names its schedule
    (`oracle`, a `clr.schedules.Schedule` factory: numpy and, through `clr.keras_schedule`, in-graph) and the field
    of its peak rate (`rate`, which a range test may give instead)."""

    oracle: ClassVar[Callable[..., Schedule]]
    rate: ClassVar[str]

    @classmethod
    def name(cls) -> str:
        """The policy's name, as `policy` gives it."""
        return get_args(cls.model_fields["policy"].annotation)[0]

    @property
    def given_lr(self) -> float | None:
        return getattr(self, self.rate)

    def schedule_arguments(self, peak_lr: float, total_steps: int, per_epoch: int | None) -> dict[str, Any]:
        """The arguments of the policy's schedule over `total_steps` peaking at `peak_lr`, which its numpy oracle and
        its in-graph class share; `per_epoch` converts epochs to iterations where the request counts in epochs."""
        raise NotImplementedError

