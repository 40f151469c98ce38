"""Verified bounds through the real API, Redis and Celery worker: a range test that trains its candidate bound pairs,
each curve under its own phase, Smith's accuracy signal beside the loss, and a training that runs one first."""

import numpy as np
import pytest

from api.examples import RANGE_TEST_EXAMPLES, TRAINING_EXAMPLES
from clr.schedules import cyclical_lr
from clr.verification import chosen as one_standard_error_rule
from tests.helpers import wait_for_state, wait_until
from worker.store import JobStore

pytestmark = pytest.mark.slow

PER_EPOCH = 26  # 1,437 training digits less the 10 % held out, in batches of 50
VERIFY = {"candidates": 3, "epochs": 2}


@pytest.fixture(scope="module")
def verified(client):
    body = RANGE_TEST_EXAMPLES["verified"]["value"] | {"seed": 0, "verify": VERIFY}
    job = client.post("/range-tests", json=body)
    assert job.status_code == 202, job.text
    return wait_for_state(client, job.json()["id"], {"succeeded", "failed"}, timeout=300)


def test_a_verified_range_test_lists_every_candidate_and_suggests_the_best(verified):
    assert verified["state"] == "succeeded", verified["error"]
    result = verified["result"]
    rows = result["verification"]
    assert [row["phase"] for row in rows] == ["candidate_0", "candidate_1", "candidate_2"]
    assert [row["name"] for row in rows][:2] == ["suggested", "valley"]
    for row in rows:
        assert row["iterations"] == VERIFY["epochs"] * PER_EPOCH and row["epochs"] == VERIFY["epochs"]
        assert 0 <= row["val_accuracy"] <= 1 and row["val_loss"] > 0 and row["max_lr"] >= 3 * row["min_lr"] * 0.999
    (chosen,) = [row for row in rows if row["chosen"]]
    assert chosen["phase"] == one_standard_error_rule(rows)["phase"]
    assert all(0 < row["val_loss_se"] < row["val_loss"] for row in rows)
    bounds = result["suggested_bounds"]
    assert bounds["verified"] and (bounds["min_lr"], bounds["max_lr"]) == (chosen["min_lr"], chosen["max_lr"])
    assert "Verified: of 3 bound pairs" in bounds["explanation"]
    assert (result["unverified_bounds"]["min_lr"], result["unverified_bounds"]["max_lr"]) == (
        rows[0]["min_lr"], rows[0]["max_lr"])
    assert verified["spec"]["validation_split"] == 0.1


def test_each_candidate_has_its_own_curve_and_the_figure_shows_them(client, verified):
    for row in verified["result"]["verification"]:
        curve = client.get(f"/jobs/{verified['id']}/curves", params={"phase": row["phase"]}).json()
        assert curve["iteration"] == list(range(row["iterations"]))
        expected = cyclical_lr(row["min_lr"], row["max_lr"], row["iterations"] // 2)(np.arange(row["iterations"]))
        np.testing.assert_allclose(curve["lr"], expected, rtol=1e-5)  # one whole cycle, ending at base_lr
    plot = client.get(f"/jobs/{verified['id']}/plot.png")
    assert plot.status_code == 200 and plot.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/jobs/{verified['id']}/plot.png", params={"phase": "candidate_1"}).status_code == 200


def test_the_range_test_records_each_batchs_accuracy_beside_its_loss(client, verified):
    sweep = client.get(f"/jobs/{verified['id']}/curves").json()
    accuracy = np.array(sweep["accuracy"], dtype=float)
    assert len(accuracy) == len(sweep["loss"]) == verified["result"]["iterations"]
    batch = np.where(np.arange(len(accuracy)) % PER_EPOCH == PER_EPOCH - 1, 1293 - 25 * 50, 50)  # 1,293 to fit
    np.testing.assert_allclose(accuracy * batch, np.round(accuracy * batch), atol=1e-4)  # right answers / batch
    assert accuracy[:20].mean() < 0.3 < accuracy.max()  # near chance on the plateau, learning in the fall
    header = client.get(f"/jobs/{verified['id']}/curves", params={"format": "csv"}).text.splitlines()[0]
    assert header == "iteration,lr,loss,smoothed_loss,accuracy"
    accuracy_bounds = verified["result"]["unverified_bounds"]["accuracy_bounds"]
    assert accuracy_bounds is None or accuracy_bounds[1] >= 3 * accuracy_bounds[0] * 0.999


def test_deleting_the_job_removes_every_candidates_curve(client, verified, redis_server):
    store = JobStore.from_url(f"{redis_server}/0")
    keys = [f"clr:curve:{verified['id']}{suffix}" for suffix in ("", ":accuracy", ":candidate_0", ":candidate_2")]
    assert all(store.redis.exists(key) for key in keys)
    assert client.delete(f"/jobs/{verified['id']}").status_code == 204
    assert not any(store.redis.exists(key) for key in keys)


def test_cancel_during_the_verification_stops_it(client):
    body = RANGE_TEST_EXAMPLES["verified"]["value"] | {"seed": 1, "verify": {"candidates": 4, "epochs": 20}}
    job_id = client.post("/range-tests", json=body).json()["id"]
    wait_until(lambda: client.get(f"/jobs/{job_id}").json()["progress"]["verifying"], "verifying", timeout=120)
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
    job = wait_for_state(client, job_id, {"cancelled", "succeeded", "failed"}, timeout=60)
    assert job["state"] == "cancelled", job["error"]


def test_a_training_verifies_its_own_range_test_then_trains_with_the_best_pair(client):
    body = TRAINING_EXAMPLES["verified_range_test"]["value"] | {
        "model": {"architecture": "mlp"}, "optimizer": {"name": "sgd"}, "seed": 0,
        "range_test": {"start_lr": 1e-4, "end_lr": 10.0, "epochs": 2, "verify": VERIFY},
        "clr": {"step_size_epochs": 1}}
    job = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"},
                         timeout=300)
    assert job["state"] == "succeeded", job["error"]
    verification = job["range_test"]["verification"]
    (chosen,) = [row for row in verification if row["chosen"]]
    assert job["result"]["bounds"] == [chosen["min_lr"], chosen["max_lr"]]
    curve = client.get(f"/jobs/{job['id']}/curves", params={"phase": verification[0]["phase"]}).json()
    assert len(curve["iteration"]) == verification[0]["iterations"]
    assert len(job["result"]["history"]["loss"]) == job["progress"]["epochs"]  # the training's own epochs only


def test_verify_is_checked_at_submit_time_naming_the_field(client):
    base = RANGE_TEST_EXAMPLES["verified"]["value"]
    for verify, field in (({"candidates": 99}, "candidates"), ({"epochs": 1}, "epochs"), ("yes", "verify"),
                          ({"candidate": 3}, "candidate")):
        answer = client.post("/range-tests", json=base | {"verify": verify})
        assert answer.status_code == 422 and field in answer.text, answer.text
