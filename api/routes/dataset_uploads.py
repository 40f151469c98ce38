"""Chunked, resumable uploads of datasets too big for one request or for memory: `.npy` parts appended to each
array of an upload, finished by a last call into a folder of `.npy` files that workers memory-map; or the bytes of a
zip of class folders appended in parts, finished by decoding it as `POST /datasets?image_size=` does."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, SettingsDep, StoreDep, owns
from api.errors import error_responses
from api.keys import ApiKey
from api.routes.datasets import (
    ImageSize,
    checked_npz,
    dataset_record,
    image_folder_record,
    images_to_npz,
    within_class_limit,
)
from api.settings import ApiSettings
from api.uploads import reserved
from clr.datasets import Dataset, from_npy_folder
from clr.image_folders import ColorMode
from clr.tasks import holds_real_numbers
from worker.settings import Settings
from worker.store import JobStore

router = APIRouter(prefix="/datasets/uploads", tags=["datasets"])
ArrayName = Literal["x_train", "y_train", "x_test", "y_test"]
ARCHIVE, DECODED = "archive.zip", "decoded.npz"  # an image folder's zip and its arrays, in the staging folder


def staging(settings: Settings, upload_id: str) -> Path:
    """Where an unfinished upload's parts wait (never a path a job reads)."""
    return settings.datasets_dir / f"{upload_id}.uploading"


def _session(upload_id: str, store: JobStore, key: ApiKey) -> dict[str, Any]:
    session = store.uploads.get("uploads", upload_id)
    if not owns(key, session):
        raise HTTPException(404, f"No unfinished upload with id {upload_id!r}")
    return session


@contextlib.contextmanager
def _one_at_a_time(upload_id: str, store: JobStore, key: ApiKey) -> Iterator[None]:
    """Hold the upload while a part is added, it is finished or abandoned: 409 while another request holds it."""
    _session(upload_id, store, key)
    lock = store.uploads.lock(upload_id)
    if not lock.acquire(blocking=False):
        raise HTTPException(409, f"another request is adding a part to upload {upload_id!r}, finishing or abandoning "
                                 f"it; one at a time")
    try:
        yield
    finally:
        lock.release()


def _check_part(path: Path, name: str, arrays: dict[str, Any]) -> dict[str, Any]:
    """The array's dtype, shape, parts and bytes with this part added, once it fits the parts before; `ValueError`
    naming what does not."""
    try:
        part = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{name}: the body is not one `.npy` array without pickles (np.save): {error}") from error
    if not holds_real_numbers(part) or part.ndim < 1 or not len(part):
        raise ValueError(f"{name}: a part holds rows of real numbers (booleans, integers or floats). Received: "
                         f"dtype={part.dtype}, shape={part.shape}")
    if part.dtype.byteorder == ">" or np.isfortran(part) and part.ndim > 1:
        raise ValueError(f"{name}: send the part little-endian in C order (np.ascontiguousarray)")
    before = arrays.get(name)
    if before is not None and (part.dtype.str, list(part.shape[1:])) != (before["dtype"], before["shape"][1:]):
        raise ValueError(f"{name}: the part holds {part.dtype.str} rows of shape {part.shape[1:]}; the parts before "
                         f"held {before['dtype']} rows of shape {tuple(before['shape'][1:])}")
    so_far = before or {"shape": [0], "parts": 0, "bytes": 0}
    return {"dtype": part.dtype.str, "shape": [so_far["shape"][0] + len(part), *part.shape[1:]],
            "parts": so_far["parts"] + 1, "bytes": so_far["bytes"] + path.stat().st_size}


async def _checked_part(path: Path, name: str, arrays: dict[str, Any], settings: ApiSettings) -> dict[str, Any]:
    """The array as `_check_part` describes it with this part added: 422 when the part does not fit, 413 when the
    upload would hold more than `max_dataset_bytes`."""
    try:
        described = await run_in_threadpool(_check_part, path, name, arrays)
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    total = sum(meta["bytes"] for other, meta in arrays.items() if other != name) + described["bytes"]
    if total > settings.max_dataset_bytes:
        raise HTTPException(413, f"{name}: the upload would hold {total} bytes, more than the limit of "
                                 f"{settings.max_dataset_bytes}")
    return described


async def _receive(request: Request, path: Path) -> int:
    size = 0
    with path.open("wb") as file:
        async for chunk in request.stream():
            size += len(chunk)
            await run_in_threadpool(file.write, chunk)
    return size


