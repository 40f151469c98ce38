"""A training's checkpoints: every variable that decides what it computes next (weights, the dropout layers' RNG
state, on PyTorch its global generators', the optimizer's slots and iteration count) with its epoch, data seed,
epoch history and the running metrics of the epoch it is in, in one `.npz` file replaced atomically."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from clr.recording import sync_fit_state


@dataclass(frozen=True)
class Checkpoint:
    """Where a training stood: `iteration` steps done, in epoch `epoch` (0-based), whose first `epoch_samples`
    samples gave the running `epoch_metrics`."""

    iteration: int
    epoch: int
    data_seed: int
    history: list[dict[str, Any]]
    epoch_metrics: dict[str, float] = field(default_factory=dict)
    epoch_samples: int = 0
    values: list[np.ndarray] = field(default_factory=list, repr=False)


def _model_state(model: keras.Model) -> list:
    return [*model.variables, *model.optimizer.variables]


def backend_rng_state() -> list[np.ndarray]:
    """The random state a model draws from outside its variables: on PyTorch, the global generators (Keras's
    layers without a seed of their own, dropout's say, draw from them); none on TensorFlow and JAX."""
    if keras.backend.backend() != "torch":
        return []
    import torch

    return [torch.get_rng_state().numpy()] + ([torch.cuda.get_rng_state().numpy()] if torch.cuda.is_available()
                                               else [])


def set_backend_rng_state(values: list[np.ndarray]) -> None:
    """Set what `backend_rng_state` gave."""
    if values:
        import torch

        torch.set_rng_state(torch.from_numpy(values[0]))
        if len(values) > 1:
            torch.cuda.set_rng_state(torch.from_numpy(values[1]))


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` through a temporary file and an atomic rename: never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: value for name, value in checkpoint.__dict__.items() if name != "values"}
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        np.savez(file, state=np.array(json.dumps(state)), *checkpoint.values)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at `path`, or None when there is none."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as archive:
        state = json.loads(str(archive["state"]))
        values = [archive[f"arr_{index}"] for index in range(len(archive.files) - 1)]
    return Checkpoint(**state, values=values)


def restore(model: keras.Model, checkpoint: Checkpoint) -> None:
    """Give `model` (built and compiled as when `checkpoint` was saved) the checkpoint's variables (its backend
    random state is set as training starts: `Checkpointer`)."""
    model.optimizer.build(model.trainable_variables)
    variables, rng = _model_state(model), len(backend_rng_state())
    if len(variables) + rng != len(checkpoint.values):
        raise ValueError(f"The checkpoint holds {len(checkpoint.values)} values; the model has {len(variables)} "
                         f"variables and the backend {rng} random states")
    for variable, value in zip(variables, checkpoint.values, strict=False):
        variable.assign(value)


class Checkpointer(keras.callbacks.Callback):
    """Saves a checkpoint at each boundary between two epochs (as the next begins: the epoch's history is complete
    by then) and, between two steps, once `every_s` passed since the last one or when `drain()` says the worker is
    shutting down (then training stops). Saves nothing once `lost()` holds. Each is written beside `path` and
    handed to `commit(iteration, written)`, which moves it to `path` (a job's reporter does so once the curve holds
    the checkpoint's iterations).

    Given `resume_from` (already restored), its backend random state is set as the first `fit` begins (after
    Keras's first build of a fresh model, which draws from it on PyTorch), and the epoch it stopped in ends with the
    training metrics of the whole epoch: Keras's are sample-weighted means, so they merge exactly with the
    checkpoint's. It must come before the callbacks that read the epoch's logs."""

    def __init__(self, path: Path, every_s: float, data_seed: int, batch_size: int, samples: int,
                 history: Callable[[], list[dict[str, Any]]], resume_from: Checkpoint | None = None,
                 lost: Callable[[], bool] = lambda: False, drain: Callable[[], bool] = lambda: False,
                 commit: Callable[[int, Path], None] | None = None) -> None:
        super().__init__()
        self.path, self.every_s, self.data_seed = path, every_s, data_seed
        self.batch_size, self.samples, self.history = batch_size, samples, history
        self.resume_from, self.lost, self.drain = resume_from, lost, drain
        self._rng = resume_from.values[len(resume_from.values) - len(backend_rng_state()):] if resume_from else []
        self.commit = commit or (lambda iteration, written: os.replace(written, path))
        self.drained = self._boundary = False
        self._epoch, self._epoch_start = 0, 0
        self._saved_at, self._saved_iteration = time.monotonic(), -1

    def on_train_begin(self, logs=None):
        set_backend_rng_state(self._rng)
        self._rng = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_start = epoch, self._iteration()
        if self._boundary:
            self._save(Checkpoint(self._epoch_start, epoch, self.data_seed, self.history()))
            self._boundary = False
        if self.resume_from is not None and self.resume_from.epoch != epoch:
            self.resume_from = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.drain():
            self.drained = self.model.stop_training = True
            self._save_mid_epoch()
        elif time.monotonic() - self._saved_at >= self.every_s:
            self._save_mid_epoch()

    def on_epoch_end(self, epoch, logs=None):
        if self.resume_from is not None and logs is not None:
            earlier, samples = self.resume_from.epoch_metrics, self.resume_from.epoch_samples
            for name, value in earlier.items():
                logs[name] = (value * samples + logs[name] * (self.samples - samples)) / self.samples
        self._boundary = not self.drained

    def _iteration(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _save_mid_epoch(self) -> None:
        sync_fit_state(self.model)
        samples = (self._iteration() - self._epoch_start) * self.batch_size
        # Before this fit's first step its metrics hold nothing (Keras builds them at the first update).
        metrics = {name: float(value) for name, value in self.model.get_metrics_result().items()} if samples else {}
        if self.resume_from is not None:  # this epoch began before the resume
            earlier, before = self.resume_from.epoch_metrics, self.resume_from.epoch_samples
            metrics = {name: (earlier[name] * before + metrics.get(name, 0.0) * samples) / max(before + samples, 1)
                       for name in earlier}
            samples += before
        self._save(Checkpoint(self._iteration(), self._epoch, self.data_seed, self.history(), metrics, samples))

    def _save(self, checkpoint: Checkpoint) -> None:
        if self.lost() or checkpoint.iteration == self._saved_iteration:
            return
        values = [np.asarray(variable.numpy()) for variable in _model_state(self.model)] + backend_rng_state()
        written = self.path.with_name(f"{self.path.stem}-{checkpoint.iteration}.npz")
        save(written, Checkpoint(**{**checkpoint.__dict__, "values": values}))
        self.commit(checkpoint.iteration, written)
        self._saved_at, self._saved_iteration = time.monotonic(), checkpoint.iteration
