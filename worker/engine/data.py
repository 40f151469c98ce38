"""A job's data from its spec: a built-in, registered or uploaded dataset, split for `fit`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clr import datasets, volume
from clr.config import DatasetSpec
from clr.schedules import step_size_advice
from worker.errors import JobError, with_fetch_advice
from worker.settings import Settings
from worker.store import JobStore


@dataclass(frozen=True)
class Split:
    """Data prepared for `fit`: training part, optional validation part, optional test set."""

    x: np.ndarray
    y: np.ndarray
    validation: tuple[np.ndarray, np.ndarray] | None
    data: datasets.Dataset

    def iterations_per_epoch(self, batch_size: int) -> int:
        return step_size_advice(len(self.x), batch_size).iterations_per_epoch


def load_dataset(spec: DatasetSpec, settings: Settings, store: JobStore) -> datasets.Dataset:
    """A built-in dataset, a registered one from under the datasets root, or an uploaded one from the storage."""
    if spec.name is not None:
        try:
            return volume.load(spec.name, settings.builtin_dir)
        except volume.MissingDataset as error:
            raise JobError(with_fetch_advice(error)) from error
    if registered := (store.uploads.get("datasets", spec.id) or {}).get("path"):
        try:
            return datasets.from_path(settings.registered(registered))
        except ValueError as error:
            raise JobError(f"Registered dataset {spec.id}: {error}") from error
    path, storage = settings.datasets_dir / f"{spec.id}.npz", settings.storage()
    if storage.fetch(folder := path.with_suffix("")):
        return datasets.from_npy_folder(folder)
    if not storage.fetch(path):
        raise JobError(f"Uploaded dataset {spec.id} is not on this worker's data volume ({path})")
    return datasets.from_npz(path)


def split(data: datasets.Dataset, validation_split: float) -> Split:
    """Hold out the last `validation_split` of the training data for validation."""
    cut = math.floor(len(data.x_train) * (1 - validation_split))
    if cut < 1:
        raise JobError(f"validation_split={validation_split} leaves no training samples of {len(data.x_train)}")
    validation = (datasets.images(data.x_train[cut:]), data.y_train[cut:]) if cut < len(data.x_train) else None
    return Split(data.x_train[:cut], data.y_train[:cut], validation, data)
