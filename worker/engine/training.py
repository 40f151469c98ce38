"""A training job: its own range test first where it asks for one, then `fit` with the in-graph schedule, resumed
from the job's checkpoint where an earlier attempt left one, and its models kept; a fine-tuning that `unfreeze`s
trains its head first, then the whole network from the head's weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras

from clr.config import TrainingSpec
from clr.plan import plan_training
from worker.engine import checkpoints
from worker.engine.artifacts import BestModel, keep_models, load_weights, save_weights
from worker.engine.build import fine_tuning, prepare_model, schedules
from worker.engine.data import load_dataset
from worker.engine.devices import job_devices
from worker.engine.range_test import run_range_test
from worker.engine.resume import commit, resume_point
from worker.engine.streams import train_recorded
from worker.errors import Drained, JobError
from worker.reporting import JobReporter, finite_or_none
from worker.settings import Settings


@dataclass(frozen=True)
class Stage:
    """Where a stage of a training writes: the phase of its curve ("" the training's own) and the prefix of its own
    range test's phase and record fields (`range_test`, `bounds`)."""

    curve: str
    prefix: str

    @property
    def range_test(self) -> str:
        return f"{self.prefix}range_test"


WHOLE, UNFROZEN = Stage("", ""), Stage("unfrozen", "unfrozen_")  # a training's only or first stage; its second


def find_bounds_first(spec: TrainingSpec, reporter: JobReporter, settings: Settings, stage: Stage = WHOLE,
                      start_from: Path | None = None) -> tuple[float, float]:
    """The stage's own range test, on its model (from fresh weights, or those saved at `start_from`), data and
    optimizer (a model of its own: the stage starts from the same weights), its curve kept apart and its result
    and bounds recorded on the job (an attempt after a lost one skips it)."""
    reporter.start_phase(stage.range_test)
    result = run_range_test(spec.range_test.on(spec), reporter, settings, start_from)
    reporter.start_phase(stage.curve)
    suggested = result["suggested_bounds"]
    reporter.set_progress(**{stage.range_test: result})
    if suggested is None:
        raise JobError(f"The range test the training ran first suggested no bounds: {result['warning']}")
    if suggested["confidence"] == "low" and not spec.accept_low_confidence:
        raise JobError(f"The bounds of the range test the training ran first have low confidence "
                       f"({'; '.join(suggested['reasons'])}); set `accept_low_confidence` to use them anyway")
    bounds = (suggested["min_lr"], suggested["max_lr"])
    reporter.set_progress(**{f"{stage.prefix}bounds": list(bounds)})
    return bounds


def run_training(spec: TrainingSpec, reporter: JobReporter, settings: Settings,
                 bounds: tuple[float, float] | None = None) -> dict:
    """Train the spec, in two stages where it `unfreeze`s (`train_head_then_all`)."""
    if spec.unfreeze is not None:
        return train_head_then_all(spec, reporter, settings, bounds)
    return train(spec, reporter, settings, bounds)


def train_head_then_all(spec: TrainingSpec, reporter: JobReporter, settings: Settings,
                        bounds: tuple[float, float] | None) -> dict:
    """Train the head (the body frozen), save its weights, then train the whole network from them
    (`TrainingSpec.unfrozen`) under its own curve (`unfrozen`), range test and checkpoint. The result is the whole
    network's, with the head's stage as `head`; an attempt after a lost one skips the stages the job recorded
    (`head`, `unfrozen_bounds`)."""
    files, storage = settings.job_files(reporter.job_id), settings.storage()
    earlier = reporter.recorded()
    head = earlier.get("head")
    if head is None:
        head = train(spec, reporter, settings, bounds, keep=lambda model: save_weights(model, files.head_weights,
                                                                                        storage.publish))
        if reporter.should_stop():
            return head
        reporter.set_progress(head=head)
    elif not storage.fetch(files.head_weights):
        raise JobError(f"The head's weights of job {reporter.job_id} are not on this worker's data volume")
    whole_bounds = tuple(earlier["unfrozen_bounds"]) if earlier.get("unfrozen_bounds") else None
    return train(spec.unfrozen(), reporter, settings, whole_bounds, UNFROZEN, files.head_weights) | {"head": head}


def train(spec: TrainingSpec, reporter: JobReporter, settings: Settings, bounds: tuple[float, float] | None,
          stage: Stage = WHOLE, start_from: Path | None = None,
          keep: Callable[[keras.Model], dict] | None = None) -> dict:
    """Train with the in-graph schedule (cyclical, 1cycle or SGDR) for the planned epochs, from fresh weights or
    those saved at `start_from`, its rates taken from `bounds` where the spec has none (a range test's, or its own
    range test's), recording every iteration to the stage's curve; resume from the stage's checkpoint where an
    earlier attempt left one, checkpoint as it goes, and keep the trained model (the stage's `keep`; by default its
    files, and the best by validation loss). Raises `Drained` when the worker shut down meanwhile."""
    if bounds is None and spec.range_test is not None:
        bounds = find_bounds_first(spec, reporter, settings, stage, start_from)
    reporter.start_phase(stage.curve)
    data = load_dataset(spec.dataset, settings, reporter.store)
    plan = plan_training(spec, len(data.x_train))
    schedule, cycle = schedules(spec, plan, bounds)
    devices = job_devices(settings.gpus_per_job)
    model, prepared = prepare_model(spec, data, schedule, settings, settings.steps_per_execution, devices, cycle)
    if start_from is not None:
        load_weights(model, start_from)
    files, storage = settings.job_files(reporter.job_id), settings.storage()
    checkpoint = files.stage_checkpoint(stage.curve)
    start = resume_point(reporter, checkpoint, files, storage, spec.seed)
    reporter.set_progress(total_iterations=plan.total_iterations, epochs=plan.epochs, epoch=start.epoch,
                          **{} if stage.curve else {"momentum_cycle": cycle})
    if start.iteration:
        checkpoints.restore(model, start)
    checkpointer = checkpoints.Checkpointer(
        checkpoint, settings.checkpoint_every_s, start.data_seed, spec.batch_size, len(prepared.x),
        lambda: reporter.history, resume_from=start if start.iteration else None, lost=reporter.lost.is_set,
        drain=reporter.drain_requested.is_set,
        commit=lambda iteration, saved: reporter.once_stored(iteration, lambda: commit(saved, checkpoint, storage)))
    best = files.model("best", training_state=True)
    savers = (BestModel(best, start.history, storage.publish),) if prepared.validation else ()
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
    } | fine_tuning(model, spec.model)
    if spec.clr is not None:
        result["clr"] = schedule.get_config()
    else:
        result["schedule"] = {"policy": spec.schedule.policy, **schedule.get_config()}
    if not reporter.should_stop():
        result |= keep(model) if keep else keep_models(model, files, storage.publish)
    uploaded = reporter.store.uploads.get("datasets", spec.dataset.id) if spec.dataset.id else None
    if uploaded and uploaded.get("class_names"):
        result["class_names"] = uploaded["class_names"]  # an image folder's: the class of each output index
    if data.x_test is not None:
        test = model.evaluate(data.x_test, data.y_test, batch_size=spec.batch_size, verbose=0, return_dict=True)
        result |= {f"test_{name}": finite_or_none(value) for name, value in test.items()}
    return result
