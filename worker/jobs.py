"""What a job runs: build data, model and optimizer from its spec, fit with the recording callbacks, summarise."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from clr import datasets, models, volume
from clr.callbacks import LRFinder
from clr.config import SGD, Adam, DatasetSpec, JobSpec, ModelSpec, RangeTestSpec, RMSprop, TrainingSpec
from clr.keras_momentum import (
    ScheduledMomentumAdam,
    ScheduledMomentumRMSprop,
    ScheduledMomentumSGD,
    in_graph_momentum,
)
from clr.keras_schedule import CosineRestartsSchedule, CyclicalSchedule, OneCycleSchedule
from clr.plan import TrainingPlan, momentum_cycle, plan_training, policy_arguments
from clr.recording import IterationRecorder
from clr.schedules import step_size_advice
from clr.tasks import Task
from worker import checkpoints
from worker.artifacts import BestModel, keep_models
from worker.data_order import SeededEpochs
from worker.devices import job_devices, job_strategy
from worker.errors import Drained, JobError
from worker.job_files import JobFiles
from worker.reporting import JobReporter, finite_or_none
from worker.settings import Settings
from worker.storage import Storage
from worker.store import JobStore


class StreamsToJob:
    """Mixin for an `IterationRecorder`: streams the points it polls to the job and stops training when the reporter
    says so (a cancel, a lost claim, a fatal reporting error)."""

    def __init__(self, reporter: JobReporter, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reporter = reporter

    def on_iterations(self, iterations, lrs, losses, accuracies):
        super().on_iterations(iterations, lrs, losses, accuracies)
        self.reporter.push(iterations, lrs, losses, accuracies)
        if self.reporter.should_stop():
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.reporter.epoch_done(epoch + 1, logs or {})


class RangeTestStream(StreamsToJob, LRFinder):
    """`LRFinder` streaming to the job."""


class TrainingStream(StreamsToJob, IterationRecorder):
    """Polled by the reporter's thread, so Keras keeps dispatching batch ends asynchronously; stops training at
    the first non-finite loss, remembering where. `close()` takes the last points even when `fit` raised."""

    divergence: tuple[int, float] | None = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.reporter.watch(self)

    def close(self) -> None:
        """Stop being polled by the reporter and hand it the last points (idempotent)."""
        if self in self.reporter.watched:
            self.reporter.unwatch(self)
            self.poll()

    def on_train_end(self, logs=None):
        self.close()
        super().on_train_end(logs)

    def on_iterations(self, iterations, lrs, losses, accuracies):
        super().on_iterations(iterations, lrs, losses, accuracies)
        bad = np.flatnonzero(~np.isfinite(losses))
        if len(bad) and self.divergence is None:
            self.divergence = (int(iterations[bad[0]]), float(lrs[bad[0]]))
            self.model.stop_training = True


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
            raise JobError(str(error)) from error
    if registered := (store.upload("datasets", spec.id) or {}).get("path"):
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


def build_model(spec: JobSpec, data: datasets.Dataset, settings: Settings) -> keras.Model:
    """The job's model, its labels checked against its loss and the model against the data's sample shape and the
    outputs the labels need."""
    task = Task(spec.loss)
    try:
        outputs = task.required_outputs(data.labels())
        if spec.model.architecture is not None:
            return models.build(spec.model.architecture, data.input_shape, outputs, task.activation)
    except ValueError as error:
        raise JobError(str(error)) from error
    model = models.from_json(spec.model.keras_json) if spec.model.keras_json else uploaded_model(spec.model, settings)
    expected = tuple(model.input_shape[1:])
    if expected != data.input_shape:
        raise JobError(f"The model expects samples of shape {expected}; the dataset's are {data.input_shape}")
    sparse = spec.loss == "sparse_categorical_crossentropy"  # classes past the labels' highest are allowed
    if not (model.output_shape[-1] >= outputs if sparse else model.output_shape[-1] == outputs):
        raise JobError(f"The model has {model.output_shape[-1]} outputs; the labels need "
                       f"{'at least ' if sparse else ''}{outputs} for loss {spec.loss!r}")
    return model


def uploaded_model(spec: ModelSpec, settings: Settings) -> keras.Model:
    """An uploaded `.keras` model, loaded in safe mode."""
    path = settings.models_dir / f"{spec.id}.keras"
    if not settings.storage().fetch(path):
        raise JobError(f"Uploaded model {spec.id} is not on this worker's data volume ({path})")
    try:
        return models.from_file(path)
    except (TypeError, ValueError) as error:
        raise JobError(f"The uploaded model {spec.id} does not load in safe mode: {error}") from error


def metrics(task: Task) -> list:
    """Accuracy for classification, MAE and RMSE for regression."""
    if task.classification:
        return ["accuracy"]
    return [keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse")]


def make_optimizer(spec: SGD | Adam | RMSprop, learning_rate, cycle: dict | None = None
                   ) -> keras.optimizers.Optimizer:
    """The Keras optimizer the spec names, its momentum (Adam's `beta_1`) on the schedule `cycle` describes (a
    `clr.plan.momentum_cycle`) when there is one."""
    options = spec.model_dump(exclude={"name"})
    if cycle is None:
        classes = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    else:
        classes = {"sgd": ScheduledMomentumSGD, "adam": ScheduledMomentumAdam, "rmsprop": ScheduledMomentumRMSprop}
        options["momentum_schedule"] = in_graph_momentum(cycle)
    return classes[spec.name](learning_rate=learning_rate, **options)


def prepare_model(spec: JobSpec, data: datasets.Dataset, learning_rate, settings: Settings,
                  steps_per_execution: int, devices: list[str], cycle: dict | None = None) -> tuple[keras.Model, Split]:
    """The compiled model, on `devices` (several GPUs: one step per execution, as Keras's `fit` under
    MirroredStrategy fails with more), and the data split."""
    if spec.seed is not None:
        keras.utils.set_random_seed(spec.seed)
    prepared = split(data, spec.validation_split)
    strategy = job_strategy(devices)
    with strategy.scope():
        model = build_model(spec, data, settings)
        model.compile(
            optimizer=make_optimizer(spec.optimizer, learning_rate, cycle),
            loss=spec.loss,
            metrics=metrics(Task(spec.loss)),
            steps_per_execution=1 if strategy.num_replicas_in_sync > 1 else steps_per_execution,
        )
    return model, prepared


def run_range_test(spec: RangeTestSpec, reporter: JobReporter, settings: Settings) -> dict:
    """Sweep the LR, stream the curve, and suggest bounds; the sweep ends early on divergence."""
    devices = job_devices(settings.gpus_per_job)
    dataset = load_dataset(spec.dataset, settings, reporter.store)
    model, data = prepare_model(spec, dataset, spec.start_lr, settings, 1, devices)
    reporter.resume(0)  # a range test is short: every attempt runs it from the start
    per_epoch = data.iterations_per_epoch(spec.batch_size)
    total, epochs = spec.total_iterations(per_epoch), spec.fit_epochs(per_epoch)
    reporter.set_progress(total_iterations=total, epochs=epochs)
    finder = RangeTestStream(
        reporter=reporter, min_lr=spec.start_lr, max_lr=spec.end_lr, steps=total, sweep=spec.sweep,
        beta=spec.beta, stop_factor=spec.stop_factor,
    )
    data_seed = fresh_data_seed(spec.seed)
    order = SeededEpochs(data.x, data.y, spec.batch_size, data_seed)
    model.fit(order.epochs(), epochs=epochs, shuffle=False, validation_data=data.validation,
              callbacks=[order, finder], verbose=0)
    advice = step_size_advice(len(data.x), spec.batch_size)
    result = {
        "iterations": len(finder.losses),
        "stopped_early": len(finder.losses) < total,
        "step_size_advice": advice.__dict__,
        "suggested_bounds": None,
        "devices": devices,
    }
    try:
        suggestion = finder.suggestion()
    except ValueError as error:
        result["warning"] = f"No bounds suggested: {error}"
        return result
    result["suggested_bounds"] = suggestion.as_dict()
    if spec.verify is not None:
        from worker.verification import verify  # it trains through this module's loop

        best, result["verification"] = verify(spec, suggestion, dataset, model.get_weights(), data_seed, reporter,
                                              settings, devices, len(finder.losses))
        result |= {"unverified_bounds": suggestion.as_dict(), "suggested_bounds": best.as_dict()}
    return result


def schedules(spec: TrainingSpec, plan: TrainingPlan, bounds: tuple[float, float] | None
              ) -> tuple[keras.optimizers.schedules.LearningRateSchedule, dict | None]:
    """The training's in-graph LR schedule, its rates taken from `bounds` (a range test's) where the spec has none
    (1cycle and SGDR peak at the suggested `max_lr`), and the momentum cycle that goes with it (None: fixed)."""
    if spec.clr is not None:
        config = spec.clr.resolve(plan.iterations_per_epoch, bounds)
        arguments = config.lr_arguments()
        return CyclicalSchedule(**arguments), momentum_cycle(config, arguments)
    classes = {"one_cycle": OneCycleSchedule, "cosine_restarts": CosineRestartsSchedule}
    peak = spec.schedule.given_lr or bounds[1]
    arguments = policy_arguments(spec.schedule, peak, plan.total_iterations, plan.iterations_per_epoch)
    return classes[spec.schedule.policy](**arguments), momentum_cycle(spec.schedule, arguments)


def train_recorded(model: keras.Model, data: Split, batch_size: int, epochs: int, reporter: JobReporter,
                   extra_callbacks: tuple = (), data_seed: int = 0, start_iteration: int = 0,
                   stream_class: type[TrainingStream] = TrainingStream) -> TrainingStream:
    """The worker's training loop: `fit` from `start_iteration` (a checkpoint's) to the end of `epochs`, every
    iteration streamed to the job through `reporter`, the batches in the order `data_seed` fixes. A start inside an
    epoch first finishes that epoch in a `fit` of its own. Extra callbacks come first (a checkpoint restores before
    the recording starts)."""
    order = SeededEpochs(data.x, data.y, batch_size, data_seed)
    stream = stream_class(reporter=reporter)
    epoch, done = divmod(start_iteration, order.per_epoch)
    segments = [(order.rest_of_epoch(epoch, done), epoch, epoch + 1)] if done else []
    segments.append((order.epochs(), epoch + 1 if done else epoch, epochs))
    try:
        for batches, first_epoch, end_epoch in segments:
            if first_epoch < end_epoch and stream.divergence is None and not reporter.should_stop():
                model.fit(batches, initial_epoch=first_epoch, epochs=end_epoch, shuffle=False,
                          validation_data=data.validation,
                          callbacks=[order, *extra_callbacks, stream], verbose=0)
            if model.stop_training:
                break
    finally:
        stream.close()
    return stream


def fresh_data_seed(seed: int | None) -> int:
    """The seed of a job's batch order: its `seed`, or a random one."""
    return seed if seed is not None else int(np.random.default_rng().integers(2**32))


