"""Previewing a cyclical schedule with the numpy oracle; no worker involved."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field

from api.deps import SettingsDep, StoreDep
from api.routes.datasets import train_samples
from clr.config import CLRConfig, DatasetSpec, Strict
from clr.plan import cycle_end_warning, iterations_per_epoch, step_size_warning
from clr.schedules import cyclical_lr

router = APIRouter(tags=["schedules"])


class PreviewRequest(Strict):
    clr: CLRConfig
    iterations: int = Field(ge=1, le=1_000_000)
    dataset: DatasetSpec | None = Field(None, description="With `batch_size`: advice on the step size and length")
    batch_size: int | None = Field(None, ge=1, le=65536)
    validation_split: float = Field(0.0, ge=0, lt=1)


class Preview(BaseModel):
    iteration: list[int]
    lr: list[float]
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
) -> Preview:
    """The LR of iterations 0..N-1 for a CLR config; with a dataset and batch size, Smith's advice on it too."""
    iterations = np.arange(request.iterations)
    preview = Preview(iteration=iterations.tolist(), lr=cyclical_lr(**request.clr.model_dump())(iterations).tolist())
    if request.dataset is not None and request.batch_size is not None:
        try:
            per_epoch = iterations_per_epoch(train_samples(request.dataset, store, settings), request.batch_size,
                                             request.validation_split)
        except ValueError as error:
            raise HTTPException(422, str(error)) from error
        step_size = request.clr.step_size
        preview.iterations_per_epoch = per_epoch
        preview.warnings = (step_size_warning(step_size, per_epoch)
                            + cycle_end_warning(step_size, request.iterations, per_epoch))
    return preview
