"""A range test's verification in this process (real Redis, real Keras on digits): every candidate trained one whole
cycle under its own phase and judged on the validation split; an attempt after a lost one trains only the rest."""

import json

import numpy as np
import pytest

from clr.config import RangeTestSpec
from clr.schedules import cyclical_lr
from clr.verification import chosen as one_standard_error_rule
from worker.engine.range_test import run_range_test
from worker.reporting import JobReporter
from worker.settings import Settings

pytestmark = pytest.mark.slow

SPEC = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
        "batch_size": 64, "start_lr": 1e-4, "end_lr": 10.0, "epochs": 3, "seed": 0,
        "verify": {"candidates": 3, "epochs": 2}}
PER_EPOCH = 21  # 1,437 training digits less the 10 % held out for the judging, in batches of 64


def attempt(store, job_id: str, settings: Settings) -> dict:
    """Run the range test as the job's next attempt (as a worker would after losing the last one)."""
    store.redis.hset(f"clr:job:{job_id}", "state", "queued")
    claim = store.claim(job_id, "test:1", 5, 60.0, False)
    spec = RangeTestSpec.model_validate(SPEC)
    with JobReporter(store, job_id, claim.attempts, settings) as reporter:
        return run_range_test(spec, reporter, settings)


@pytest.fixture(scope="module")
def verified_once(redis_url, tmp_path_factory):
    from worker.store import JobStore

    store, settings = JobStore.from_url(redis_url), Settings(redis_url=redis_url, data_dir=tmp_path_factory.mktemp("v"))
    job_id = store.create("range_test", RangeTestSpec.model_validate(SPEC).model_dump(mode="json"))
    return store, settings, job_id, attempt(store, job_id, settings)


def test_each_candidate_trains_one_cycle_from_the_same_weights_under_its_own_phase(verified_once):
    store, _, job_id, result = verified_once
    rows = result["verification"]
    assert [row["phase"] for row in rows] == ["candidate_0", "candidate_1", "candidate_2"]
    assert rows[0]["name"] == "suggested"
    assert (rows[0]["min_lr"], rows[0]["max_lr"]) == (result["unverified_bounds"]["min_lr"],
                                                       result["unverified_bounds"]["max_lr"])
    for row in rows:
        assert row["iterations"] == 2 * PER_EPOCH and 0 < row["val_accuracy"] <= 1 and row["val_loss"] > 0
        curve = store.curve(job_id, phase=row["phase"])
        expected = cyclical_lr(row["min_lr"], row["max_lr"], PER_EPOCH)(np.arange(2 * PER_EPOCH))
        np.testing.assert_allclose(curve.lrs, expected, rtol=1e-5)  # one whole triangular cycle, every iteration
        assert np.all(np.isfinite(curve.losses))
    chosen = [row for row in rows if row["chosen"]]
    assert chosen == [row for row in rows if row["phase"] == one_standard_error_rule(rows)["phase"]]
    assert all(row["val_loss_se"] > 0 for row in rows)
    bounds = result["suggested_bounds"]
    assert bounds["verified"] and (bounds["min_lr"], bounds["max_lr"]) == (chosen[0]["min_lr"], chosen[0]["max_lr"])
    job = store.get(job_id)
    assert len(job["epoch_history"]) == 3  # the range test's epochs only
    assert len(store.curve(job_id).lrs) == result["iterations"]  # the sweep's curve is its own


def test_an_attempt_after_a_lost_one_trains_only_the_candidates_not_yet_measured(verified_once):
    store, settings, job_id, first = verified_once
    kept = first["verification"][:2]  # the lost attempt had measured two; the second scored best of all
    kept[1] = kept[1] | {"val_loss": 1e-6}
    store.redis.hset(f"clr:job:{job_id}", "verification", json.dumps(
        [{key: value for key, value in row.items() if key != "chosen"} for row in kept]))
    store.redis.delete(f"clr:curve:{job_id}:candidate_0", f"clr:curve:{job_id}:candidate_1")
    again = attempt(store, job_id, settings)
    rows = again["verification"]
    assert [row["val_loss"] for row in rows[:2]] == [kept[0]["val_loss"], 1e-6]  # not trained again
    assert len(store.curve(job_id, phase="candidate_0").lrs) == 0
    assert len(store.curve(job_id, phase="candidate_2").lrs) == 2 * PER_EPOCH  # trained again from its start
    assert rows[1]["chosen"] and again["suggested_bounds"]["max_lr"] == rows[1]["max_lr"]
