"""Trained models as `.keras` files (Keras's native format, compiled, the schedule registered by
`clr.keras_schedule`), each written whole or not at all."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras


def save_model(model: keras.Model, path: Path) -> int:
    """Save `model` to `path` through a temporary file and an atomic rename; return the file's size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)
    return path.stat().st_size


class BestModel(keras.callbacks.Callback):
    """Saves the model at each epoch's end where the validation loss is the lowest so far, and hands the file to
    `publish`; `history` holds the epochs of an earlier attempt when resumed."""

    def __init__(self, path: Path, history: list[dict[str, Any]], publish: Callable[[Path], None]) -> None:
        super().__init__()
        self.path, self.publish = path, publish
        self.best = min((epoch["val_loss"] for epoch in history if epoch.get("val_loss") is not None),
                        default=math.inf)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        if loss is not None and loss < self.best:
            self.best = loss
            save_model(self.model, self.path)
            self.publish(self.path)
