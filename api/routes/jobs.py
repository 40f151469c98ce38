"""Submitting, listing, cancelling and deleting jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from fastapi.responses import FileResponse
from kombu.exceptions import OperationalError

from api.deps import CallerDep, CeleryDep, JobDep, SettingsDep, StoreDep, owns
from api.errors import error_responses
from api.examples import EXAMPLES
from api.keys import ApiKey
from api.routes.datasets import dataset_meta
from api.views import JobPage, JobView, answer_as, as_json, job_view
from clr.architectures import check_input_shape
from clr.config import JobSpec
from clr.tasks import Task, labels_in
from worker.celery_app import RUN_JOB
from worker.comparisons import child_ids, current, settle, settle_parent
from worker.job_files import stored_bytes
from worker.kinds import KINDS, JobKind, KindName
from worker.records import TERMINAL_STATES, JobRecord
from worker.settings import Settings
from worker.store import JobStore

router = APIRouter(tags=["jobs"])
RETRY_ACTIVE_S = 30


def bounds_of(range_test_id: str, accept_low_confidence: bool, store: JobStore, key: ApiKey
              ) -> tuple[float, float]:
    """The bounds a finished range test of the caller's suggested; 404, 409 or 422 naming `range_test_id`."""
    job = store.get(range_test_id)
    if not owns(key, job):
        raise HTTPException(404, f"range_test_id: no job with id {range_test_id!r}")
    if not KINDS[job["kind"]].sweeps_lr:
        raise HTTPException(422, f"range_test_id: job {range_test_id!r} is a {job['kind']}, not a range test")
    if job["state"] != "succeeded":
        raise HTTPException(409, f"range_test_id: range test {range_test_id!r} is {job['state']}, not succeeded")
    result = job["result"] or {}
    bounds = result.get("suggested_bounds")
    if not bounds:
        raise HTTPException(409, f"range_test_id: range test {range_test_id!r} suggested no bounds: "
                                 f"{result.get('warning', 'no reason recorded')}")
    if bounds["confidence"] == "low" and not accept_low_confidence:
        raise HTTPException(409, f"range_test_id: the bounds of range test {range_test_id!r} have low confidence "
                                 f"({'; '.join(bounds['reasons'])}); set `accept_low_confidence` to use them anyway")
    return bounds["min_lr"], bounds["max_lr"]


def checked_samples(spec: JobSpec, store: JobStore, settings: Settings, key: ApiKey) -> int:
    """The training samples of the job's dataset, once its labels fit the loss, its samples the architecture, and
    its uploaded model is there with the layers the spec names; 422 naming the field otherwise."""
    if spec.precision == "mixed_float16" and settings.keras_backend != "tensorflow":
        raise HTTPException(422, f"precision: 'mixed_float16' counts a skipped step on the TensorFlow backend only; "
                                 f"the workers train on {settings.keras_backend!r} (CLR_KERAS_BACKEND): use "
                                 "'mixed_bfloat16', which skips none")
    meta = dataset_meta(spec.dataset, store, settings, key)
    try:
        Task(spec.loss).required_outputs(labels_in(meta))
    except ValueError as error:
        raise HTTPException(422, f"loss: {error}") from error
    if spec.model.architecture is not None:
        try:
            check_input_shape(spec.model.architecture, tuple(meta["input_shape"]))
        except ValueError as error:
            raise HTTPException(422, f"model.architecture: {error}") from error
    uploaded = store.uploads.get("models", spec.model.id) if spec.model.id is not None else None
    if spec.model.id is not None and not owns(key, uploaded):
        raise HTTPException(422, f"model.id: no uploaded model with id {spec.model.id!r}")
    if (known := spec.model.known_layers(uploaded)) is not None:
        for field, name in spec.layers_named():
            if name not in known:
                raise HTTPException(422, f"{field}: the model has no layer named {name!r}; its layers: "
                                         f"{', '.join(known)}")
    return meta["train_samples"]


def check_limits(key: ApiKey, store: JobStore, jobs: int = 1) -> None:
    """429 when the key would have more queued and running jobs than it may with `jobs` more; 413 when its storage
    quota is used up."""
    if key.max_active_jobs is not None and (active := store.tenants.active_jobs(key.name)) + jobs > key.max_active_jobs:
        more = "" if jobs == 1 else f"; {jobs} more would pass it"
        raise HTTPException(429, f"Key {key.name!r} already has {active} queued or running jobs, of its limit of "
                                 f"{key.max_active_jobs} (max_active_jobs){more}; submit again once one ends",
                            headers={"Retry-After": str(RETRY_ACTIVE_S)})
    if key.max_storage_mb is not None and (stored := store.tenants.usage(key.name)) >= key.max_storage_mb * 2**20:
        raise HTTPException(413, f"Key {key.name!r} stores {stored} bytes, its quota of "
                                 f"{key.max_storage_mb:g} MB (max_storage_mb); delete jobs to free space")


def queue_jobs(jobs: list[dict[str, Any]], store: JobStore, celery: CeleryDep, key: ApiKey) -> list[JobRecord]:
    """Record and queue `jobs` (each `JobStore.create`'s arguments) for the key's tenant, all or none; their records
    as queued (a worker may claim one before the answer leaves)."""
    check_limits(key, store, len(jobs))
    queued: list[JobRecord] = []
    try:
        for job in jobs:
            queued.append(store.get(store.create(**job, owner=key.name)))
            celery.send_task(RUN_JOB, args=[queued[-1]["id"]], task_id=queued[-1]["id"])
    except OperationalError as error:
        for record in queued:
            store.delete(record["id"])
        raise HTTPException(503, f"The job queue is unreachable, nothing was submitted: {error}") from error
    return queued


