"""A range-test job: sweep the learning rate, stream the curve, suggest bounds (verified by training, if asked)."""

from __future__ import annotations

from pathlib import Path

from clr.config import RangeTestSpec
from clr.schedules import step_size_advice
from worker.engine.artifacts import load_weights
from worker.engine.build import fine_tuning, prepare_model
from worker.engine.data import load_dataset
from worker.engine.data_order import SeededEpochs, fresh_data_seed
from worker.engine.devices import job_devices
from worker.engine.streams import RangeTestStream
from worker.reporting import JobReporter
from worker.settings import Settings


def run_range_test(spec: RangeTestSpec, reporter: JobReporter, settings: Settings, start_from: Path | None = None
                   ) -> dict:
    """Sweep the LR from fresh weights (or those saved at `start_from`: a fine-tuning's head), stream the curve,
    and suggest bounds; the sweep ends early on divergence."""
    devices = job_devices(settings.gpus_per_job)
    dataset = load_dataset(spec.dataset, settings, reporter.store)
    model, data = prepare_model(spec, dataset, spec.start_lr, settings, 1, devices)
    if start_from is not None:
        load_weights(model, start_from)
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
        "skipped_iterations": finder.skipped,
    } | fine_tuning(model, spec.model)
    try:
        suggestion = finder.suggestion()
    except ValueError as error:
        result["warning"] = f"No bounds suggested: {error}"
        return result
    result["suggested_bounds"] = suggestion.as_dict()
    if spec.verify is not None:
        from worker.engine.verification import verify  # it trains with `worker.engine.streams`' loop

        best, result["verification"] = verify(spec, suggestion, dataset, model.get_weights(), data_seed, reporter,
                                              settings, devices, len(finder.losses))
        result |= {"unverified_bounds": suggestion.as_dict(), "suggested_bounds": best.as_dict()}
    return result
