"""Fine-tuning: frozen layers and discriminative learning rates (layer groups, each at its own multiple of the rate).

Keras 3 has no per-layer-group rates (TensorFlow Addons' `MultiOptimizer` went with it). `LayerGroupRates` gives an
optimizer a multiple of its rate per trainable variable: each step updates every group with its own rate, in-graph,
on every backend, whatever the rate's schedule. The update of SGD (with momentum or Nesterov), RMSprop and Adam is
linear in the rate, so a group at `factor` moves exactly as it would under an optimizer of its own at `factor` times
the rate. Weight decay stays at the optimizer's own rate.
"""

from __future__ import annotations

import keras

from clr.keras_momentum import ScheduledMomentumAdam, ScheduledMomentumRMSprop, ScheduledMomentumSGD


def layers_named(model: keras.Model, names: list[str]) -> list[int]:
    """The index in `model.layers` of each of `names`; `ValueError` naming the ones the model lacks."""
    index = {layer.name: position for position, layer in enumerate(model.layers)}
    if missing := [name for name in names if name not in index]:
        raise ValueError(f"The model has no layer named {', '.join(map(repr, missing))}; its layers: "
                         f"{', '.join(index)}")
    return [index[name] for name in names]


def freeze(model: keras.Model, count: int | None = None, until: str | None = None) -> list[str]:
    """Freeze the first `count` of `model.layers`, or those before the layer named `until`; return their names."""
    if until is not None:
        count = layers_named(model, [until])[0]
    if not 0 <= count < len(model.layers):
        raise ValueError(f"Argument `count` must leave a layer to train: 0 <= count < {len(model.layers)} "
                         f"(the model's layers). Received: count={count}")
    for layer in model.layers[:count]:
        layer.trainable = False
    return [layer.name for layer in model.layers[:count]]


def layer_groups(model: keras.Model, starts: list[str], factors: list[float]) -> list[dict]:
    """`model.layers` cut before each layer of `starts` (in order) into groups, each with its factor: `{"layers",
    "factor"}` per group."""
    cuts = layers_named(model, starts)
    if cuts != sorted(set(cuts)) or cuts[0] == 0:
        raise ValueError(f"Argument `starts` must name layers in the model's order, after its first. Received: "
                         f"starts={starts}")
    if len(factors) != len(starts) + 1:
        raise ValueError(f"Argument `factors` must hold one factor per group ({len(starts) + 1}). Received: "
                         f"factors={factors}")
    bounds = [0, *cuts, len(model.layers)]
    return [{"layers": [layer.name for layer in model.layers[start:end]], "factor": float(factor)}
            for start, end, factor in zip(bounds[:-1], bounds[1:], factors, strict=True)]


def variable_factors(model: keras.Model, groups: list[dict]) -> dict[str, float]:
    """Each trainable variable's path to its group's factor, where that is not 1."""
    layers = {layer.name: layer for layer in model.layers}
    return {variable.path: group["factor"] for group in groups if group["factor"] != 1.0
            for name in group["layers"] for variable in layers[name].trainable_variables}


class LayerGroupRates:
    """Mixin before a Keras optimizer class: `factors` maps trainable variables' paths to multiples of the rate
    (1 for the others). Keras calls `_backend_update_step` with the step's rate once per step; here it is called
    once per group, with the group's rate."""

    def __init__(self, factors: dict[str, float] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.factors = dict(factors or {})

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        groups: dict[float, tuple[list, list]] = {}
        for grad, variable in zip(grads, trainable_variables, strict=True):
            group_grads, group_variables = groups.setdefault(self.factors.get(variable.path, 1.0), ([], []))
            group_grads.append(grad)
            group_variables.append(variable)
        for factor, (group_grads, group_variables) in groups.items():
            super()._backend_update_step(group_grads, group_variables,
                                         learning_rate if factor == 1.0 else learning_rate * factor)

    def get_config(self):
        return super().get_config() | {"factors": self.factors}


def _with_layer_rates(optimizer_class: type) -> type:
    name = f"LayerRates{optimizer_class.__name__}"
    return keras.saving.register_keras_serializable(package="clr", name=name)(type(name, (
        LayerGroupRates, optimizer_class), {"__doc__": f"{optimizer_class.__name__} with a rate per layer group.",
                                            "__module__": __name__}))


LAYER_RATE_OPTIMIZERS = {optimizer_class: _with_layer_rates(optimizer_class) for optimizer_class in (
    keras.optimizers.SGD, keras.optimizers.Adam, keras.optimizers.RMSprop,
    ScheduledMomentumSGD, ScheduledMomentumAdam, ScheduledMomentumRMSprop)}
"""The optimizer classes `make_optimizer` may build, each with its layer-group-rates form (registered with Keras
as `clr>LayerRates<Name>`, so a saved training state loads)."""
