"""A range test's verification: train each candidate bound pair one whole cycle from the range test's initial weights,
each curve under its own phase, and judge it on the validation split. Measured candidates are kept on the job record
as they finish, so an attempt resumed after a lost worker trains only the rest."""

from __future__ import annotations

import keras
import numpy as np

from clr.bounds import BoundSuggestion
from clr.config import RangeTestSpec
from clr.datasets import Dataset
from clr.keras_schedule import CyclicalSchedule
from clr.plan import iterations_per_epoch
from clr.tasks import Task
from clr.verification import Candidate, candidates, verified
from worker.engine.build import prepare_model
from worker.engine.streams import TrainingStream, train_recorded
from worker.reporting import JobReporter, finite_or_none
from worker.settings import Settings
from worker.store import CANDIDATE_PHASES


class CandidateStream(TrainingStream):
    """A candidate's curve, streamed to its own phase; its epochs' metrics are kept here, not in the job's
    epoch history (which is the range test's)."""

    last_epoch: dict = {}

    def on_epoch_end(self, epoch, logs=None):
        self.last_epoch = {name: finite_or_none(value) for name, value in (logs or {}).items()}

    def on_skipped(self, iterations):
        self.skipped.update(iterations)  # the candidate's own: the job's `skipped_iterations` are its range test's


def train_candidate(spec: RangeTestSpec, dataset: Dataset, per_epoch: int, weights: list[np.ndarray],
                    candidate: Candidate, data_seed: int, reporter: JobReporter, settings: Settings,
                    devices: list[str]) -> dict:
    """Train `candidate` one triangular cycle of `spec.verify.epochs` (of `per_epoch` iterations) from `weights`, in
    the batch order of `data_seed`; its outcome on the validation split."""
    epochs = spec.verify.epochs
    schedule = CyclicalSchedule(candidate.min_lr, candidate.max_lr, max(1, epochs * per_epoch // 2))
    model, data = prepare_model(spec, dataset, schedule, settings, settings.steps_per_execution, devices)
    model.set_weights(weights)
    stream = train_recorded(model, data, spec.batch_size, epochs, reporter, data_seed=data_seed,
                            stream_class=CandidateStream)
    metrics = {} if stream.divergence else stream.last_epoch
    return candidate.as_dict() | {
        "epochs": epochs,
        "iterations": int(model.optimizer.iterations.numpy()),
        "val_loss": metrics.get("val_loss"),
        "val_loss_se": None if stream.divergence else validation_loss_error(model, data.validation, spec),
        "val_accuracy": metrics.get("val_accuracy") if Task(spec.loss).classification else None,
        "skipped_steps": len(stream.skipped),
    }


def validation_loss_error(model: keras.Model, validation: tuple[np.ndarray, np.ndarray], spec: RangeTestSpec
                          ) -> float | None:
    """The standard error of the validation loss: the spread of the per-sample losses over the square root of their
    number (None when any is not finite)."""
    x, y = validation
    predicted = model.predict(x, batch_size=spec.batch_size, verbose=0)
    if spec.loss != "sparse_categorical_crossentropy" and np.ndim(y) < predicted.ndim:
        y = np.reshape(y, predicted.shape)  # one target per sample, as `fit` aligns it with a one-unit output
    losses = np.asarray(keras.losses.get(spec.loss)(y, predicted))
    return float(np.std(losses) / np.sqrt(len(losses))) if np.all(np.isfinite(losses)) else None


def verify(spec: RangeTestSpec, suggestion: BoundSuggestion, dataset: Dataset, weights: list[np.ndarray],
           data_seed: int, reporter: JobReporter, settings: Settings, devices: list[str],
           swept: int) -> tuple[BoundSuggestion, list]:
    """Train the candidates the curve offers that an earlier attempt did not measure (`verification` on the job),
    from the range test's initial `weights` in its batch order (`data_seed`), each under its own phase; return the
    chosen one (`clr.verification.chosen`) as the suggestion, and every candidate measured (`chosen` marks it).
    Stops early, keeping what it measured, when the job is cancelled."""
    offered = candidates(suggestion, spec.verify.candidates)
    earlier = (reporter.store.get(reporter.job_id) or {}).get("verification") or []
    measured = [entry for entry in earlier if entry["phase"] in CANDIDATE_PHASES[:len(offered)]
                and _same_candidate(entry, offered[CANDIDATE_PHASES.index(entry["phase"])])]
    per_epoch = iterations_per_epoch(len(dataset.x_train), spec.batch_size, spec.validation_split)
    per_candidate = spec.verify.epochs * per_epoch
    reporter.set_progress(total_iterations=swept + len(offered) * per_candidate)
    for index, (candidate, phase) in enumerate(zip(offered, CANDIDATE_PHASES, strict=False)):
        if reporter.should_stop() or any(entry["phase"] == phase for entry in measured):
            continue
        reporter.set_progress(verifying={"candidate": index + 1, "of": len(offered)})
        reporter.start_phase(phase, fresh=True, progress_from=swept + index * per_candidate)
        outcome = train_candidate(spec, dataset, per_epoch, weights, candidate, data_seed, reporter, settings,
                                  devices)
        if not reporter.should_stop():
            measured.append(outcome | {"phase": phase})
            reporter.set_progress(verification=measured)
    reporter.start_phase("")
    if not measured:
        return suggestion, []
    suggested = verified(suggestion, measured)
    pair = (suggested.min_lr, suggested.max_lr)
    return suggested, [entry | {"chosen": (entry["min_lr"], entry["max_lr"]) == pair}
                       for entry in sorted(measured, key=lambda entry: entry["phase"])]


def _same_candidate(entry: dict, candidate: Candidate) -> bool:
    return all(entry[name] == value for name, value in candidate.as_dict().items())
