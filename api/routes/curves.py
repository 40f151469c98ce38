"""Per-iteration curves as columnar JSON or CSV, and the job's figure."""

from __future__ import annotations

import csv
import io
import json
import threading
from typing import Annotated, Any, Literal

import numpy as np
from cachetools import LRUCache
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import MISSING, BaseModel

from api.deps import JobDep, StoreDep
from api.errors import error_responses
from api.views import answer_as
from clr.analysis import block_summaries, downsample_blocks, downsample_indices, smooth
from clr.bounds import BoundSuggestion
from clr.config import momentum_schedule
from clr.plots import comparison_png, range_test_png, training_png
from worker.kinds import KINDS, PHASES
from worker.records import JobRecord
from worker.store import BLOCK_POINTS, CANDIDATE_PHASES

router = APIRouter(tags=["curves"])
PLOT_POINTS = 4000
Phase = Literal[("training", *PHASES)]
PhaseQuery = Annotated[Phase, Query(description="`range_test`: the range test a training ran first; `unfrozen`: a "
                                                "fine-tuning's whole network after its head, `unfrozen_range_test` "
                                                "its range test; `candidate_N`: the Nth bound pair a verified range "
                                                "test trained")]
MAX_ITERATION = 2**40  # far beyond any curve (a Redis string holds 2**26 points), far below offset overflow
SinceQuery = Annotated[int, Query(ge=0, le=MAX_ITERATION, description="Only iterations >= since")]
MaxPointsQuery = Annotated[int | None, Query(ge=4, le=1_000_000, description="Downsample keeping spikes")]
ArmQuery = Annotated[str | None, Query(max_length=40, description="A comparison's arm: the curves of its training "
                                                                  "with `seed` (by default the first seed)")]
SeedQuery = Annotated[int | None, Query(ge=0, lt=2**32)]


def curve_job(job: JobDep, store: StoreDep, arm: ArmQuery = None, seed: SeedQuery = None) -> JobRecord:
    """The job whose curves are asked for: the job, or the training that ran a comparison's `arm` with `seed`."""
    if arm is None:
        return job
    runs = (job.get("children") or {}).get(arm)
    if runs is None:
        raise HTTPException(404, f"Job {job['id']!r} has no arm {arm!r}" + (
            f"; its arms: {', '.join(job['children'])}" if job.get("children") else ": it is no comparison"))
    child_id = runs.get(str(seed)) if seed is not None else next(iter(runs.values()))
    if child_id is None or (child := store.get(child_id)) is None:
        raise HTTPException(404, f"Arm {arm!r} of comparison {job['id']!r} has no run with seed {seed}")
    return child


CurveJob = Annotated[JobRecord, Depends(curve_job)]


class Curves(BaseModel):
    """One entry per iteration in each column (a non-finite value as null), and the metrics of each epoch."""

    iteration: list[int]
    lr: list[float | None]
    loss: list[float | None]
    smoothed_loss: list[float | None] | MISSING = MISSING  # a range test's
    accuracy: list[float | None] | MISSING = MISSING  # a range test's per batch, for a classification loss
    momentum: list[float | None] | MISSING = MISSING  # a training's that cycles it
    epochs: list[dict[str, float | None]]


