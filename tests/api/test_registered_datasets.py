"""Datasets registered by path: only under the datasets root (no traversal, no link out of it), only by admin keys,
and trained on by the worker from where they lie."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from api.keys import ApiKey, KeyStore
from tests.helpers import wait_for_state


@pytest.fixture(scope="module")
def root(service) -> Path:
    return Path(service.env["CLR_DATASETS_ROOT"])


def save_npy_folder(folder: Path, samples: int = 96) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(folder / "x_train.npy", rng.random((samples, 8, 8), dtype=np.float32))
    np.save(folder / "y_train.npy", rng.integers(0, 3, samples))


@pytest.mark.parametrize(("path", "text"), [
    ("../outside", "is not a dataset inside the datasets root"),
    ("/etc", "is not a dataset inside the datasets root"),
    ("sub/../../outside", "is not a dataset inside the datasets root"),
    (".", "is not a dataset inside the datasets root"),
    ("link-out", "is not a dataset inside the datasets root"),
    ("missing", "nothing at 'missing'"),
    ("notes.txt", "Neither an `.npz` file nor a folder"),
])
def test_paths_outside_the_root_or_not_datasets_are_refused(client, root, path, text):
    outside = root.parent / "outside"
    if not outside.exists():
        save_npy_folder(outside)
        (root / "link-out").symlink_to(outside)
        (root / "notes.txt").write_text("not a dataset")
    refused = client.post("/datasets/registered", json={"path": path})
    assert refused.status_code == 422 and text in refused.text and "path" in refused.text, refused.text


def test_only_admin_keys_register(service):
    keys = KeyStore(redis.Redis.from_url(service.redis_url))
    with service.client(keys.create(ApiKey(f"tenant-{time.monotonic_ns()}"))) as tenant:
        refused = tenant.post("/datasets/registered", json={"path": "anything"})
    assert refused.status_code == 403 and "not an admin key" in refused.text


@pytest.mark.slow
def test_a_registered_folder_trains_from_where_it_lies(client, root, service):
    save_npy_folder(root / "team" / "shapes")
    registered = client.post("/datasets/registered", json={"path": "team/shapes"})
    assert registered.status_code == 201, registered.text
    meta = registered.json()
    assert meta["path"] == "team/shapes" and meta["train_samples"] == 96 and meta["input_shape"] == [8, 8, 1]
    job = client.post("/trainings", json={
        "model": {"architecture": "mlp"}, "dataset": {"id": meta["id"]}, "optimizer": {"name": "sgd"},
        "batch_size": 32, "epochs": 2, "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 3}})
    assert job.status_code == 202, job.text
    done = wait_for_state(client, job.json()["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded" and done["result"]["iterations"] == 6, done["error"]
    assert not os.path.exists(service.data_dir / "datasets" / meta["id"])  # read in place, never copied
