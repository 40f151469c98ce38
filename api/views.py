"""How jobs look over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel


class Progress(BaseModel):
    iteration: int
    total_iterations: int
    epoch: int
    epochs: int
    verifying: dict[str, int] | None = None  # a range test training its candidates: {"candidate": i, "of": n}


class JobView(BaseModel):
    """A job as the API reports it."""

    id: str
    kind: Literal["range_test", "training"]
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: Progress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    resumes: list[dict[str, int]]
    warnings: list[str]
    error: str | None
    result: dict[str, Any] | None
    range_test: dict[str, Any] | None = None  # the range test a training ran first, once it ended
    spec: dict[str, Any]
    links: dict[str, str]


class JobPage(BaseModel):
    total: int
    offset: int
    limit: int
    jobs: list[JobView]


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def job_view(job: dict[str, Any]) -> JobView:
    """The record from the store, shaped for clients."""
    path = f"/jobs/{job['id']}"
    return JobView(
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
        spec=job["spec"],
        links={"self": path, "curves": f"{path}/curves", "plot": f"{path}/plot.png", "cancel": f"{path}/cancel"}
        | ({"model": f"{path}/model"} if job["kind"] == "training" else {}),
    )