@router.post("", status_code=status.HTTP_201_CREATED)
def start_upload(settings: SettingsDep, store: StoreDep, key: CallerDep) -> dict[str, Any]:
    """Start an upload: then `PUT` each array's parts in order to `.../arrays/{array}`, and `POST .../finish`."""
    session = {"id": uuid.uuid4().hex, "owner": key.name, "arrays": {}, "created_at": time.time()}
    staging(settings, session["id"]).mkdir(parents=True)
    store.uploads.save("uploads", session["id"], session)
    return session


@router.get("/{upload_id}", responses=error_responses(404))
def upload_status(upload_id: str, store: StoreDep, key: CallerDep) -> dict[str, Any]:
    """What an unfinished upload holds so far: each array's dtype, shape (rows received) and parts; a client that
    lost an answer resumes from the rows given here."""
    return _session(upload_id, store, key)


@router.put("/{upload_id}/arrays/{array}", responses=error_responses(404, 409, 413))
async def append_part(
    upload_id: str, array: ArrayName, request: Request, settings: SettingsDep, store: StoreDep, key: CallerDep,
    offset: Annotated[int, Query(ge=0, description="Rows of this array received before this part")],
) -> dict[str, Any]:
    """Append a part (the body: one array saved with `np.save`, rows of the array's dtype and row shape) at row
    `offset`, which must be the rows received so far (409 with them otherwise: a part sent twice is not added
    twice)."""
    with _one_at_a_time(upload_id, store, key):
        session = _session(upload_id, store, key)
        received = session["arrays"].get(array, {"shape": [0]})["shape"][0]
        if offset != received:
            raise HTTPException(409, f"offset: {array} holds {received} rows; send the part that starts there")
        path = staging(settings, upload_id) / f"{array}.{session['arrays'].get(array, {}).get('parts', 0):05d}.npy"
        try:
            size = await _receive(request, path)
            if size > settings.max_upload_bytes:
                raise HTTPException(413, f"{array}: the part exceeds the limit of {settings.max_upload_bytes} bytes")
            with reserved(store, key, size, array):
                session["arrays"][array] = await _checked_part(path, array, session["arrays"], settings)
                store.uploads.save("uploads", upload_id, session)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return session


@router.put("/{upload_id}/archive", responses=error_responses(404, 409, 413))
async def append_archive_part(
    upload_id: str, request: Request, settings: SettingsDep, store: StoreDep, key: CallerDep,
    offset: Annotated[int, Query(ge=0, description="Bytes of the archive received before this part")],
) -> dict[str, Any]:
    """Append a part of a zip of class folders (the body: its next bytes) at byte `offset`, which must be the bytes
    received so far (409 with them otherwise: a part sent twice is not added twice); finish with `image_size`."""
    with _one_at_a_time(upload_id, store, key):
        session = _session(upload_id, store, key)
        if session["arrays"]:
            raise HTTPException(409, "this upload holds arrays; send an archive in an upload of its own")
        received = session.get("archive_bytes", 0)
        if offset != received:
            raise HTTPException(409, f"offset: the archive holds {received} bytes; send the part that starts there")
        folder = staging(settings, upload_id)
        part = folder / f"{ARCHIVE}.part"
        try:
            size = await _receive(request, part)
            if size > settings.max_upload_bytes:
                raise HTTPException(413, f"archive: the part exceeds the limit of {settings.max_upload_bytes} bytes")
            if received + size > settings.max_dataset_bytes:
                raise HTTPException(413, f"archive: {received + size} bytes, more than the limit of "
                                         f"{settings.max_dataset_bytes} bytes")
            with reserved(store, key, size, "archive"):
                await run_in_threadpool(_append_at, folder / ARCHIVE, received, part)
                session["archive_bytes"] = received + size
                store.uploads.save("uploads", upload_id, session)
        finally:
            part.unlink(missing_ok=True)
        return session


def _append_at(path: Path, offset: int, part: Path) -> None:
    """`part`'s bytes written into `path` at `offset`, whatever an interrupted write left after it."""
    with path.open("r+b" if path.exists() else "wb") as whole, part.open("rb") as piece:
        whole.seek(offset)
        whole.truncate()
        shutil.copyfileobj(piece, whole)


def _decoded_archive(folder: Path, image_size: int, color_mode: ColorMode, settings: ApiSettings
                     ) -> tuple[Dataset, dict[str, Any]]:
    """The upload's archive decoded into the `.npz` of its arrays (`DECODED`, beside it) and checked, and what the
    dataset's record adds for an image folder."""
    try:
        folders = images_to_npz(folder / ARCHIVE, image_size, color_mode, settings, into=folder / DECODED)
        return checked_npz(folder / DECODED, settings), image_folder_record(folders, image_size, color_mode)
    except BaseException:
        (folder / DECODED).unlink(missing_ok=True)
        raise


