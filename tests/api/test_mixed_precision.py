"""Mixed precision on the real stack: under `mixed_float16` a batch whose gradients overflow is skipped by Keras's
loss scaling; the job lists it, its range test reads the curve without it (the sweep does not stop on its loss), and
the training's rate stays on the schedule of the batch index. `mixed_bfloat16` needs no loss scaling."""

import numpy as np
import pytest

from clr.schedules import cyclical_lr
from tests.api.test_workloads import npz, upload
from tests.helpers import in_plain_keras, wait_for_state

pytestmark = pytest.mark.slow
SAMPLES, BATCH, EPOCHS = 256, 16, 3


@pytest.fixture(scope="module")
def one_overflowing_sample(client) -> dict:
    """Three classes of 64 features, learnable; one sample so large that float16 overflows on it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 64)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(64, 3)), axis=1)
    x[7] = 6e4  # its activations pass float16's largest value (65504): its batch's loss is not finite
    return upload(client, "/datasets", npz(x_train=x, y_train=y), "overflowing.npz")


def training(dataset_id: str, **fields) -> dict:
    return {"model": {"architecture": "mlp"}, "dataset": {"id": dataset_id}, "optimizer": {"name": "sgd"},
            "batch_size": BATCH, "seed": 0, "epochs": EPOCHS} | fields


def not_finite(curve: dict) -> list[int]:
    return [iteration for iteration, loss in zip(curve["iteration"], curve["loss"], strict=True) if loss is None]


def test_a_float16_training_skips_the_overflowing_batches_lists_them_and_stays_on_its_schedule(
        client, one_overflowing_sample):
    body = training(one_overflowing_sample["id"], precision="mixed_float16", accept_low_confidence=True,
                    range_test={"start_lr": 1e-3, "end_lr": 0.3, "epochs": EPOCHS}, clr={"step_size_epochs": 1})
    submitted = client.post("/trainings", json=body)
    assert submitted.status_code == 202, submitted.text
    done = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["error"]  # neither the sweep nor the training stopped on a NaN loss
    iterations = EPOCHS * SAMPLES // BATCH
    sweep, sweep_curve = done["range_test"], client.get(f"/jobs/{done['id']}/curves?phase=range_test").json()
    assert sweep["iterations"] == iterations and not sweep["stopped_early"] and sweep["suggested_bounds"]
    assert len(not_finite(sweep_curve)) == EPOCHS  # the sample's batch, once an epoch: skipped, and not read
    assert set(not_finite(sweep_curve)) <= set(sweep["skipped_iterations"])

    curve = client.get(f"/jobs/{done['id']}/curves").json()
    assert curve["iteration"] == list(range(iterations))  # one point per batch, the skipped ones too
    np.testing.assert_allclose(curve["lr"], cyclical_lr(**done["result"]["clr"])(np.arange(iterations)), rtol=1e-6)
    assert done["result"]["iterations"] == iterations  # the skipped steps counted as batches
    assert len(not_finite(curve)) == EPOCHS and set(not_finite(curve)) <= set(done["skipped_iterations"])


def test_a_bfloat16_training_trains_on_schedule_and_its_model_loads_in_plain_keras(client, tmp_path):
    body = training("0" * 32, dataset={"name": "digits"}, precision="mixed_bfloat16", epochs=1,
                    clr={"base_lr": 0.01, "max_lr": 0.1, "step_size": 20})
    submitted = client.post("/trainings", json=body)
    assert submitted.status_code == 202, submitted.text
    done = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["error"]
    assert done["skipped_iterations"] is None and done["spec"]["precision"] == "mixed_bfloat16"
    curve = client.get(f"/jobs/{done['id']}/curves").json()
    np.testing.assert_allclose(curve["lr"], cyclical_lr(0.01, 0.1, 20)(np.array(curve["iteration"])), rtol=1e-6)
    loaded = in_plain_keras(client, done["id"], "final", tmp_path)
    assert loaded["dtype_policies"] == ["mixed_bfloat16"]
