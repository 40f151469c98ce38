"""What survives what: models kept, a lost worker child or host resumed from its checkpoint at the exact iteration,
a restarted stack or Redis losing nothing. Real processes throughout."""

import io
import os
import signal
import time

import httpx
import keras
import numpy as np
import pytest

import clr.keras_momentum  # noqa: F401 (registers the optimizers and schedules a training state names)
from clr import datasets
from clr.schedules import cyclical_lr
from clr_service.stack import EmbeddedStack, free_port
from tests.conftest import SERVICE_ENV
from tests.helpers import in_plain_keras, wait_for_state, wait_until
from worker.job_files import JobFiles, stored_bytes
from worker.store import JobStore

pytestmark = pytest.mark.slow

DIGITS_TRAIN = 1437  # scikit-learn's 1,797 digits less the 20% test split
DROPOUT_MLP = keras.Sequential([
    keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
    keras.layers.Dropout(0.3), keras.layers.Dense(10, activation="softmax"),
]).to_json()


def training(epochs: int, batch_size: int = 16, **extra) -> dict:
    """A seeded training whose model has dropout: resuming it exactly needs its RNG state too."""
    return {
        "model": {"keras_json": DROPOUT_MLP},
        "dataset": {"name": "digits"},
        "optimizer": {"name": "sgd", "momentum": 0.9},
        "batch_size": batch_size,
        "epochs": epochs,
        "seed": 7,
        "clr": {"base_lr": 0.005, "max_lr": 0.05, "step_size": 150},
    } | extra


def runner_pid(job: dict) -> int:
    return int(job["runner"].rpartition(":")[2])


def under_way(store: JobStore, files: JobFiles, job_id: str, past: int):
    """The job, once it runs past iteration `past` with a checkpoint saved."""
    job = store.get(job_id)
    return job if job["state"] == "running" and job["iteration"] > past and files.checkpoint.exists() else None


def assert_one_point_per_iteration_on_schedule(client: httpx.Client, job: dict, total: int) -> dict:
    assert job["state"] == "succeeded", job["error"]
    curves = client.get(f"/jobs/{job['id']}/curves").json()
    assert curves["iteration"] == list(range(total))
    np.testing.assert_allclose(curves["lr"], cyclical_lr(0.005, 0.05, 150)(np.arange(total)), rtol=1e-6)
    return curves


