"""Previewing a schedule (cyclical, 1cycle or SGDR) with the numpy oracles; no worker involved."""

from __future__ import annotations

from typing import Annotated, Self

import numpy as np
from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field, model_validator

from api.deps import CallerDep, SettingsDep, StoreDep
from api.routes.datasets import dataset_meta
from clr.config import POLICY_NAMES, CLRConfig, DatasetSpec, Policy, Strict, momentum_schedule
from clr.plan import cycle_end_warning, iterations_per_epoch, momentum_cycle, step_size_warning
from clr.schedules import cyclical_lr

router = APIRouter(tags=["schedules"])


class PreviewRequest(Strict):
    clr: CLRConfig | None = None
    schedule: Policy | None = Field(None, description=f"{POLICY_NAMES}, with its LR given")
    iterations: int = Field(ge=2, le=1_000_000)
    dataset: DatasetSpec | None = Field(None, description="With `batch_size`: advice on the step size and length")
    batch_size: int | None = Field(None, ge=1, le=65536)
    validation_split: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        if (self.clr is None) == (self.schedule is None):
            raise ValueError("Give exactly one of `clr` and `schedule`")
        if self.schedule is not None and self.schedule.given_lr is None:
            raise ValueError("A previewed `schedule` needs its LR (`max_lr` or `initial_lr`)")
        return self


class Preview(BaseModel):
    iteration: list[int]
    lr: list[float]
    momentum: list[float] | None = Field(None, description="Where the schedule cycles it")
    iterations_per_epoch: int | None = None
    warnings: list[str] = []


EXAMPLE = {"clr": {"base_lr": 0.001, "max_lr": 0.006, "step_size": 2000, "mode": "triangular2"}, "iterations": 12000}
WITH_DATA = {"clr": {"base_lr": 0.001, "max_lr": 0.006, "step_size": 180, "mode": "triangular"}, "iterations": 720,
             "dataset": {"name": "digits"}, "batch_size": 32}


@router.post("/schedules/preview", response_model=Preview)
def preview_schedule(
    request: Annotated[
        PreviewRequest,
        Body(openapi_examples={"triangular2": {"value": EXAMPLE}, "with advice for digits": {"value": WITH_DATA}}),
    ],
    store: StoreDep,
    settings: SettingsDep,
    key: CallerDep,
) -> Preview:
    """The LR (and the momentum, where it cycles) of iterations 0..N-1 for a `clr` config or another `schedule`; with
    a dataset and batch size, Smith's advice on a `clr` config too."""
    iterations = np.arange(request.iterations)
    per_epoch, warnings = None, []
    try:
        if request.dataset is not None and request.batch_size is not None:
            samples = dataset_meta(request.dataset, store, settings, key)["train_samples"]
            per_epoch = iterations_per_epoch(samples, request.batch_size, request.validation_split)
        if request.clr is not None:
            arguments = request.clr.lr_arguments()
            schedule, cycle = cyclical_lr(**arguments), momentum_cycle(request.clr, arguments)
            if per_epoch is not None:
                step_size = request.clr.step_size
                warnings = step_size_warning(step_size, per_epoch) + cycle_end_warning(step_size, request.iterations,
                                                                                        per_epoch)
        else:
            policy = request.schedule
            arguments = policy.schedule_arguments(policy.given_lr, request.iterations, per_epoch)
            schedule, cycle = policy.oracle(**arguments), momentum_cycle(policy, arguments)
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    momentum = momentum_schedule(cycle)(iterations).tolist() if cycle else None
    return Preview(iteration=iterations.tolist(), lr=schedule(iterations).tolist(), momentum=momentum,
                   iterations_per_epoch=per_epoch, warnings=warnings)
