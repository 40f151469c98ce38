"""Dependencies of the route handlers, as `Annotated` aliases: the caller's key, its tenancy, the stores."""

from __future__ import annotations

import math
from typing import Annotated, Any

from celery import Celery
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.keys import ApiKey, KeyStore
from api.settings import ApiSettings
from worker.records import JobRecord
from worker.store import JobStore

bearer = HTTPBearer(auto_error=False, description="An API key (`clr-service keys create NAME`)")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def get_store(request: Request) -> JobStore:
    return request.app.state.store


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


def get_keys(request: Request) -> KeyStore:
    return request.app.state.keys


def verified(keys: KeyStore, credentials: HTTPAuthorizationCredentials | None) -> ApiKey:
    """The key whose token `credentials` carry: 401 without a valid one."""
    if credentials is None:
        raise HTTPException(401, "Authorization: send `Bearer <API key>`", headers=UNAUTHORIZED)
    key = keys.verify(credentials.credentials)
    if key is None:
        raise HTTPException(401, "Authorization: the API key is unknown or revoked", headers=UNAUTHORIZED)
    return key


def caller(request: Request, credentials: CredentialsDep) -> ApiKey:
    """The key the request carries: 401 without a valid one, 429 past its rate."""
    key = verified(request.app.state.keys, credentials)
    if key.rate is not None and (wait := request.app.state.rate_limiter.wait_s(key.name, key.rate)) > 0:
        raise HTTPException(429, f"Key {key.name!r} is limited to {key.rate:g} requests per second",
                            headers={"Retry-After": str(math.ceil(wait))})
    return key


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
KeysDep = Annotated[KeyStore, Depends(get_keys)]
CallerDep = Annotated[ApiKey, Depends(caller)]


def owns(key: ApiKey, record: dict[str, Any] | None) -> bool:
    """Whether `key` may see `record` (a job or dataset): its own, or any for an admin key."""
    return record is not None and (key.admin or record.get("owner") == key.name)


def existing_job(job_id: str, store: StoreDep, key: CallerDep) -> JobRecord:
    """The caller's job with id `job_id`, or 404 (another tenant's job is answered as one that does not exist)."""
    job = store.get(job_id)
    if not owns(key, job):
        raise HTTPException(404, f"No job with id {job_id!r}")
    return job


JobDep = Annotated[JobRecord, Depends(existing_job)]
