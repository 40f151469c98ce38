"""Uploading `.npz` datasets and listing the available ones."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, UploadFile, status

from api.deps import SettingsDep, StoreDep
from clr.config import DatasetSpec
from clr import volume
from clr.datasets import BUILTIN_DATASETS, from_npz, unpacked_size
from worker.settings import Settings
from worker.store import JobStore

router = APIRouter(tags=["datasets"])


@router.post("/datasets", status_code=status.HTTP_201_CREATED)
async def upload_dataset(file: UploadFile, settings: SettingsDep, store: StoreDep) -> dict[str, Any]:
    """Upload a `.npz` with `x_train`, `y_train` and optional `x_test`, `y_test` (no pickles, size-limited packed
    and unpacked)."""
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise HTTPException(413, f"file: the upload exceeds the limit of {settings.max_upload_bytes} bytes")
    try:
        if (unpacked := unpacked_size(data)) > settings.max_dataset_bytes:
            raise HTTPException(413, f"file: the archive unpacks to {unpacked} bytes, more than the limit of "
                                     f"{settings.max_dataset_bytes}")
        dataset = from_npz(data)
    except ValueError as error:
        raise HTTPException(422, f"file: {error}") from error
    dataset_id = uuid.uuid4().hex
    meta = {
        "id": dataset_id,
        "filename": file.filename,
        "bytes": len(data),
        "train_samples": len(dataset.x_train),
        "test_samples": 0 if dataset.x_test is None else len(dataset.x_test),
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "created_at": time.time(),
    }
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    (settings.datasets_dir / f"{dataset_id}.npz").write_bytes(data)
    store.save_dataset(dataset_id, meta)
    return meta


@router.get("/datasets")
def list_datasets(store: StoreDep, settings: SettingsDep) -> dict[str, list]:
    """Built-in datasets, each saying whether it is on the data volume, and uploaded datasets."""
    return {"builtin": [volume.info(name, settings.builtin_dir) for name in BUILTIN_DATASETS],
            "uploaded": store.datasets()}


def train_samples(dataset: DatasetSpec, store: JobStore, settings: Settings) -> int:
    """How many training samples the dataset holds; 422 naming the dataset if it is not there (an unknown upload,
    or a built-in one not yet fetched to the volume: jobs never download)."""
    if dataset.name is not None:
        try:
            return volume.train_samples(dataset.name, settings.builtin_dir)
        except volume.MissingDataset as error:
            raise HTTPException(422, str(error)) from error
    meta = store.dataset(dataset.id)
    if meta is None:
        raise HTTPException(422, f"dataset.id: no uploaded dataset with id {dataset.id!r}")
    return meta["train_samples"]
