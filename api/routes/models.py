"""Uploading `.keras` models for jobs to train (`model: {"id": ...}`), listing and deleting them."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, KeysDep, SettingsDep, StoreDep
from api.errors import error_responses
from api.uploads import owned_upload, received, remove_upload
from clr.config import MAX_MODEL_JSON_CHARS, layer_names, safe_keras_config

router = APIRouter(tags=["models"])


def model_config(path: Path) -> dict[str, Any]:
    """The model config a `.keras` archive holds, read from its `config.json` without Keras; raises `ValueError`
    naming what is wrong, custom objects and code-carrying layers included (safe mode refuses them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_MODEL_JSON_CHARS:
                raise ValueError(f"its config.json takes {info.file_size} bytes, more than {MAX_MODEL_JSON_CHARS}")
            text = archive.read(info)
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise ValueError(f"not a `.keras` archive (model.save('model.keras')): {error}") from error
    return safe_keras_config(text, "its config.json")


@router.post("/models", status_code=status.HTTP_201_CREATED, responses=error_responses(413))
async def upload_model(file: UploadFile, settings: SettingsDep, store: StoreDep, key: CallerDep) -> dict[str, Any]:
    """Upload a model saved with `model.save("model.keras")`; a job trains it from its saved weights with the job's
    optimizer and loss. It must load in safe mode: no custom objects, no `Lambda` layers."""
    async with received(file, settings.models_dir, ".keras", settings.max_upload_bytes, store, key) as (
            model_id, path, size):
        try:
            config = await run_in_threadpool(model_config, path)
        except ValueError as error:
            raise HTTPException(422, f"file: {error}") from error
        await run_in_threadpool(settings.storage().publish, path)
        meta = {"id": model_id, "owner": key.name, "filename": file.filename, "bytes": size,
                "class_name": config["class_name"], "layers": layer_names(config), "created_at": time.time()}
        store.uploads.save("models", model_id, meta)
    return meta


@router.get("/models")
def list_models(store: StoreDep, key: CallerDep) -> dict[str, list]:
    """The caller's uploaded models (an admin key's: everyone's)."""
    return {"uploaded": store.uploads.all("models", None if key.admin else key.name)}


@router.delete("/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409))
def delete_model(model_id: str, settings: SettingsDep, store: StoreDep, keys: KeysDep, key: CallerDep) -> Response:
    """Delete an uploaded model, its file and its published copy, and give its bytes back to its owner's quota; 409
    while a queued or running job trains it."""
    meta = owned_upload("models", model_id, store, key)
    remove_upload("models", meta, [settings.models_dir / f"{model_id}.keras"], settings.storage(), store, keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
