"""Real jobs through the real API, Redis and Celery worker, on scikit-learn's digits."""

import csv
import io

import numpy as np
import pytest

from api.examples import RANGE_TEST_EXAMPLE, TRAINING_EXAMPLES
from clr.schedules import cyclical_lr, range_sweep
from tests.helpers import in_plain_keras, wait_for_state, wait_until

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


def test_a_downsampled_curve_follows_new_points_and_a_resumed_attempts(client, store):
    """The API keeps downsampled answers by curve length and attempt: never one older than the curve."""
    job_id = store.create("training", TRAINING_EXAMPLES["bounds"]["value"], owner="admin")
    try:
        first = store.claim(job_id, "host:1:1", 3, 3600.0, False).attempts
        store.report(job_id, first, 0, np.full(1000, 0.01), np.linspace(2.0, 1.0, 1000), iteration=1000)
        path, small = f"/jobs/{job_id}/curves", {"max_points": 10}
        before = client.get(path, params=small).json()
        assert before["iteration"][0] == 0 and before["iteration"][-1] == 999
        assert client.get(path, params=small).json() == before
        store.report(job_id, first, 1000, np.full(500, 0.01), np.full(500, 0.5), iteration=1500)
        grown = client.get(path, params=small).json()
        assert grown["iteration"][-1] == 1499 and min(grown["loss"]) == 0.5
        second = store.claim(job_id, "host:1:2", 3, 3600.0, True).attempts  # the first runner was lost
        store.resume(job_id, second, 0, 0, [])
        store.report(job_id, second, 0, np.full(1500, 0.01), np.full(1500, 3.0), iteration=1500)  # as long as before
        assert set(client.get(path, params=small).json()["loss"]) == {3.0}
    finally:
        store.delete(job_id)


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
    assert rows[0] == ["iteration", "lr", "loss", "smoothed_loss", "accuracy"]
    assert len(rows) == len(full["iteration"]) + 1
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
    assert job["progress"] == {"iteration": 3 * per_epoch, "total_iterations": 3 * per_epoch, "epoch": 3, "epochs": 3,
                               "verifying": None}
    assert client.get(f"/jobs/{job['id']}/plot.png").content.startswith(b"\x89PNG")


def test_step_size_outside_smiths_range_is_a_warning_at_submit_time(client):
    submitted = client.post("/trainings", json=mlp_training(1, step_size=5)).json()
    assert any("Smith recommends 2 to 10" in warning for warning in submitted["warnings"])
    assert client.get(f"/jobs/{submitted['id']}").json()["warnings"] == submitted["warnings"]
    assert client.post(f"/jobs/{submitted['id']}/cancel").status_code == 202  # the warning is all this test needs


def upload(client, **arrays) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return client.post("/datasets", files={"file": ("data.npz", buffer.getvalue())}).json()["id"]


def test_a_diverging_training_fails_naming_iteration_and_lr(client):
    rng = np.random.default_rng(0)
    dataset_id = upload(client, x_train=rng.random((256, 8, 8)) * 1e18, y_train=rng.integers(0, 10, 256))
    body = mlp_training(100, base_lr=1.0, max_lr=1e6) | {"dataset": {"id": dataset_id}}
    job = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "failed"
    assert "NaN or infinite at iteration" in job["error"] and "lr=" in job["error"]
    curves = client.get(f"/jobs/{job['id']}/curves").json()
    assert curves["loss"][-1] is None  # the non-finite loss is kept, sent as null
    assert len(curves["iteration"]) < 800  # stopped when the reporter saw it, long before the 100th epoch


def test_a_model_that_does_not_fit_the_data_fails_readably(client):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    body = mlp_training(1) | {"model": {"keras_json": model.to_json()}}
    job = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "failed"
    assert job["error"] == "The model expects samples of shape (28, 28, 1); the dataset's are (8, 8, 1)"


def test_an_uploaded_dataset_and_a_keras_json_model_train(client):
    import keras

    rng = np.random.default_rng(0)
    x, y = rng.random((256, 6, 6), dtype=np.float32), rng.integers(0, 3, 256)
    dataset_id = upload(client, x_train=x, y_train=y, x_test=x[:32], y_test=y[:32])
    dataset = next(d for d in client.get("/datasets").json()["uploaded"] if d["id"] == dataset_id)
    assert dataset["input_shape"] == [6, 6, 1] and dataset["num_classes"] == 3
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")])
    body = mlp_training(2) | {"model": {"keras_json": model.to_json()}, "dataset": {"id": dataset_id}}
    job = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["iterations"] == 2 * 8 and "test_accuracy" in job["result"]


