"""Workers on Keras's JAX and PyTorch backends (`CLR_KERAS_BACKEND`), each in a stack of its own: a seeded training
with dropout trains on the schedule at every iteration, resumes exactly after its process is killed past a
checkpoint, and hands out a model that loads and scores the same on TensorFlow (this process); what the backend
lacks is refused at submit."""

import os
import signal

import keras
import numpy as np
import pytest

from clr_service.stack import EmbeddedStack, free_port
from tests.api.test_durable_jobs import (
    DIGITS_TRAIN,
    assert_one_point_per_iteration_on_schedule,
    runner_pid,
    training,
    under_way,
)
from tests.conftest import SERVICE_ENV
from tests.helpers import wait_for_state, wait_until
from worker.job_files import JobFiles
from worker.store import JobStore

pytestmark = pytest.mark.slow

EPOCHS = 6
TOTAL = EPOCHS * int(np.ceil(DIGITS_TRAIN / 16))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_worker_on_another_backend_trains_resumes_exactly_and_hands_out_a_model_tensorflow_loads(backend, tmp_path):
    with EmbeddedStack(port=free_port(), data_dir=tmp_path, extra_env=SERVICE_ENV | {
            "CLR_KERAS_BACKEND": backend}) as stack, stack.client() as client:
        refused = client.post("/trainings", json=training(1, precision="mixed_float16"))
        assert refused.status_code == 422 and f"the workers train on {backend!r}" in refused.text

        reference = wait_for_state(client, client.post("/trainings", json=training(EPOCHS)).json()["id"],
                                   {"succeeded", "failed"})
        reference_curves = assert_one_point_per_iteration_on_schedule(client, reference, TOTAL)
        assert reference["result"]["devices"] == ["cpu:0"]

        job_id = client.post("/trainings", json=training(EPOCHS)).json()["id"]
        store, files = JobStore.from_url(stack.redis_url), JobFiles.of(tmp_path, job_id)
        job = wait_until(lambda: under_way(store, files, job_id, TOTAL // 3), "a checkpoint, and training past it")
        os.kill(runner_pid(job), signal.SIGKILL)
        job = wait_for_state(client, job_id, {"succeeded", "failed"}, timeout=240)
        curves = assert_one_point_per_iteration_on_schedule(client, job, TOTAL)
        resumed_from = job["resumes"][-1]["resumed_from"]
        assert job["attempts"] == 2 and 0 < resumed_from < TOTAL
        after = slice(resumed_from, resumed_from + 20)  # the same batches and dropout as the run not killed
        np.testing.assert_allclose(curves["loss"][after], reference_curves["loss"][after], rtol=1e-4)
        np.testing.assert_allclose(job["result"]["history"]["loss"], reference["result"]["history"]["loss"],
                                   rtol=1e-4)

        (tmp_path / "model.keras").write_bytes(client.get(f"/jobs/{job_id}/model").content)
    assert keras.backend.backend() == "tensorflow"
    model = keras.saving.load_model(tmp_path / "model.keras")
    from clr import datasets

    digits = datasets.digits()
    scored = model.evaluate(digits.x_test, digits.y_test, verbose=0, return_dict=True)
    assert scored["accuracy"] == pytest.approx(job["result"]["test_accuracy"], abs=1e-6)
