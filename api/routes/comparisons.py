"""Comparisons: the same training under several schedules and seeds, run as ordinary trainings, and their table."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Response, status

from api.deps import CallerDep, CeleryDep, JobDep, SettingsDep, StoreDep
from api.errors import error_responses
from api.examples import EXAMPLES
from api.routes.jobs import bounds_of, checked_samples, queue_jobs
from api.views import JobView, answer_as, job_view
from clr.config import ComparisonSpec, TrainingSpec
from worker.kinds import training_advice
from worker.store import new_job_id

router = APIRouter(tags=["comparisons"])


@router.post("/comparisons", status_code=status.HTTP_202_ACCEPTED, response_model=JobView,
             responses=error_responses(404, 409, 413))
def submit_comparison(
    spec: Annotated[ComparisonSpec, Body(openapi_examples=EXAMPLES["comparison"])], store: StoreDep,
    celery: CeleryDep, settings: SettingsDep, key: CallerDep,
) -> JobView:
    """Queue the same training under each arm's schedule, once per seed, as trainings of their own (several workers
    run them at once; each keeps its curves, models and checkpoints); the comparison ends with its table
    (`result.arms`) once they all have. Its `children` are their ids, by arm and seed."""
    runs = spec.runs()
    samples = checked_samples(runs[0][2], store, settings, key)
    admitted = {arm.name: admit(index, spec.training_of(arm, spec.seeds[0]), samples, store, key)
                for index, arm in enumerate(spec.arms)}  # the same for every seed
    comparison_id = new_job_id()
    jobs = [{"kind": "training", "spec": training.model_dump(mode="json"), **admitted[arm.name],
             "comparison": {"id": comparison_id, "arm": arm.name, "seed": seed}} for arm, seed, training in runs]
    children: dict[str, dict[str, str]] = {}
    for job, record in zip(jobs, queue_jobs(jobs, store, celery, key), strict=True):
        children.setdefault(job["comparison"]["arm"], {})[str(job["comparison"]["seed"])] = record["id"]
    store.create_comparison(comparison_id, spec.model_dump(mode="json"), children, owner=key.name)
    return job_view(store.get(comparison_id))


def admit(index: int, training: TrainingSpec, samples: int, store: StoreDep, key: CallerDep) -> dict[str, Any]:
    """The warnings and the range test's bounds an arm's trainings are queued with; 422 naming the arm."""
    try:
        warnings = training_advice(training, samples)
    except ValueError as error:
        raise HTTPException(422, f"arms[{index}]: {error}") from error
    bounds = (bounds_of(training.range_test_id, training.accept_low_confidence, store, key)
              if training.range_test_id else None)
    return {"warnings": warnings, "bounds": bounds}


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The comparison table, a row per arm and figure (`final`, `best`: a metric's mean, std and runs)."""
    rows = []
    for arm in result.get("arms", []):
        reached = arm.get("iterations_to_target")
        to_target = reached if reached in (None, "never") else reached["mean"]
        for figure in ("final", "best"):
            for metric, value in arm[figure].items():
                rows.append({"arm": arm["name"], "runs": arm["runs"], "figure": figure, "metric": metric,
                             "mean": value["mean"], "std": value["std"], "n": value["n"],
                             "iterations_to_target": to_target})
    return rows


@router.get("/jobs/{job_id}/table.csv", response_class=Response,
            responses=answer_as("text/csv", "The comparison's table", binary=False) | error_responses(404, 409))
def get_table_csv(job: JobDep) -> Response:
    """A finished comparison's table as CSV: a row per arm, figure (`final`, `best`) and metric, with the mean, the
    standard deviation over seeds and the iterations to reach the best fixed-rate arm's final accuracy."""
    if job.get("children") is None:
        raise HTTPException(404, f"Job {job['id']!r} is a {job['kind'].replace('_', ' ')}, not a comparison")
    if not job["result"]:
        raise HTTPException(409, f"Comparison {job['id']!r} is {job['state']}: its table comes when it ends")
    out = io.StringIO()
    writer = csv.DictWriter(out, ["arm", "runs", "figure", "metric", "mean", "std", "n", "iterations_to_target"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(job["result"]))
    return Response(out.getvalue(), media_type="text/csv")