def commit(saved: Path, checkpoint: Path, storage: Storage) -> None:
    """Make a saved checkpoint the job's, here and in the storage."""
    os.replace(saved, checkpoint)
    storage.publish(checkpoint)


def _resume_point(reporter: JobReporter, files: JobFiles, storage: Storage, seed: int | None
                  ) -> checkpoints.Checkpoint:
    """The checkpoint this attempt starts from, the curve cut back to it: the last one saved (on this host or in
    the storage, with the best model so far), or a fresh start."""
    saved = checkpoints.load(files.checkpoint) if storage.fetch(files.checkpoint) else None
    if saved is not None and reporter.resume(saved.iteration, saved.epoch, saved.history) == saved.iteration:
        storage.fetch(files.model("best", training_state=True))
        return saved
    reporter.resume(0)
    return checkpoints.Checkpoint(0, 0, fresh_data_seed(seed), [])


def find_bounds_first(spec: TrainingSpec, reporter: JobReporter, settings: Settings) -> tuple[float, float]:
    """The training's own range test, on its model, data and optimizer (a model of its own: the training starts from
    fresh weights), its curve kept apart and its result recorded on the job (an attempt after a lost one skips it)."""
    reporter.start_phase("range_test")
    result = run_range_test(spec.range_test.on(spec), reporter, settings)
    reporter.start_phase("")
    suggested = result["suggested_bounds"]
    reporter.set_progress(range_test=result)
    if suggested is None:
        raise JobError(f"The range test the training ran first suggested no bounds: {result['warning']}")
    if suggested["confidence"] == "low" and not spec.accept_low_confidence:
        raise JobError(f"The bounds of the range test the training ran first have low confidence "
                       f"({'; '.join(suggested['reasons'])}); set `accept_low_confidence` to use them anyway")
    bounds = (suggested["min_lr"], suggested["max_lr"])
    reporter.set_progress(bounds=list(bounds))
    return bounds