def test_the_trained_model_downloads_and_loads_in_plain_keras_scoring_the_jobs_test_accuracy(client, service, store,
                                                                                              tmp_path):
    job = wait_for_state(client, client.post("/trainings", json=training(3, validation_split=0.2)).json()["id"],
                         {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    response = client.get(f"/jobs/{job['id']}/model")
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == f'attachment; filename="{job["id"]}.keras"'
    assert len(response.content) == job["result"]["model_bytes"]
    final = in_plain_keras(client, job["id"], "final", tmp_path)
    assert abs(final["accuracy"] - job["result"]["test_accuracy"]) <= 1e-6
    assert final["optimizer"] == "SGD" and final["iterations"] == job["result"]["iterations"]
    # the rate of the last step taken
    assert final["lr"] == pytest.approx(float(cyclical_lr(0.005, 0.05, 150)(job["result"]["iterations"] - 1)), rel=1e-5)
    assert final["momentum"] == pytest.approx(0.9)
    best = client.get(f"/jobs/{job['id']}/model", params={"which": "best"})
    assert best.status_code == 200 and len(best.content) == job["result"]["best_model_bytes"]
    assert in_plain_keras(client, job["id"], "best", tmp_path)["optimizer"] == "SGD"

    states = {which: client.get(f"/jobs/{job['id']}/model", params={"which": which, "include_optimizer": True})
              for which in ("final", "best")}
    assert sum(len(state.content) for state in states.values()) == job["result"]["training_state_bytes"]
    (tmp_path / "state.keras").write_bytes(states["final"].content)
    resumable = keras.saving.load_model(tmp_path / "state.keras")  # this package's schedule, where the job stopped
    iterations = int(resumable.optimizer.iterations)
    assert iterations == job["result"]["iterations"]
    next_rates = []
    for _ in range(3):  # training on follows the schedule
        next_rates.append(float(resumable.optimizer.learning_rate))
        resumable.train_on_batch(np.zeros((16, 8, 8, 1)), np.zeros(16))
    np.testing.assert_allclose(next_rates, cyclical_lr(0.005, 0.05, 150)(np.arange(iterations, iterations + 3)),
                               rtol=1e-6)

    files = JobFiles.of(service.data_dir, job["id"])
    assert files.model().exists() and not files.checkpoint.exists()  # a finished job keeps no checkpoint
    owner = store.get(job["id"])["owner"]
    usage = store.tenants.usage(owner)
    assert client.delete(f"/jobs/{job['id']}").status_code == 204
    assert usage - store.tenants.usage(owner) == stored_bytes(job["result"]) > job["result"]["training_state_bytes"]
    assert not files.folder.exists()
    assert client.get(f"/jobs/{job['id']}/model").status_code == 404


def test_models_that_do_not_exist_are_404_naming_why_and_409_while_queued(client):
    without_validation = client.post("/trainings", json=training(1)).json()["id"]
    queued = client.get(f"/jobs/{without_validation}/model")
    assert queued.status_code == 409 and "saved when it succeeds" in queued.json()["detail"]
    wait_for_state(client, without_validation, {"succeeded"})
    best = client.get(f"/jobs/{without_validation}/model", params={"which": "best"})
    assert best.status_code == 404 and "validation" in best.json()["detail"]
    range_test = client.post("/range-tests", json={
        "model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
        "batch_size": 64, "epochs": 1}).json()["id"]
    assert "range test" in client.get(f"/jobs/{range_test}/model").json()["detail"]
    assert client.get(f"/jobs/{without_validation}/model", params={"which": "other"}).status_code == 422
    client.post(f"/jobs/{range_test}/cancel")  # the worker is free for the next test


def test_a_worker_child_killed_after_a_checkpoint_resumes_at_that_iteration_exactly(client, store, service):
    epochs, total = 12, 12 * int(np.ceil(DIGITS_TRAIN / 16))
    reference_id = client.post("/trainings", json=training(epochs)).json()["id"]
    reference = client.get(f"/jobs/{wait_for_state(client, reference_id, {'succeeded'})['id']}/curves").json()
    job_id = client.post("/trainings", json=training(epochs)).json()["id"]
    files = JobFiles.of(service.data_dir, job_id)
    job = wait_until(lambda: under_way(store, files, job_id, total // 3), "a checkpoint, and training past it")
    os.kill(runner_pid(job), signal.SIGKILL)

    job = wait_for_state(client, job_id, {"succeeded", "failed"}, timeout=240)
    curves = assert_one_point_per_iteration_on_schedule(client, job, total)
    assert job["attempts"] == 2
    resumed_from = job["resumes"][-1]["resumed_from"]
    assert job["resumes"][-1]["attempt"] == 2 and 0 < resumed_from < total
    after = slice(resumed_from, resumed_from + 20)
    np.testing.assert_allclose(curves["loss"][after], reference["loss"][after], rtol=1e-4)
    reference_job = client.get(f"/jobs/{reference_id}").json()
    np.testing.assert_allclose(job["result"]["history"]["loss"], reference_job["result"]["history"]["loss"],
                               rtol=1e-4)


def upload_digits(client: httpx.Client) -> str:
    digits, buffer = datasets.digits(), io.BytesIO()
    np.savez(buffer, x_train=digits.x_train[:600], y_train=digits.y_train[:600])
    return client.post("/datasets", files={"file": ("digits.npz", buffer.getvalue())}).json()["id"]


def test_a_restarted_stack_keeps_jobs_and_datasets_and_resumes_the_running_job(tmp_path):
    epochs = 40  # long enough to be running still when the stack stops, on a quick host with a warm spare
    total = epochs * int(np.ceil(600 / 16))
    with EmbeddedStack(port=free_port(), data_dir=tmp_path, extra_env=SERVICE_ENV) as stack, \
            stack.client() as client:
        dataset_id = upload_digits(client)
        job_id = client.post("/trainings", json=training(epochs, dataset={"id": dataset_id})).json()["id"]
        store = JobStore.from_url(stack.redis_url)
        wait_until(lambda: under_way(store, JobFiles.of(tmp_path, job_id), job_id, total // 4), "training under way")
    # the stack stopped as on Ctrl-C: the worker checkpointed the job and queued it again
    with EmbeddedStack(port=free_port(), data_dir=tmp_path, extra_env=SERVICE_ENV) as stack, \
            stack.client() as client:
        assert dataset_id in [dataset["id"] for dataset in client.get("/datasets").json()["uploaded"]]
        job = wait_for_state(client, job_id, {"succeeded", "failed"}, timeout=240)
        assert_one_point_per_iteration_on_schedule(client, job, total)
        assert job["attempts"] == 1 and job["resumes"][-1]["resumed_from"] > total // 4


def test_redis_killed_and_restarted_mid_job_loses_no_point_and_the_api_says_503(tmp_path):
    total = 12 * int(np.ceil(DIGITS_TRAIN / 16))
    with EmbeddedStack(port=free_port(), data_dir=tmp_path, extra_env=SERVICE_ENV) as stack, \
            stack.client() as client:
        store = JobStore.from_url(stack.redis_url)
        job_id = client.post("/trainings", json=training(12)).json()["id"]
        wait_until(lambda: store.get(job_id)["iteration"] > total // 4, "training under way")
        redis_server = stack.processes.pop(0)
        redis_server.kill()
        redis_server.wait()
        answer = client.get(f"/jobs/{job_id}")
        assert answer.status_code == 503 and "Redis" in answer.json()["detail"]
        time.sleep(2)  # the worker trains on meanwhile
        stack.processes.insert(0, stack.start_redis())
        job = wait_for_state(client, job_id, {"succeeded", "failed"}, timeout=240)
        assert_one_point_per_iteration_on_schedule(client, job, total)
        assert job["attempts"] == 1
