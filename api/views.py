"""How jobs look over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union

from fastapi import Response
from pydantic import BaseModel, Field, create_model

from api.result_views import RESULT_VIEWS, RangeTestResult, Reported, TrainingResult
from worker.kinds import KINDS, KindName
from worker.records import JobRecord


class Progress(BaseModel):
    iteration: int
    total_iterations: int
    epoch: int
    epochs: int
    verifying: dict[str, int] | None = None  # a range test training its candidates: {"candidate": i, "of": n}


class Job(BaseModel):
    """A job as the API reports it, whatever its kind (a `RangeTestJob`, a `TrainingJob`: `<Kind>Job`)."""

    id: str
    kind: KindName
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: Progress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    resumes: list[dict[str, int]]
    warnings: list[str]
    error: str | None
    result: Reported | None
    range_test: RangeTestResult | None = None  # the range test a training ran first, once it ended
    head: TrainingResult | None = None  # a training that `unfreeze`s: its head's stage, once it ended
    unfrozen_range_test: RangeTestResult | None = None  # ...and its whole network's range test, once it ended
    children: dict[str, dict[str, str]] | None = None  # a comparison's trainings: arm to seed to job id
    comparison: dict[str, Any] | None = None  # the comparison a training is one run of: its `id`, `arm` and `seed`
    skipped_iterations: list[int] | None = None  # its curve's steps that `mixed_float16`'s loss scaling skipped
    spec: dict[str, Any]
    links: dict[str, str]


def kind_view(kind: str) -> type[Job]:
    """The view of a job of `kind`, named `<Kind>Job`: its `result` once it ended, typed where the kind has a result
    view (`api.result_views.RESULT_VIEWS`)."""
    name = "".join(word.title() for word in kind.split("_")) + "Job"
    result = RESULT_VIEWS.get(kind, Reported)
    return create_model(name, __base__=Job, __doc__=f"A job of kind `{kind}`; its `result`: {result.__doc__}",
                        kind=(Literal[kind], ...), result=(result | None, ...))


JOB_VIEWS = {kind: kind_view(kind) for kind in KINDS}
JobView = Annotated[Union[tuple(JOB_VIEWS.values())], Field(discriminator="kind")]  # noqa: UP007 (of the registry)


class JobPage(BaseModel):
    total: int
    offset: int
    limit: int
    jobs: list[JobView]


def as_json(view: BaseModel) -> Response:
    """A view the API built itself, serialized once: FastAPI would first validate it again against the route's
    `response_model` (which the OpenAPI document still declares), a pass a polled route can do without."""
    return Response(view.model_dump_json(), media_type="application/json")


def answer_as(media_type: str, description: str, binary: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a 200 that is no JSON: bytes of `media_type`, or text (`binary=False`)."""
    schema = {"type": "string", "format": "binary"} if binary else {"type": "string"}
    return {200: {"content": {media_type: {"schema": schema}}, "description": description}}


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def job_view(job: JobRecord) -> Job:
    """The record from the store, shaped for clients."""
    path = f"/jobs/{job['id']}"
    return JOB_VIEWS[job["kind"]](
        id=job["id"],
        kind=job["kind"],
        state=job["state"],
        progress=Progress(**{name: job.get(name) for name in ("iteration", "total_iterations", "epoch", "epochs",
                                                              "verifying")}),
        created_at=_time(job["created_at"]),
        started_at=_time(job["started_at"]),
        finished_at=_time(job["finished_at"]),
        attempts=job["attempts"],
        resumes=job["resumes"] or [],
        warnings=job["warnings"] or [],
        error=job["error"],
        result=job["result"],
        range_test=job["range_test"],
        head=job.get("head"),
        unfrozen_range_test=job.get("unfrozen_range_test"),
        children=job.get("children"),
        comparison=job.get("comparison"),
        skipped_iterations=job.get("skipped_iterations"),
        spec=job["spec"],
        links={"self": path, "curves": f"{path}/curves", "plot": f"{path}/plot.png", "cancel": f"{path}/cancel"}
        | ({"model": f"{path}/model"} if KINDS[job["kind"]].trains_model else {}),
    )