def submit_route(kind: JobKind) -> Callable[..., JobView]:
    """The route that queues a job of `kind`: its spec checked against its data (and its range test's bounds
    resolved), queued with the kind's advice as warnings."""

    def submit(spec: JobSpec, store: StoreDep, celery: CeleryDep, settings: SettingsDep, key: CallerDep) -> JobView:
        try:
            warnings = kind.advice(spec, checked_samples(spec, store, settings, key))
        except ValueError as error:
            raise HTTPException(422, str(error)) from error
        range_test_id = getattr(spec, "range_test_id", None)
        bounds = bounds_of(range_test_id, spec.accept_low_confidence, store, key) if range_test_id else None
        job = {"kind": kind.name, "spec": spec.model_dump(mode="json"), "bounds": bounds, "warnings": warnings}
        return job_view(queue_jobs([job], store, celery, key)[0])

    submit.__annotations__["spec"] = Annotated[kind.spec, Body(openapi_examples=EXAMPLES.get(kind.name))]
    submit.__doc__ = kind.summary
    return submit


for _kind in (kind for kind in KINDS.values() if kind.runs is not None):
    router.add_api_route(_kind.path, submit_route(_kind), methods=["POST"], name=f"submit_{_kind.name}",
                         status_code=status.HTTP_202_ACCEPTED, response_model=JobView,
                         responses=error_responses(404, 409, 413))


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    store: StoreDep,
    key: CallerDep,
    kind: KindName | None = None,
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    offset: Annotated[int, Query(ge=0, le=2**40)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """The caller's jobs (an admin key's: everyone's), newest first, filtered by kind and state."""
    total, jobs = store.list(kind, state, offset, limit, owner=None if key.admin else key.name)
    return as_json(JobPage(total=total, offset=offset, limit=limit, jobs=[job_view(current(store, job))
                                                                          for job in jobs]))


@router.get("/jobs/{job_id}", response_model=JobView, responses=error_responses(404))
def get_job(job: JobDep, store: StoreDep) -> Response:
    """A job's state, progress and result."""
    return as_json(job_view(current(store, job)))


@router.post("/jobs/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobView,
             responses=error_responses(404, 409))
def cancel_job(job: JobDep, store: StoreDep, settings: SettingsDep) -> JobView:
    """Cancel a queued job, or one whose worker stopped heartbeating, now; ask a running one to stop within a few
    iterations (curves are kept)."""
    if job["state"] in TERMINAL_STATES:
        raise HTTPException(409, f"Job {job['id']!r} already ended: {job['state']}")
    if job.get("children") is None:
        store.request_cancel(job["id"], settings.stale_after_s)
        settle_parent(store, job)  # where a queued training of a comparison was its last one running
        return job_view(store.get(job["id"]))
    store.ask_to_cancel(job["id"])
    for child in store.get_many(child_ids(job)):
        if child is not None and child["state"] not in TERMINAL_STATES:
            store.request_cancel(child["id"], settings.stale_after_s)
    return job_view(settle(store, store.get(job["id"])))


@router.get(
    "/jobs/{job_id}/model",
    response_class=FileResponse,
    responses=answer_as("application/octet-stream", "The `.keras` file") | error_responses(404, 409),
)
def download_model(job: JobDep, settings: SettingsDep, which: Literal["final", "best"] = "final",
                   include_optimizer: bool = False) -> FileResponse:
    """A training's model as a `.keras` file: `final` (trained) or `best` (lowest validation loss). Plain Keras
    loads it (`keras.saving.load_model`): Keras's own optimizer at the rate and momentum of the job's last step.
    `include_optimizer=true`: the full training state instead, this package's optimizer with its in-graph LR and
    momentum schedules, to train on with `clr` (`import clr.keras_momentum` before loading)."""
    if not KINDS[job["kind"]].trains_model:
        raise HTTPException(404, f"Job {job['id']!r} is a {job['kind'].replace('_', ' ')}: it trains no model to keep")
    if job["state"] not in TERMINAL_STATES:
        raise HTTPException(409, f"Job {job['id']!r} is {job['state']}: its model is saved when it succeeds")
    path = settings.job_files(job["id"]).model(which, training_state=include_optimizer)
    if not settings.storage().fetch(path):
        why = ("it had no validation data" if which == "best" and job["state"] == "succeeded"
               else f"it {job['state']} before saving one" if job["state"] != "succeeded" else "its file is gone")
        raise HTTPException(404, f"Job {job['id']!r} has no {which} model: {why}")
    return FileResponse(path, media_type="application/octet-stream", filename=f"{job['id']}.keras")


@router.delete("/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409))
def delete_job(job: JobDep, store: StoreDep, settings: SettingsDep) -> Response:
    """Remove a finished job, its curves, models and checkpoint; a comparison with its trainings."""
    if job["state"] not in TERMINAL_STATES:
        raise HTTPException(409, f"Job {job['id']!r} is {job['state']}: cancel it before deleting it")
    if job.get("comparison") and store.get(job["comparison"]["id"]) is not None:
        raise HTTPException(409, f"Job {job['id']!r} is a training of comparison {job['comparison']['id']!r}: delete "
                                 "the comparison, with all its trainings")
    for child in store.get_many(child_ids(job)):
        if child is not None:
            remove_job(child, store, settings)
    remove_job(job, store, settings)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def remove_job(job: JobRecord, store: JobStore, settings: Settings) -> None:
    """Remove an ended job's record, curves and files, and give its bytes back to its tenant."""
    store.delete(job["id"])
    files = settings.job_files(job["id"])
    files.remove()
    settings.storage().remove(files.folder)
    store.tenants.add_usage(job["owner"], -stored_bytes(job["result"] or {}))
