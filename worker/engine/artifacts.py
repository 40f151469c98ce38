"""Trained models as `.keras` files (Keras's native format, compiled), each written whole or not at all: the portable
files a job hands out load in plain Keras, its training-state files with this package's optimizer and schedules."""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from worker.job_files import JobFiles


def save_model(model: keras.Model, path: Path) -> int:
    """Save `model` to `path` through a temporary file and an atomic rename; return the file's size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)
    return path.stat().st_size


def save_weights(model: keras.Model, path: Path, publish: Callable[[Path], None]) -> dict:
    """Save (atomically) and publish the model's weights, for a next stage to start from; nothing for the result.
    They are `model.weights` in order, which freezing does not change: the same model built unfrozen takes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as file:
        np.savez(file, *model.get_weights())
    os.replace(temporary, path)
    publish(path)
    return {}


def load_weights(model: keras.Model, path: Path) -> None:
    """Set the model's weights to those `save_weights` saved."""
    with np.load(path) as saved:
        model.set_weights([saved[f"arr_{index}"] for index in range(len(saved.files))])


MOMENTA = ("momentum", "beta_1")  # the attribute a momentum schedule drives (SGD's and RMSprop's, Adam's)


def plain_optimizer(trained: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The Keras optimizer `trained` is built on (SGD, Adam, RMSprop) at the rate and momentum of its last step, of
    the same name; a loss scaler's inner one in Keras's own loss scaler."""
    if isinstance(trained, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(plain_optimizer(trained.inner_optimizer), name=trained.name)
    plain_class = next(cls for cls in type(trained).__mro__ if cls.__module__.startswith("keras."))
    accepted = inspect.signature(plain_class).parameters
    config = {name: value for name, value in trained.get_config().items() if name in accepted}
    if isinstance(rate := config["learning_rate"], dict):  # a schedule: the rate of the last step taken
        rate = keras.optimizers.schedules.deserialize(rate)(max(int(trained.iterations) - 1, 0))
    config["learning_rate"] = float(rate)
    config |= {name: float(getattr(trained, name)) for name in MOMENTA if name in config}
    return plain_class.from_config(config)


def with_plain_optimizer(model: keras.Model) -> keras.Model:
    """`model`, compiled again with `plain_optimizer` of its own, its state (iteration count, slots, a loss scale)
    carried over: saved, it loads in plain Keras, without this package's optimizers and schedules. Only for a model
    that trains no further here."""
    trained, compile_config = model.optimizer, model.get_compile_config()
    compile_config["optimizer"] = keras.optimizers.serialize(plain_optimizer(trained))
    with model.distribute_strategy.scope() if hasattr(model, "distribute_strategy") else contextlib.nullcontext():
        model.compile_from_config(compile_config)  # under TensorFlow's strategy where the model has one
    state = {variable.path: variable for variable in model.optimizer.variables}
    for variable in trained.variables:
        if variable.path in state:
            state[variable.path].assign(variable)
    return model


def keep_models(model: keras.Model, files: JobFiles, publish: Callable[[Path], None]) -> dict[str, int]:
    """Save the trained `model` with its full training state and as the portable file, and the portable copy of the
    best one `BestModel` saved (and published); publish the files written here; return every file's size as a
    training's result names them."""
    final_state, final = files.model("final", training_state=True), files.model("final")
    sizes = {"training_state_bytes": save_model(model, final_state),
             "model_bytes": save_model(with_plain_optimizer(model), final)}
    written = [final_state, final]
    if (best_state := files.model("best", training_state=True)).exists():
        sizes["training_state_bytes"] += best_state.stat().st_size
        best = files.model("best")
        sizes["best_model_bytes"] = save_model(with_plain_optimizer(keras.saving.load_model(best_state)), best)
        written.append(best)
    for path in written:
        publish(path)
    return sizes


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
