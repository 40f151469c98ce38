"""Previewing a cyclical schedule with the numpy oracle; no worker involved."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from clr.config import CLRConfig, Strict
from clr.schedules import cyclical_lr

router = APIRouter(tags=["schedules"])


class PreviewRequest(Strict):
    clr: CLRConfig
    iterations: int = Field(ge=1, le=1_000_000)


class Preview(BaseModel):
    iteration: list[int]
    lr: list[float]


EXAMPLE = {"clr": {"base_lr": 0.001, "max_lr": 0.006, "step_size": 2000, "mode": "triangular2"}, "iterations": 12000}


@router.post("/schedules/preview", response_model=Preview)
def preview_schedule(request: Annotated[PreviewRequest, Body(openapi_examples={"triangular2": {"value": EXAMPLE}})]):
    """The LR of iterations 0..N-1 for a CLR config."""
    iterations = np.arange(request.iterations)
    return Preview(iteration=iterations.tolist(), lr=cyclical_lr(**request.clr.model_dump())(iterations).tolist())
