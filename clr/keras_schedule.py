"""The schedules in-graph, as Keras `LearningRateSchedule`s: no Python runs per batch. Each evaluates its numpy
oracle's formula (a `clr.schedules.Schedule`) with `keras.ops`; tests pin each to the oracle. The momentum schedules
drive `clr.keras_momentum`'s optimizers."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import keras
from keras import ops

from clr.policies import constant_lr, cosine_restarts_lr, one_cycle_lr, one_cycle_momentum
from clr.schedules import Schedule, cyclical_lr, cyclical_momentum


def widest_float() -> str:
    """float64, where the backend computes in it: JAX does only with `jax_enable_x64` (float32 otherwise)."""
    if keras.backend.backend() == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


class InGraphSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The schedule `oracle` returns, evaluated at the optimizer's iteration count: its formula in the backend's
    widest float (`widest_float`; a 1cycle's annealing loses digits in float32 near its end), as float32. It takes the
    oracle's arguments (its keyword-only ones are numpy-only), checks them as the oracle does, and holds each as an
    attribute and in its config."""

    oracle: ClassVar[Callable[..., Schedule]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        parameters = inspect.signature(self.oracle).parameters.values()
        signature = inspect.Signature([p for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD])
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        self._arguments = dict(bound.arguments)
        self._schedule = self.oracle(**self._arguments)
        vars(self).update(self._arguments)

    def __call__(self, step):
        return ops.cast(self._schedule.formula(ops.cast(step, widest_float()), ops), "float32")

    def get_config(self) -> dict[str, Any]:
        return dict(self._arguments)


def in_graph(oracle: Callable[..., Schedule], name: str) -> type[InGraphSchedule]:
    """The in-graph class of `oracle`'s schedule, registered with Keras as `clr>name` (a `.keras` file names it)."""
    namespace = {"oracle": staticmethod(oracle), "__module__": __name__, "__qualname__": name,
                 "__doc__": f"`{oracle.__module__}.{oracle.__name__}` in-graph."}
    return keras.saving.register_keras_serializable(package="clr")(type(name, (InGraphSchedule,), namespace))


CyclicalSchedule = in_graph(cyclical_lr, "CyclicalSchedule")
CyclicalMomentumSchedule = in_graph(cyclical_momentum, "CyclicalMomentumSchedule")
OneCycleSchedule = in_graph(one_cycle_lr, "OneCycleSchedule")
OneCycleMomentumSchedule = in_graph(one_cycle_momentum, "OneCycleMomentumSchedule")
CosineRestartsSchedule = in_graph(cosine_restarts_lr, "CosineRestartsSchedule")
ConstantSchedule = in_graph(constant_lr, "ConstantSchedule")


def in_graph_schedule(oracle: Callable[..., Schedule], arguments: dict[str, Any]) -> InGraphSchedule:
    """The in-graph form of `oracle(**arguments)`."""
    classes = {schedule.oracle: schedule for schedule in InGraphSchedule.__subclasses__()}
    return classes[oracle](**arguments)