def _parts(folder: Path, name: str, meta: dict[str, Any]) -> list[Path]:
    return [folder / f"{name}.{index:05d}.npy" for index in range(meta["parts"])]


def _join(folder: Path, name: str, meta: dict[str, Any]) -> None:
    """The array's parts copied, in order, into one `.npy` file."""
    whole = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.dtype(meta["dtype"]),
                                      shape=tuple(meta["shape"]))
    row = 0
    for part_path in _parts(folder, name, meta):
        part = np.load(part_path, mmap_mode="r")
        whole[row:row + len(part)] = part  # page by page, from one file mapping to the other
        row += len(part)
    whole.flush()
    del whole


def _assembled(folder: Path, arrays: dict[str, Any], settings: ApiSettings) -> Dataset:
    """The dataset of the upload's arrays, each joined into one `.npy` file and checked; the parts are removed only
    once it passes (the upload takes twice its size on disk meanwhile), so a refused or failed one stays as it was."""
    try:
        for name, meta in arrays.items():
            _join(folder, name, meta)
        dataset = within_class_limit(from_npy_folder(folder), settings)
    except BaseException:
        for name in arrays:
            (folder / f"{name}.npy").unlink(missing_ok=True)
        raise
    for name, meta in arrays.items():
        for part_path in _parts(folder, name, meta):
            part_path.unlink()
    return dataset


@router.post("/{upload_id}/finish", status_code=status.HTTP_201_CREATED, responses=error_responses(404, 409))
async def finish_upload(upload_id: str, settings: SettingsDep, store: StoreDep, key: CallerDep,
                        image_size: ImageSize = None, color_mode: ColorMode = "rgb") -> dict[str, Any]:
    """Check the arrays together (as a `.npz` upload is checked) and make the dataset: its id is the upload's. An
    archive's upload needs `image_size`: the zip is decoded as `POST /datasets?image_size=` decodes one. A refused
    upload is kept as it was: add what it lacks and finish again, or abandon it."""
    with _one_at_a_time(upload_id, store, key):
        session = _session(upload_id, store, key)
        folder, archive = staging(settings, upload_id), "archive_bytes" in session
        if archive and image_size is None:
            raise HTTPException(422, "image_size: an archive of class folders needs the size to resize its images to")
        try:
            if archive:
                dataset, images = await run_in_threadpool(_decoded_archive, folder, image_size, color_mode, settings)
            else:
                dataset, images = await run_in_threadpool(_assembled, folder, session["arrays"], settings), {}
        except ValueError as error:
            raise HTTPException(422, f"{error}; the upload is kept as it was: add what it lacks and finish again, "
                                     f"or abandon it (DELETE)") from error
        received = sum(meta["bytes"] for meta in session["arrays"].values()) + session.get("archive_bytes", 0)
        size = (folder / DECODED).stat().st_size if archive else received
        try:
            with reserved(store, key, size - received):  # an image folder's arrays take more or less than its zip
                if archive:  # its arrays, kept as a one-request image upload keeps them
                    stored = settings.datasets_dir / f"{upload_id}.npz"
                    os.replace(folder / DECODED, stored)
                    shutil.rmtree(folder)
                else:
                    stored = settings.datasets_dir / upload_id
                    os.replace(folder, stored)
        except HTTPException:
            (folder / DECODED).unlink(missing_ok=True)
            raise
        meta = dataset_record(upload_id, key, "(chunked upload)", size, dataset) | images
        await run_in_threadpool(settings.storage().publish, stored)
        store.uploads.save("datasets", upload_id, meta)
        store.uploads.delete("uploads", upload_id)
        return meta


@router.delete("/{upload_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409))
def abandon_upload(upload_id: str, settings: SettingsDep, store: StoreDep, key: CallerDep) -> Response:
    """Abandon an unfinished upload and free what it stored (409 while a part is being added or it is finished)."""
    with _one_at_a_time(upload_id, store, key):
        _remove(upload_id, _session(upload_id, store, key), settings, store, key)
    return Response(status_code=204)


def _remove(upload_id: str, session: dict[str, Any], settings: Settings, store: JobStore, key: ApiKey) -> None:
    shutil.rmtree(staging(settings, upload_id), ignore_errors=True)
    store.uploads.forget("uploads", upload_id, key.name, sum(meta["bytes"] for meta in session["arrays"].values())
                         + session.get("archive_bytes", 0))
