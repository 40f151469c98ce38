"""Optimizers whose momentum follows a schedule of the iteration, in-graph (Smith, arXiv 1803.09820): SGD's and
RMSprop's `momentum`, Adam's `beta_1`, the ones PyTorch's `OneCycleLR` and `CyclicLR(cycle_momentum=True)` drive.

Keras 3 optimizers hold these as Python floats that their update step reads. Here the attribute is a
`MomentumVariable`, set once per step (before the updates, at the iteration the LR schedule sees) from the schedule:
the update step's arithmetic reads the variable, and its Python checks of whether momentum is in use
(`momentum != 0`) see the schedule's peak, so the momentum slots exist and the step is traced once.
"""

from __future__ import annotations

import keras

from clr.config import MOMENTUM_SCHEDULES
from clr.keras_schedule import in_graph_schedule


class MomentumVariable(keras.Variable):
    """The momentum of the current step. Compared with a number in Python (`!=`, `>`: an optimizer asking whether
    momentum is in use), it answers for `peak`, its schedule's largest value; in arithmetic it is the variable."""

    def __init__(self, peak: float, **kwargs) -> None:
        self.peak = float(peak)
        super().__init__(self.peak, dtype="float32", trainable=False, aggregation="only_first_replica", **kwargs)

    def __ne__(self, other):
        return self.peak != other

    def __gt__(self, other):
        return self.peak > other


class ScheduledMomentum:
    """Mixin before a Keras optimizer class: `momentum_schedule` (a `clr.keras_schedule` momentum schedule) drives
    the attribute named `MOMENTUM`. A `.keras` file round-trips it (importing this module registers the schedules
    too)."""

    MOMENTUM = "momentum"

    def __init__(self, momentum_schedule, **kwargs) -> None:
        if isinstance(momentum_schedule, dict):  # from a saved config
            momentum_schedule = keras.saving.deserialize_keras_object(momentum_schedule)
        super().__init__(**kwargs | {self.MOMENTUM: float(momentum_schedule.max_momentum)})
        self.momentum_schedule = momentum_schedule
        setattr(self, self.MOMENTUM, MomentumVariable(momentum_schedule.max_momentum, name=self.MOMENTUM))

    def apply(self, grads, trainable_variables=None):
        getattr(self, self.MOMENTUM).assign(self.momentum_schedule(self.iterations))
        return super().apply(grads, trainable_variables)

    def get_config(self):
        return super().get_config() | {self.MOMENTUM: getattr(self, self.MOMENTUM).peak,
                                       "momentum_schedule": keras.saving.serialize_keras_object(self.momentum_schedule)}


@keras.saving.register_keras_serializable(package="clr")
class ScheduledMomentumSGD(ScheduledMomentum, keras.optimizers.SGD):
    """SGD with its `momentum` on a schedule."""


@keras.saving.register_keras_serializable(package="clr")
class ScheduledMomentumRMSprop(ScheduledMomentum, keras.optimizers.RMSprop):
    """RMSprop with its `momentum` on a schedule."""


@keras.saving.register_keras_serializable(package="clr")
class ScheduledMomentumAdam(ScheduledMomentum, keras.optimizers.Adam):
    """Adam with its `beta_1` on a schedule."""

    MOMENTUM = "beta_1"


def in_graph_momentum(cycle: dict) -> keras.optimizers.schedules.LearningRateSchedule:
    """The momentum schedule `clr.plan.momentum_cycle` describes, in-graph (`clr.config.momentum_schedule`'s)."""
    return in_graph_schedule(MOMENTUM_SCHEDULES[cycle["policy"]], cycle["arguments"])
