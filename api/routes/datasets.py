"""Uploading `.npz` datasets, registering datasets by path, listing the available ones and deleting them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, UploadFile, status
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, KeysDep, SettingsDep, StoreDep, owns
from api.errors import error_responses
from api.keys import ApiKey
from api.settings import ApiSettings
from api.uploads import owned_upload, received, remove_upload, reserved
from clr import datasets, volume
from clr.config import DatasetSpec, Strict
from clr.datasets import BUILTIN_DATASETS, Dataset, from_npz, unpacked_size
from clr.image_folders import ColorMode, ImageFolders, read_image_zip, save_npz
from worker.errors import with_fetch_advice
from worker.settings import Settings
from worker.store import JobStore

router = APIRouter(tags=["datasets"])


def within_class_limit(dataset: Dataset, settings: ApiSettings) -> Dataset:
    """`dataset` once its integer labels are at most `settings.max_classes` classes (`CLR_MAX_CLASSES`): a sparse
    loss's output layer has a unit for each; `ValueError` naming the array and the class otherwise."""
    for name, labels in dataset.labels().items():
        labels.check_classes(name, settings.max_classes)
    return dataset


def _check_unpacked(path: Path, settings: ApiSettings) -> None:
    if (unpacked := unpacked_size(path)) > settings.max_dataset_bytes:
        raise HTTPException(413, f"file: the archive unpacks to {unpacked} bytes, more than the limit of "
                                 f"{settings.max_dataset_bytes}")


def checked_npz(path: Path, settings: ApiSettings) -> Dataset:
    _check_unpacked(path, settings)
    return within_class_limit(from_npz(path), settings)


def images_to_npz(path: Path, size: int, color_mode: ColorMode, settings: ApiSettings, into: Path | None = None
                  ) -> ImageFolders:
    """The zip of class folders at `path`, decoded and written as the `.npz` of its arrays `into` a file (over the
    zip by default)."""
    _check_unpacked(path, settings)
    folders = read_image_zip(str(path), (size, size), color_mode, settings.max_dataset_bytes)
    save_npz(folders, str(into or path))
    return folders


ImageSize = Annotated[int | None, Query(ge=4, le=1024, description="The upload is a zip of class folders "
                                        "(`train/<class>/<image>`, optionally `test/<class>/<image>`): each image "
                                        "resized to this many pixels square")]


def _check_registered(path: Path, settings: ApiSettings) -> Dataset:
    return within_class_limit(datasets.from_path(path), settings)


@router.post("/datasets", status_code=status.HTTP_201_CREATED, responses=error_responses(413))
async def upload_dataset(file: UploadFile, settings: SettingsDep, store: StoreDep, key: CallerDep,
                         image_size: ImageSize = None, color_mode: ColorMode = "rgb") -> dict[str, Any]:
    """Upload a `.npz` with `x_train`, `y_train` and optional `x_test`, `y_test` (no pickles, size-limited packed
    and unpacked). Labels are classes (integers), one-hot rows or regression targets (floats); a job checks them
    against its `loss`. It is written to the data volume in chunks and checked off the event loop.

    With `image_size`: a zip of class folders instead, every file decoded (Pillow), converted to `color_mode` and
    resized once, kept as the `.npz` of its arrays; files that cannot be decoded are set aside and listed
    (`quarantined`, with the reason), those whose content is another format than their name says are kept and listed
    (`mislabelled`); `class_names[i]` is the folder of label `i`."""
    async with received(file, settings.datasets_dir, ".npz", settings.max_upload_bytes, store, key) as (
            dataset_id, path, size):
        try:
            folders = None if image_size is None else await run_in_threadpool(
                images_to_npz, path, image_size, color_mode, settings)
            dataset = await run_in_threadpool(checked_npz, path, settings)
        except ValueError as error:
            raise HTTPException(422, f"file: {error}") from error
        stored = path.stat().st_size
        with reserved(store, key, stored - size):  # an image folder's arrays take more or less than its zip
            await run_in_threadpool(settings.storage().publish, path)
            images = {} if folders is None else image_folder_record(folders, image_size, color_mode)
            meta = dataset_record(dataset_id, key, file.filename, stored, dataset) | images
            store.uploads.save("datasets", dataset_id, meta)
    return meta


