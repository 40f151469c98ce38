"""Receiving an uploaded file onto the data volume: in chunks, size-limited, its bytes counted against the tenant's
quota in the same atomic step as the check, and removed (its bytes given back) when any check fails; deleting an
upload again."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from fastapi import HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import owns
from api.keys import ApiKey, KeyStore
from worker.storage import Storage
from worker.store import JobStore
from worker.upload_registry import UploadKind

CHUNK_BYTES = 2**20
SPEC_FIELD = {"datasets": "dataset", "models": "model"}  # the job spec's field that names an upload of each kind


def _copy(upload: UploadFile, path: Path, limit: int) -> int:
    """Copy the upload to `path` in chunks, stopping past `limit` bytes; return its size."""
    size = 0
    with path.open("wb") as file:
        while chunk := upload.file.read(CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                break
            file.write(chunk)
    return size


@contextlib.contextmanager
def reserved(store: JobStore, key: ApiKey, size: int, field: str = "file") -> Iterator[None]:
    """Count `size` bytes against tenant `key`'s storage quota in one atomic step with the check (413 naming `field`
    and the quota past it); they are given back if the block fails."""
    quota = None if key.max_storage_mb is None else key.max_storage_mb * 2**20
    after = store.tenants.reserve_usage(key.name, size, quota)
    if quota is not None and after > quota:
        raise HTTPException(413, f"{field}: key {key.name!r} would store {after} bytes, more than its quota of "
                                 f"{key.max_storage_mb:g} MB (max_storage_mb)")
    try:
        yield
    except BaseException:
        store.tenants.add_usage(key.name, -size)
        raise


@contextlib.asynccontextmanager
async def received(upload: UploadFile, directory: Path, suffix: str, limit: int, store: JobStore, key: ApiKey
                   ) -> AsyncIterator[tuple[str, Path, int]]:
    """A new id, the path the upload was written to under `directory` (named by the id, never by the client) and
    its size; the file is removed if the upload or any check in the block fails."""
    upload_id = uuid.uuid4().hex
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{upload_id}{suffix}"
    try:
        size = await run_in_threadpool(_copy, upload, path, limit)
        if size > limit:
            raise HTTPException(413, f"file: the upload exceeds the limit of {limit} bytes")
        with reserved(store, key, size):
            yield upload_id, path, size
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def owned_upload(kind: UploadKind, upload_id: str, store: JobStore, key: ApiKey) -> dict[str, Any]:
    """The caller's upload of `kind` with id `upload_id`, or 404 (another tenant's is answered as one that does not
    exist)."""
    meta = store.uploads.get(kind, upload_id)
    if not owns(key, meta):
        raise HTTPException(404, f"No uploaded {SPEC_FIELD[kind]} with id {upload_id!r}")
    return meta


def check_unused(kind: UploadKind, meta: dict[str, Any], store: JobStore, keys: KeyStore) -> None:
    """409 naming the job while a queued or running job of the upload's owner, or of an admin key (which may use any
    tenant's uploads), uses it."""
    field = SPEC_FIELD[kind]
    tenants = {meta["owner"], *(key.name for key in keys.list() if key.admin)}
    for job in store.get_many([job_id for tenant in tenants for job_id in store.tenants.active_job_ids(tenant)]):
        if job is not None and job["spec"][field].get("id") == meta["id"]:
            raise HTTPException(409, f"{field}.id: {meta['id']!r} is used by job {job['id']!r}, which is "
                                     f"{job['state']}; delete it once the job ends (or cancel the job)")


def remove_upload(kind: UploadKind, meta: dict[str, Any], files: list[Path], storage: Storage, store: JobStore,
                  keys: KeyStore) -> None:
    """Forget the upload, give its bytes back to its owner's quota and delete `files` here and from `storage`; 409
    while a job uses it, 404 when another request deleted it first."""
    check_unused(kind, meta, store, keys)
    if not store.uploads.forget(kind, meta["id"], meta["owner"], meta["bytes"]):
        raise HTTPException(404, f"No uploaded {SPEC_FIELD[kind]} with id {meta['id']!r}")
    for path in files:
        storage.delete(path)
