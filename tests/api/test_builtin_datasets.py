"""Built-in datasets come from the data volume, never from the internet at job time."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import wait_for_state

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def fashion_training(**changes) -> dict:
    return {"model": {"architecture": "mlp"}, "dataset": {"name": "fashion_mnist"}, "optimizer": {"name": "adam"},
            "batch_size": 50, "cycles": 1, "clr": {"base_lr": 1e-4, "max_lr": 3e-3, "step_size_epochs": 2}} | changes


def test_an_absent_dataset_is_refused_at_submit_time_and_trains_once_fetched(client, service, tmp_path):
    listed = {entry["name"]: entry for entry in client.get("/datasets").json()["builtin"]}
    assert listed["digits"]["present"] and not listed["fashion_mnist"]["present"]
    for path, body in (("/trainings", fashion_training()),
                       ("/range-tests", fashion_training() | {"epochs": 1, "cycles": None, "clr": None})):
        body = {key: value for key, value in body.items() if value is not None}
        response = client.post(path, json=body)
        assert response.status_code == 422, response.text
        assert "'fashion_mnist' is not on the data volume" in response.text
        assert "clr-service datasets fetch fashion_mnist" in response.text

    rng = np.random.default_rng(0)  # fashion_mnist's layout: 28x28 uint8 images, labels 0-9
    images, labels = rng.integers(0, 256, (600, 28, 28), dtype=np.uint8), rng.integers(0, 10, 600)
    images[np.arange(600), labels, :] = 255  # a learnable stripe per class
    source = tmp_path / "fashion_mnist.npz"
    np.savez(source, x_train=images[:500], y_train=labels[:500], x_test=images[500:], y_test=labels[500:])
    fetched = subprocess.run(
        [sys.executable, "-c", "from clr_service.cli import app; app()", "datasets", "fetch", "fashion_mnist", "--from",
         str(source), "--data-dir", str(service.data_dir)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert fetched.returncode == 0 and "500 training samples" in fetched.stdout, fetched.stdout + fetched.stderr
    listed = {entry["name"]: entry for entry in client.get("/datasets").json()["builtin"]}
    assert listed["fashion_mnist"] == {"name": "fashion_mnist", "present": True, "train_samples": 500,
                                       "test_samples": 100, "input_shape": [28, 28, 1], "num_classes": 10}

    submitted = client.post("/trainings", json=fashion_training())
    assert submitted.status_code == 202, submitted.text
    job = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["iterations"] == 2 * 2 * 10 and job["result"]["test_accuracy"] > 0.5
