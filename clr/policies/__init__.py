"""Schedule policies beyond the seed's cyclical LR (`clr.schedules`), one module each: its schedule (a
`clr.schedules.Schedule`: the numpy oracle and, through `clr.keras_schedule`, the in-graph form) and its request
model (a `clr.requests.WholeTrainingPolicy`). Every module of this package is imported, and each request model it
defines joins `SCHEDULE_POLICIES`, in the order they are imported."""

# ruff: noqa: I001
from __future__ import annotations

import importlib
import pkgutil

# The order of these imports is the registry's, as error messages and the OpenAPI document list the policies.
from clr.policies.one_cycle import ANNEALS, Anneal, anneal, one_cycle_lr, one_cycle_momentum, one_cycle_phases
from clr.policies.cosine_restarts import cosine_restarts_lr
from clr.policies.constant import constant_lr
from clr.requests import WholeTrainingPolicy
from clr.schedules import cyclical_momentum

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

SCHEDULE_POLICIES: tuple[type[WholeTrainingPolicy], ...] = tuple(WholeTrainingPolicy.__subclasses__())

__all__ = ["ANNEALS", "SCHEDULE_POLICIES", "Anneal", "anneal", "constant_lr", "cosine_restarts_lr", "cyclical_momentum",
           "one_cycle_lr", "one_cycle_momentum", "one_cycle_phases"]