def json_column(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN or inf: non-finite values are sent as null."""
    items = values.tolist()
    for index in np.flatnonzero(~np.isfinite(values)):
        items[index] = None
    return items


def range_test_of(job: JobRecord, phase: Phase) -> tuple[str, dict[str, Any]] | None:
    """(curve phase, sweep spec) when the curve asked for is a range test's: a range-test job's, or the one a
    training ran first; None for a training's own curve and a verification candidate's."""
    if phase in CANDIDATE_PHASES:
        return None
    if KINDS[job["kind"]].sweeps_lr:
        return "", job["spec"]
    if phase in ("range_test", "unfrozen_range_test"):
        stage = job["spec"] if phase == "range_test" else job["spec"].get("unfreeze") or {}
        if stage.get("range_test") is None:
            field = "range_test" if phase == "range_test" else "unfreeze.range_test"
            raise HTTPException(404, f"Job {job['id']!r} ran no {phase.replace('_', ' ')} (no `{field}` in its spec)")
        return phase, stage["range_test"]
    return None


def own_phase(phase: Phase) -> str:
    """The stored curve of a phase that is no range test: the training's own (""), or a candidate's."""
    return "" if phase == "training" else phase


BLOCKS_ENOUGH = 0.9  # a curve is downsampled from its blocks once they give this share of the points asked or more
DOWNSAMPLED = LRUCache(maxsize=64)  # this API process's downsampled curves, by what decides them
DOWNSAMPLED_LOCK = threading.Lock()


def curve_columns(job: JobRecord, store: StoreDep, since: int, max_points: int | None = None,
                  phase: Phase = "training") -> dict[str, np.ndarray]:
    """`read_columns`, a downsampled answer kept per curve length and attempt: every client polling a long curve
    between two flushes of its job (or a finished job's, for good) gets it read and downsampled once."""
    if max_points is None:
        return read_columns(job, store, since, None, phase)
    sweep = range_test_of(job, phase)
    stored = store.curve_length(job["id"], sweep[0] if sweep else own_phase(phase))
    key = (job["id"], job["attempts"], phase, since, max_points, stored)
    with DOWNSAMPLED_LOCK:
        columns = DOWNSAMPLED.get(key)
    if columns is None:
        columns = read_columns(job, store, since, max_points, phase)
        with DOWNSAMPLED_LOCK:
            DOWNSAMPLED[key] = columns
    return columns


def read_columns(job: JobRecord, store: StoreDep, since: int, max_points: int | None = None,
                 phase: Phase = "training") -> dict[str, np.ndarray]:
    """The job's curve from iteration `since` (+ the smoothed loss of a range test and each batch's accuracy where it
    recorded them, + the momentum of a training that cycles it: a function of the iteration, like the LR),
    downsampled to `max_points` (a long curve from its block summaries)."""
    if sweep := range_test_of(job, phase):  # the smoothed loss needs the curve from its start
        curve = store.curve(job["id"], phase=sweep[0])
        smoothed = smooth(curve.losses, sweep[1]["beta"])
        columns = {"iteration": curve.iterations, "lr": curve.lrs, "loss": curve.losses, "smoothed_loss": smoothed}
        if curve.accuracies is not None:
            columns["accuracy"] = curve.accuracies
        columns = {name: values[since:] for name, values in columns.items()}
    elif max_points is not None and since == 0 and (
            2 * (store.curve_length(job["id"], own_phase(phase)) // BLOCK_POINTS) >= BLOCKS_ENOUGH * max_points):
        columns = dict(zip(("iteration", "lr", "loss"), from_blocks(job, store, max_points, own_phase(phase)),
                           strict=True))
        max_points = None  # downsampled already
    else:
        curve = store.curve(job["id"], since, own_phase(phase))
        columns = {"iteration": curve.iterations, "lr": curve.lrs, "loss": curve.losses}
    if not sweep and phase == "training" and (cycle := job.get("momentum_cycle")):
        columns["momentum"] = momentum_schedule(cycle)(columns["iteration"])
    if max_points is not None:
        chosen = downsample_indices(columns["loss"], max_points)  # keeps the first non-finite point itself
        columns = {name: values[chosen] for name, values in columns.items()}
    return columns


def from_blocks(job: JobRecord, store: StoreDep, max_points: int, phase: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A curve long enough for most buckets to be whole blocks, downsampled from its block summaries and the points
    after them (`JobStore.curve_blocks`): kilobytes read where the curve is megabytes, the same spikes and
    divergence kept (`clr.analysis.downsample_blocks`)."""
    blocks, tail = store.curve_blocks(job["id"], phase)
    if len(tail.losses):
        blocks = np.concatenate([blocks, block_summaries(int(tail.iterations[0]), tail.lrs, tail.losses,
                                                         BLOCK_POINTS)])
        last = (int(tail.iterations[-1]), float(tail.lrs[-1]), float(tail.losses[-1]))
    else:
        last = store.curve_point(job["id"], len(blocks) * BLOCK_POINTS - 1, phase)
    return downsample_blocks(blocks, (store.curve_point(job["id"], 0, phase), last), max_points)


def csv_response(columns: dict[str, np.ndarray]) -> Response:
    """The columns as CSV: a header row, then a row per iteration."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*(values.tolist() for values in columns.values()), strict=True))
    return Response(out.getvalue(), media_type="text/csv")


@router.get("/jobs/{job_id}/curves", response_model=Curves, responses=answer_as(
    "text/csv", "The columns as JSON, or as CSV with `format=csv` (a generated client, parsing by the path, asks "
                "`curves.csv` for CSV)", binary=False) | error_responses(404))
def get_curves(
    job: CurveJob,
    store: StoreDep,
    since: SinceQuery = 0,
    max_points: MaxPointsQuery = None,
    format: Literal["json", "csv"] = "json",
    phase: PhaseQuery = "training",
) -> Response:
    """The LR and true loss of every iteration (+ smoothed loss and per-batch accuracy for range tests, + momentum
    where it cycles, + per-epoch metrics)."""
    columns = curve_columns(job, store, since, max_points, phase)
    if format == "csv":
        return csv_response(columns)
    body: dict[str, Any] = {name: json_column(values) for name, values in columns.items()}
    body["epochs"] = job["epoch_history"] or []
    return Response(json.dumps(body, allow_nan=False), media_type="application/json")


@router.get("/jobs/{job_id}/curves.csv", response_class=Response,
            responses=answer_as("text/csv", "The columns as CSV", binary=False) | error_responses(404))
def get_curves_csv(job: CurveJob, store: StoreDep, since: SinceQuery = 0, max_points: MaxPointsQuery = None,
                   phase: PhaseQuery = "training") -> Response:
    """The columns of `/curves` as CSV (without the per-epoch metrics)."""
    return csv_response(curve_columns(job, store, since, max_points, phase))


@router.get("/jobs/{job_id}/plot.png", response_class=Response,
            responses=answer_as("image/png", "The figure") | error_responses(404))
def get_plot(job: JobDep, store: StoreDep, phase: PhaseQuery = "training") -> Response:
    """The range-test figure (with suggested bounds), the training figure, or a comparison's overlay of its arms."""
    if job.get("children") is not None:
        png = comparison_png({arm: [(curve.iterations, curve.lrs, curve.losses) for curve in
                                    (store.curve(job_id) for job_id in runs.values())]
                              for arm, runs in job["children"].items()})
    elif sweep := range_test_of(job, phase):
        curve = store.curve(job["id"], phase=sweep[0])
        result = (job[sweep[0]] if sweep[0] else job["result"]) or {}  # a training's own range test, or the job
        bounds = result.get("suggested_bounds")
        smoothed = smooth(curve.losses, sweep[1]["beta"])
        png = range_test_png(curve.lrs, curve.losses, smoothed, BoundSuggestion.from_dict(bounds) if bounds else None,
                             result.get("warning"), result.get("verification") or (), curve.accuracies)
    else:
        curve = store.curve(job["id"], phase=own_phase(phase))
        chosen = downsample_indices(curve.losses, PLOT_POINTS) if len(curve.losses) > PLOT_POINTS else slice(None)
        history = job["epoch_history"] or []
        metrics = {name: [epoch.get(name) for epoch in history] for name in (history[0] if history else {})}
        clr = (job["result"] or {}).get("clr") if phase == "training" else None
        cycle = job.get("momentum_cycle") if phase == "training" else None
        png = training_png(curve.iterations[chosen], curve.lrs[chosen], curve.losses[chosen], metrics,
                           2 * clr["step_size"] if clr else None,
                           momentum_schedule(cycle)(curve.iterations[chosen]) if cycle else None)
    return Response(png, media_type="image/png")
