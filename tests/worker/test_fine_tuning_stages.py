"""A two-stage fine-tuning in this process (real Redis, real Keras on digits): the head with the body frozen, then the
whole network from the head's weights under its own curve and range test; an attempt after one lost in the second
stage trains neither the head nor that range test again, and writes the whole network's curve once."""

import numpy as np
import pytest

from clr.config import TrainingSpec
from clr.schedules import cyclical_lr
from worker.engine.training import run_training
from worker.reporting import JobReporter
from worker.settings import Settings

pytestmark = pytest.mark.slow

SPEC = {"model": {"architecture": "mlp", "freeze": {"until": "dense_1"}}, "dataset": {"name": "digits"},
        "optimizer": {"name": "sgd"}, "batch_size": 64, "seed": 0, "epochs": 1,
        "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 11},
        "unfreeze": {"epochs": 2, "clr": {"step_size": 23}, "range_test": {"start_lr": 1e-3, "end_lr": 10.0,
                                                                          "iterations": 46},
                     "accept_low_confidence": True}}
PER_EPOCH = 23  # 1,437 training digits in batches of 64


def attempt(store, job_id: str, settings: Settings) -> dict:
    """Run the training as the job's next attempt (as a worker would after losing the last one)."""
    store.redis.hset(f"clr:job:{job_id}", "state", "queued")
    claim = store.claim(job_id, "test:1", 5, 60.0, False)
    with JobReporter(store, job_id, claim.attempts, settings) as reporter:
        return run_training(TrainingSpec.model_validate(SPEC), reporter, settings)


def test_the_second_stage_starts_from_the_head_and_a_later_attempt_skips_what_the_job_recorded(redis_url, tmp_path):
    from worker.store import JobStore

    store, settings = JobStore.from_url(redis_url), Settings(redis_url=redis_url, data_dir=tmp_path)
    job_id = store.create("training", TrainingSpec.model_validate(SPEC).model_dump(mode="json"))
    first = attempt(store, job_id, settings)
    job = store.get(job_id)
    assert job["head"] == first["head"] and job["head"]["iterations"] == PER_EPOCH
    assert job["head"]["frozen_layers"] == ["flatten", "dense"] and "frozen_layers" not in first
    bounds = first["bounds"]
    assert job["unfrozen_bounds"] == bounds and first["resumed_from"] == 0
    head_curve = store.curve(job_id)
    np.testing.assert_allclose(head_curve.lrs, cyclical_lr(0.01, 0.1, 11)(np.arange(PER_EPOCH)), rtol=1e-6)

    # Lost in the whole network's stage, before its first checkpoint; the head's and the range test's curves are
    # emptied, to show that neither runs again
    settings.job_files(job_id).stage_checkpoint("unfrozen").unlink()
    store.redis.delete(f"clr:curve:{job_id}", f"clr:curve:{job_id}:unfrozen_range_test")
    again = attempt(store, job_id, settings)
    assert again["head"] == first["head"] and again["bounds"] == bounds
    assert len(store.curve(job_id, phase="unfrozen_range_test").lrs) == len(store.curve(job_id).lrs) == 0
    whole = store.curve(job_id, phase="unfrozen")
    np.testing.assert_array_equal(whole.iterations, np.arange(2 * PER_EPOCH))  # each iteration once
    np.testing.assert_allclose(whole.lrs, cyclical_lr(*bounds, 23)(np.arange(2 * PER_EPOCH)), rtol=1e-6)
    assert again["history"]["loss"] == pytest.approx(first["history"]["loss"], rel=1e-4)  # the same start: the head's