def run_training(spec: TrainingSpec, reporter: JobReporter, settings: Settings,
                 bounds: tuple[float, float] | None = None) -> dict:
    """Train with the in-graph schedule (cyclical, 1cycle or SGDR) for the planned epochs, its rates taken from
    `bounds` where the spec has none (a range test's, or its own range test's), recording every iteration; resume
    from the job's checkpoint where an earlier attempt left one, checkpoint as it goes, and save the trained model
    (and the best by validation loss). Raises `Drained` when the worker shut down meanwhile."""
    if bounds is None and spec.range_test is not None:
        bounds = find_bounds_first(spec, reporter, settings)
    data = load_dataset(spec.dataset, settings, reporter.store)
    plan = plan_training(spec, len(data.x_train))
    schedule, cycle = schedules(spec, plan, bounds)
    devices = job_devices(settings.gpus_per_job)
    model, prepared = prepare_model(spec, data, schedule, settings, settings.steps_per_execution, devices, cycle)
    files, storage = settings.job_files(reporter.job_id), settings.storage()
    start = _resume_point(reporter, files, storage, spec.seed)
    reporter.set_progress(total_iterations=plan.total_iterations, epochs=plan.epochs, epoch=start.epoch,
                          momentum_cycle=cycle)
    if start.iteration:
        checkpoints.restore(model, start)
    checkpointer = checkpoints.Checkpointer(
        files.checkpoint, settings.checkpoint_every_s, start.data_seed, spec.batch_size, len(prepared.x),
        lambda: reporter.history, resume_from=start if start.iteration else None, lost=reporter.lost.is_set,
        drain=reporter.drain_requested.is_set,
        commit=lambda iteration, saved: reporter.once_stored(
            iteration, lambda: commit(saved, files.checkpoint, storage)))
    best = BestModel(files.model("best", training_state=True), start.history, storage.publish)
    savers = (best,) if prepared.validation else ()
    stream = train_recorded(model, prepared, spec.batch_size, plan.epochs, reporter, (checkpointer, *savers),
                            start.data_seed, start.iteration)
    if stream.divergence is not None:
        iteration, lr = stream.divergence
        raise JobError(f"The loss became NaN or infinite at iteration {iteration} (lr={lr:.4g}); lower max_lr")
    if checkpointer.drained:
        raise Drained(f"Job {reporter.job_id} checkpointed at iteration {model.optimizer.iterations.numpy()}")
    history = reporter.history
    result = {
        "resumed_from": start.iteration,
        "bounds": list(bounds) if bounds else None,
        "iterations": int(model.optimizer.iterations.numpy()),
        "epochs": plan.epochs,
        "devices": devices,
        "momentum_cycle": cycle,
        "final_metrics": history[-1] if history else {},
        "history": {name: [epoch.get(name) for epoch in history] for name in (history[0] if history else {})},
    }
    if spec.clr is not None:
        result["clr"] = schedule.get_config()
    else:
        result["schedule"] = {"policy": spec.schedule.policy, **schedule.get_config()}
    if not reporter.should_stop():
        result |= keep_models(model, files, storage.publish)
    if data.x_test is not None:
        test = model.evaluate(data.x_test, data.y_test, batch_size=spec.batch_size, verbose=0, return_dict=True)
        result |= {f"test_{name}": finite_or_none(value) for name, value in test.items()}
    return result
