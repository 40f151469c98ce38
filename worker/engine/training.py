"""A training job: its own range test first where it asks for one, then `fit` with the in-graph schedule, resumed
from the job's checkpoint where an earlier attempt left one, and its models kept."""

from __future__ import annotations

from clr.config import TrainingSpec
from clr.plan import plan_training
from worker.engine import checkpoints
from worker.engine.artifacts import BestModel, keep_models
from worker.engine.build import fine_tuning, prepare_model, schedules
from worker.engine.data import load_dataset
from worker.engine.devices import job_devices
from worker.engine.range_test import run_range_test
from worker.engine.resume import commit, resume_point
from worker.engine.streams import train_recorded
from worker.errors import Drained, JobError
from worker.reporting import JobReporter, finite_or_none
from worker.settings import Settings


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
    start = resume_point(reporter, files, storage, spec.seed)
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
        result |= keep_models(model, files, storage.publish)
    uploaded = reporter.store.uploads.get("datasets", spec.dataset.id) if spec.dataset.id else None
    if uploaded and uploaded.get("class_names"):
        result["class_names"] = uploaded["class_names"]  # an image folder's: the class of each output index
    if data.x_test is not None:
        test = model.evaluate(data.x_test, data.y_test, batch_size=spec.batch_size, verbose=0, return_dict=True)
        result |= {f"test_{name}": finite_or_none(value) for name, value in test.items()}
    return result
