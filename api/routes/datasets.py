"""Uploading `.npz` datasets and listing the available ones."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pathlib import Path

from fastapi import APIRouter, HTTPException, UploadFile, status
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, SettingsDep, StoreDep, owns
from api.errors import error_responses
from api.keys import ApiKey
from clr import volume
from clr.config import DatasetSpec
from clr.datasets import BUILTIN_DATASETS, Dataset, from_npz, unpacked_size
from worker.settings import Settings
from worker.store import JobStore

router = APIRouter(tags=["datasets"])
CHUNK_BYTES = 2**20


def _receive(upload: UploadFile, path: Path, limit: int) -> int:
    """Copy the upload to `path` in chunks, stopping past `limit` bytes; return its size."""
    size = 0
    with path.open("wb") as file:
        while chunk := upload.file.read(CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                break
            file.write(chunk)
    return size


def _check(path: Path, settings: Settings) -> Dataset:
    if (unpacked := unpacked_size(path)) > settings.max_dataset_bytes:
        raise HTTPException(413, f"file: the archive unpacks to {unpacked} bytes, more than the limit of "
                                 f"{settings.max_dataset_bytes}")
    return from_npz(path)


@router.post("/datasets", status_code=status.HTTP_201_CREATED, responses=error_responses(413))
async def upload_dataset(file: UploadFile, settings: SettingsDep, store: StoreDep, key: CallerDep) -> dict[str, Any]:
    """Upload a `.npz` with `x_train`, `y_train` and optional `x_test`, `y_test` (no pickles, size-limited packed
    and unpacked). It is written to the data volume in chunks and checked off the event loop."""
    dataset_id = uuid.uuid4().hex
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    path = settings.datasets_dir / f"{dataset_id}.npz"
    try:
        size = await run_in_threadpool(_receive, file, path, settings.max_upload_bytes)
        if size > settings.max_upload_bytes:
            raise HTTPException(413, f"file: the upload exceeds the limit of {settings.max_upload_bytes} bytes")
        if key.max_storage_mb is not None and (after := store.usage(key.name) + size) > key.max_storage_mb * 2**20:
            raise HTTPException(413, f"file: key {key.name!r} would store {after} bytes, "
                                     f"more than its quota of {key.max_storage_mb:g} MB (max_storage_mb)")
        try:
            dataset = await run_in_threadpool(_check, path, settings)
        except ValueError as error:
            raise HTTPException(422, f"file: {error}") from error
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    meta = {
        "id": dataset_id,
        "owner": key.name,
        "filename": file.filename,
        "bytes": size,
        "train_samples": len(dataset.x_train),
        "test_samples": 0 if dataset.x_test is None else len(dataset.x_test),
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "created_at": time.time(),
    }
    store.save_dataset(dataset_id, meta)
    store.add_usage(key.name, size)
    return meta


@router.get("/datasets")
def list_datasets(store: StoreDep, settings: SettingsDep, key: CallerDep) -> dict[str, list]:
    """Built-in datasets, each saying whether it is on the data volume, and the caller's uploaded datasets (an
    admin key's: everyone's)."""
    return {"builtin": [volume.info(name, settings.builtin_dir) for name in BUILTIN_DATASETS],
            "uploaded": store.datasets(None if key.admin else key.name)}


def train_samples(dataset: DatasetSpec, store: JobStore, settings: Settings, key: ApiKey) -> int:
    """How many training samples the dataset holds; 422 naming the dataset if it is not there (an unknown upload,
    another tenant's, or a built-in one not yet fetched to the volume: jobs never download)."""
    if dataset.name is not None:
        try:
            return volume.train_samples(dataset.name, settings.builtin_dir)
        except volume.MissingDataset as error:
            raise HTTPException(422, str(error)) from error
    meta = store.dataset(dataset.id)
    if not owns(key, meta):
        raise HTTPException(422, f"dataset.id: no uploaded dataset with id {dataset.id!r}")
    return meta["train_samples"]
