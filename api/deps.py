"""Dependencies of the route handlers, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated, Any

from celery import Celery
from fastapi import Depends, HTTPException, Request

from worker.settings import Settings
from worker.store import JobStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> JobStore:
    return request.app.state.store


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
CeleryDep = Annotated[Celery, Depends(get_celery)]


def existing_job(job_id: str, store: StoreDep) -> dict[str, Any]:
    """The job with id `job_id`, or 404."""
    job = store.get(job_id)
    if job is None:
        raise HTTPException(404, f"No job with id {job_id!r}")
    return job


JobDep = Annotated[dict[str, Any], Depends(existing_job)]
