"""Real jobs through the real API, Redis and Celery worker, on scikit-learn's digits."""

import csv
import io
import os
import signal

import numpy as np
import pytest

from api.routes.jobs import RANGE_TEST_EXAMPLE, TRAINING_EXAMPLES
from clr.schedules import cyclical_lr, range_sweep
from tests.helpers import wait_for_state, wait_until

pytestmark = pytest.mark.slow

DIGITS_TRAIN = 1437  # scikit-learn's 1,797 digits less the 20% test split


def mlp_training(epochs: int, batch_size: int = 32, **clr) -> dict:
    return {
        "model": {"architecture": "mlp"},
        "dataset": {"name": "digits"},
        "optimizer": {"name": "sgd"},
        "batch_size": batch_size,
        "epochs": epochs,
        "seed": 1,
        "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 40} | clr,
    }


@pytest.fixture(scope="module")
def range_test(client):
    job = client.post("/range-tests", json=RANGE_TEST_EXAMPLE | {"seed": 0})
    assert job.status_code == 202, job.text
    assert job.json()["state"] == "queued" and job.json()["kind"] == "range_test"
    return wait_for_state(client, job.json()["id"], {"succeeded", "failed"})


def test_range_test_succeeds_with_bounds_and_a_curve_per_iteration(client, range_test):
    assert range_test["state"] == "succeeded", range_test["error"]
    result = range_test["result"]
    bounds = result["suggested_bounds"]
    assert 1e-4 <= bounds["min_lr"] and 3 * bounds["min_lr"] <= bounds["max_lr"] <= 1.0
    assert bounds["confidence"] in ("high", "medium", "low") and isinstance(bounds["reasons"], list)
    assert "min_lr=" in bounds["explanation"] and bounds["valley_lr"] > 0
    assert result["step_size_advice"] == {"iterations_per_epoch": 29, "min_step_size": 58, "max_step_size": 290}
    total = 3 * 29
    assert range_test["progress"]["total_iterations"] == total
    assert range_test["attempts"] == 1 and range_test["started_at"] and range_test["finished_at"]

    curves = client.get(f"/jobs/{range_test['id']}/curves").json()
    ran = result["iterations"]
    assert curves["iteration"] == list(range(ran))
    np.testing.assert_allclose(curves["lr"], range_sweep(1e-4, 1.0, total)[:ran], rtol=1e-6)
    assert len(curves["smoothed_loss"]) == ran and len(curves["epochs"]) >= 1


def test_curves_since_max_points_and_csv(client, range_test):
    path = f"/jobs/{range_test['id']}/curves"
    full = client.get(path).json()
    tail = client.get(path, params={"since": 50}).json()
    assert tail["iteration"] == full["iteration"][50:]
    assert tail["smoothed_loss"] == full["smoothed_loss"][50:]
    assert client.get(path, params={"since": 10_000}).json()["iteration"] == []
    small = client.get(path, params={"max_points": 10}).json()
    assert len(small["iteration"]) <= 10 and small["iteration"][0] == 0 and small["iteration"][-1] == full["iteration"][-1]
    losses = [loss for loss in full["loss"] if loss is not None]
    assert max(losses) in small["loss"] and min(losses) in small["loss"]
    rows = list(csv.reader(io.StringIO(client.get(path, params={"format": "csv"}).text)))
    assert rows[0] == ["iteration", "lr", "loss", "smoothed_loss"] and len(rows) == len(full["iteration"]) + 1
    assert client.get(path, params={"max_points": 2}).status_code == 422
    png = client.get(f"/jobs/{range_test['id']}/plot.png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")


def test_training_with_the_range_test_bounds_runs_whole_cycles_on_the_schedule(client, range_test):
    body = TRAINING_EXAMPLES["range_test"]["value"] | {"range_test_id": range_test["id"], "accept_low_confidence": True}
    submitted = client.post("/trainings", json=body).json()
    assert submitted["warnings"] == []  # 2 epochs a step, 2 whole cycles: nothing to advise
    job = wait_for_state(client, submitted["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    bounds = range_test["result"]["suggested_bounds"]
    step_size = 2 * 45  # 2 epochs of ceil(1437 / 32) iterations
    assert job["result"]["clr"] == {"base_lr": bounds["min_lr"], "max_lr": bounds["max_lr"], "step_size": step_size,
                                    "mode": "triangular2", "shape": "linear", "gamma": 1.0}
    assert 0 <= job["result"]["test_accuracy"] <= 1
    assert job["result"]["epochs"] == 8 and len(job["result"]["history"]["loss"]) == 8
    curves = client.get(f"/jobs/{job['id']}/curves").json()
    total = 2 * 2 * step_size  # two cycles: the training ends where the second one does
    assert curves["iteration"] == list(range(total))
    schedule = cyclical_lr(bounds["min_lr"], bounds["max_lr"], step_size, "triangular2")
    np.testing.assert_allclose(curves["lr"], schedule(np.arange(total)), rtol=1e-6)
    assert schedule(total) == bounds["min_lr"]  # where the next batch would start: back at base_lr


def test_training_with_step_size_in_epochs_records_every_iteration(client):
    body = mlp_training(epochs=3, batch_size=50, step_size=None, step_size_epochs=2, mode="exp_range",
                        gamma=0.999, shape="sinusoidal") | {"validation_split": 0.2}
    job = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    per_epoch = int(np.ceil(int(DIGITS_TRAIN * 0.8) / 50))
    clr = job["result"]["clr"]
    assert clr["step_size"] == 2 * per_epoch
    curves = client.get(f"/jobs/{job['id']}/curves").json()
    assert curves["iteration"] == list(range(3 * per_epoch))
    expected = cyclical_lr(0.01, 0.1, clr["step_size"], "exp_range", 0.999, "sinusoidal")(np.arange(3 * per_epoch))
    np.testing.assert_allclose(curves["lr"], expected, rtol=1e-6)
    assert [epoch["val_accuracy"] is not None for epoch in curves["epochs"]] == [True] * 3
    assert job["progress"] == {"iteration": 3 * per_epoch, "total_iterations": 3 * per_epoch, "epoch": 3, "epochs": 3}
    assert client.get(f"/jobs/{job['id']}/plot.png").content.startswith(b"\x89PNG")


def test_step_size_outside_smiths_range_is_a_warning_at_submit_time(client):
    submitted = client.post("/trainings", json=mlp_training(1, step_size=5)).json()
    assert any("Smith recommends 2 to 10" in warning for warning in submitted["warnings"])
    job = wait_for_state(client, submitted["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded" and job["warnings"] == submitted["warnings"]


def test_a_one_cycle_training_follows_pytorchs_one_cycle_at_every_iteration(client):
    from clr.policies import one_cycle_lr

    body = TRAINING_EXAMPLES["one_cycle"]["value"] | {"epochs": 2, "seed": 0}
    submitted = client.post("/trainings", json=body)
    assert submitted.status_code == 202 and submitted.json()["warnings"] == []
    job = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    total = 2 * 45
    assert job["result"]["schedule"]["policy"] == "one_cycle" and job["result"]["schedule"]["total_steps"] == total
    curves = client.get(f"/jobs/{job['id']}/curves").json()
    assert curves["iteration"] == list(range(total))
    np.testing.assert_allclose(curves["lr"], one_cycle_lr(0.1, total, pct_start=0.3)(np.arange(total)), rtol=1e-6)