def test_cancel_stops_a_running_training_and_keeps_its_curve(client, store):
    job_id = client.post("/trainings", json=mlp_training(400, batch_size=8)).json()["id"]
    wait_until(lambda: (store.get(job_id) or {}).get("iteration", 0) > 100, "training under way")
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
    job = wait_for_state(client, job_id, {"cancelled", "succeeded", "failed"}, timeout=30)
    assert job["state"] == "cancelled"
    curves = client.get(f"/jobs/{job_id}/curves").json()
    assert 100 < len(curves["iteration"]) < job["progress"]["total_iterations"]
    assert curves["iteration"] == list(range(len(curves["iteration"])))
    assert "momentum" not in curves  # the optimizer's own momentum, fixed
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    assert store.curve(job_id).iterations.size == 0


def test_health_reports_redis_and_the_worker(client):
    health = client.get("/health").json()
    assert health["redis"] == "ok" and len(health["workers"]) == 1


def test_a_constant_rate_trains_at_that_rate_at_every_iteration(client, tmp_path):
    body = TRAINING_EXAMPLES["one_cycle"]["value"] | {"epochs": 1, "seed": 0,
                                                      "schedule": {"policy": "constant", "lr": 0.03}}
    job = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["schedule"] == {"policy": "constant", "lr": 0.03} and job["result"]["momentum_cycle"] is None
    curves = client.get(f"/jobs/{job['id']}/curves").json()
    assert curves["iteration"] == list(range(45)) and curves["lr"] == [pytest.approx(0.03)] * 45
    assert in_plain_keras(client, job["id"], "final", tmp_path)["lr"] == pytest.approx(0.03)


def test_a_one_cycle_training_follows_pytorchs_one_cycle_and_its_momentum_at_every_iteration(client, tmp_path):
    from clr.policies import one_cycle_lr, one_cycle_momentum

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
    np.testing.assert_allclose(curves["momentum"], one_cycle_momentum(total)(np.arange(total)), rtol=1e-12)
    assert job["result"]["momentum_cycle"]["arguments"]["max_momentum"] == 0.95
    csv_header = client.get(f"/jobs/{job['id']}/curves", params={"format": "csv"}).text.split("\n")[0]
    assert csv_header == "iteration,lr,loss,momentum"
    final = in_plain_keras(client, job["id"], "final", tmp_path)  # at the rate and momentum of the last step
    assert final["optimizer"] == "SGD" and final["iterations"] == total
    assert final["lr"] == pytest.approx(float(one_cycle_lr(0.1, total, pct_start=0.3)(total - 1)), rel=1e-5)
    assert final["momentum"] == pytest.approx(float(one_cycle_momentum(total)(total - 1)), rel=1e-5)


def test_one_request_runs_its_range_test_then_trains_with_the_bounds(client):
    body = {**mlp_training(4), "clr": {"step_size_epochs": 2}, "accept_low_confidence": True,
            "range_test": {"start_lr": 1e-4, "end_lr": 10.0, "epochs": 3}}
    job = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    suggested = job["range_test"]["suggested_bounds"]
    assert job["result"]["bounds"] == [suggested["min_lr"], suggested["max_lr"]] and suggested["explanation"]
    sweep = client.get(f"/jobs/{job['id']}/curves", params={"phase": "range_test"}).json()
    per_epoch = int(np.ceil(DIGITS_TRAIN / 32))
    assert sweep["iteration"][0] == 0 and len(sweep["iteration"]) <= 3 * per_epoch and "smoothed_loss" in sweep
    assert sweep["lr"][0] == pytest.approx(1e-4, rel=1e-5)
    trained = client.get(f"/jobs/{job['id']}/curves").json()
    assert trained["iteration"] == list(range(4 * per_epoch))
    expected = cyclical_lr(suggested["min_lr"], suggested["max_lr"], 2 * per_epoch)(np.arange(4 * per_epoch))
    np.testing.assert_allclose(trained["lr"], expected, rtol=1e-6)
    for phase in ("range_test", "training"):
        plot = client.get(f"/jobs/{job['id']}/plot.png", params={"phase": phase})
        assert plot.status_code == 200 and plot.content[:8] == b"\x89PNG\r\n\x1a\n"
    plain = wait_for_state(client, client.post("/trainings", json=mlp_training(1)).json()["id"], {"succeeded"})
    assert client.get(f"/jobs/{plain['id']}/curves", params={"phase": "range_test"}).status_code == 404
