"""Receiving an uploaded file onto the data volume: in chunks, size-limited, counted against the tenant's quota, and
removed again when any check fails."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from api.keys import ApiKey
from worker.store import JobStore

CHUNK_BYTES = 2**20


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


def check_quota(store: JobStore, key: ApiKey, adding: int) -> None:
    """413 when `adding` bytes would take tenant `key` past its storage quota."""
    if key.max_storage_mb is not None and (after := store.usage(key.name) + adding) > key.max_storage_mb * 2**20:
        raise HTTPException(413, f"file: key {key.name!r} would store {after} bytes, more than its quota of "
                                 f"{key.max_storage_mb:g} MB (max_storage_mb)")


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
        check_quota(store, key, size)
        yield upload_id, path, size
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    store.add_usage(key.name, size)