def image_folder_record(folders: ImageFolders, image_size: int, color_mode: ColorMode) -> dict[str, Any]:
    """What a dataset's record adds for an image folder: its classes, the files set aside and the mislabelled."""
    return {"class_names": folders.class_names, "quarantined": folders.quarantined,
            "mislabelled": folders.mislabelled, "image_size": [image_size, image_size], "color_mode": color_mode}


def dataset_record(dataset_id: str, key: ApiKey, filename: str | None, size: int, dataset: Dataset) -> dict[str, Any]:
    """What the store keeps of an uploaded dataset: who owns it, its sizes, sample shape and labels."""
    labels = dataset.labels()
    return {
        "id": dataset_id,
        "owner": key.name,
        "filename": filename,
        "bytes": size,
        "train_samples": len(dataset.x_train),
        "test_samples": 0 if dataset.x_test is None else len(dataset.x_test),
        "input_shape": list(dataset.input_shape),
        "labels": {name: described.as_dict() for name, described in labels.items()},
        "num_classes": dataset.num_classes if all(described.integer for described in labels.values()) else None,
        "created_at": time.time(),
    }


class Registration(Strict):
    """A dataset already on storage every worker mounts, under `CLR_DATASETS_ROOT`."""

    path: str = Field(min_length=1, max_length=4096, description="An `.npz` file or a folder of `.npy` files "
                                                                 "(x_train.npy, ...), relative to the datasets root")


@router.post("/datasets/registered", status_code=status.HTTP_201_CREATED, responses=error_responses(403))
async def register_dataset(registration: Registration, settings: SettingsDep, store: StoreDep, key: CallerDep
                           ) -> dict[str, Any]:
    """Register a dataset by its path under the datasets root (admin keys; nothing outside the root, links
    included, is ever read). Checked as an upload is; a folder of `.npy` files is memory-mapped by the worker."""
    if not key.admin:
        raise HTTPException(403, f"Key {key.name!r} is not an admin key: registering by path reads the host's files")
    try:
        path = settings.registered(registration.path)
        dataset = await run_in_threadpool(_check_registered, path, settings)
    except ValueError as error:
        raise HTTPException(422, f"path: {error}") from error
    except OSError as error:  # a name too long for the file system, say
        raise HTTPException(422, f"path: {registration.path!r} cannot be read: {error.strerror}") from error
    dataset_id = uuid.uuid4().hex
    meta = dataset_record(dataset_id, key, path.name, 0, dataset) | {
        "path": path.relative_to(settings.datasets_root.resolve()).as_posix()}
    store.uploads.save("datasets", dataset_id, meta)
    return meta


@router.get("/datasets")
def list_datasets(store: StoreDep, settings: SettingsDep, key: CallerDep) -> dict[str, list]:
    """Built-in datasets, each saying whether it is on the data volume, and the caller's uploaded datasets (an
    admin key's: everyone's)."""
    return {"builtin": [volume.info(name, settings.builtin_dir) for name in BUILTIN_DATASETS],
            "uploaded": store.uploads.all("datasets", None if key.admin else key.name)}


@router.delete("/datasets/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409))
def delete_dataset(dataset_id: str, settings: SettingsDep, store: StoreDep, keys: KeysDep, key: CallerDep) -> Response:
    """Delete an uploaded dataset, its files and their published copies, and give its bytes back to its owner's
    quota; a registered one is only forgotten (its files stay). 409 while a queued or running job uses it."""
    meta = owned_upload("datasets", dataset_id, store, key)
    files = [] if "path" in meta else [settings.datasets_dir / f"{dataset_id}.npz", settings.datasets_dir / dataset_id]
    remove_upload("datasets", meta, files, settings.storage(), store, keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def dataset_meta(dataset: DatasetSpec, store: JobStore, settings: Settings, key: ApiKey) -> dict[str, Any]:
    """What the job's dataset holds (`train_samples`, `input_shape`, labels); 422 naming the dataset if it is not
    there (an unknown upload, another tenant's, or a built-in one not yet fetched to the volume: jobs never
    download)."""
    if dataset.name is not None:
        try:
            return volume.present(dataset.name, settings.builtin_dir)
        except volume.MissingDataset as error:
            raise HTTPException(422, f"dataset.name: {with_fetch_advice(error)}") from error
    meta = store.uploads.get("datasets", dataset.id)
    if not owns(key, meta):
        raise HTTPException(422, f"dataset.id: no uploaded dataset with id {dataset.id!r}")
    return meta
