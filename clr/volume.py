"""Built-in datasets kept on the data volume: fetched ahead of time (where there is internet, or from a file the
user brings), never downloaded when a job starts. scikit-learn's digits ships with the package and is always there.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from clr.datasets import BUILTIN_DATASETS, Dataset, digits, from_npz, keras_arrays

DIGITS_TRAIN_SAMPLES = 1437  # scikit-learn's 1,797 digits less the 20 % test split


class MissingDataset(ValueError):
    """A built-in dataset that is not on the data volume (`fetch` puts it there)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the built-in dataset {name!r} is not on the data volume")
        self.name = name


def _paths(name: str, directory: Path) -> tuple[Path, Path]:
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; built-in datasets are {', '.join(BUILTIN_DATASETS)}")
    return directory / f"{name}.npz", directory / f"{name}.json"


def info(name: str, directory: Path) -> dict:
    """What the volume holds of `name`: `present`, and its sizes when present."""
    if name == "digits":
        return {"name": name, "present": True, "train_samples": DIGITS_TRAIN_SAMPLES, "input_shape": [8, 8, 1],
                "num_classes": 10}
    _, meta = _paths(name, directory)
    return {"name": name, "present": True, **json.loads(meta.read_text())} if meta.exists() else {
        "name": name, "present": False}


def present(name: str, directory: Path) -> dict:
    """The `info` of a built-in dataset on the volume; `MissingDataset` if it is not there."""
    described = info(name, directory)
    if not described["present"]:
        raise MissingDataset(name)
    return described


def load(name: str, directory: Path) -> Dataset:
    """A built-in dataset, from the volume (digits from scikit-learn); never a download."""
    if name == "digits":
        return digits()
    archive, _ = _paths(name, directory)
    if not archive.exists():
        raise MissingDataset(name)
    return from_npz(archive.read_bytes())


def fetch(name: str, directory: Path, source: Path | None = None) -> dict:
    """Put a built-in dataset on the volume, from `source` (an `.npz`) or downloaded, checked as an upload is and
    written under a temporary name then renamed, so a job never reads half a file. Returns its `info`."""
    archive, meta = _paths(name, directory)
    if name == "digits":
        return info(name, directory)
    if source is not None:
        packed = source.read_bytes()
    else:
        buffer = io.BytesIO()
        np.savez(buffer, **keras_arrays(name))
        packed = buffer.getvalue()
    data = from_npz(packed)
    directory.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    partial.write_bytes(packed)
    os.replace(partial, archive)
    test_samples = 0 if data.x_test is None else len(data.x_test)
    meta.write_text(json.dumps({"train_samples": len(data.x_train), "test_samples": test_samples,
                                "input_shape": list(data.input_shape), "num_classes": data.num_classes}))
    return info(name, directory)
