"""A dataset larger than the memory its job may allocate trains to the end: uploaded in parts, memory-mapped by the
worker, read a batch at a time (the job's process is capped with `CLR_JOB_MEMORY_MB`)."""

import numpy as np
import pytest

from clr_service.client import Client
from clr_service.stack import EmbeddedStack, free_port
from tests.conftest import SERVICE_ENV

pytestmark = pytest.mark.slow

JOB_MEMORY_MB = 1000
SAMPLES, FEATURES = 258_000, 1024  # float32: 1,008 MiB, more than the job may allocate


@pytest.fixture(scope="module")
def capped_service(redis_server, tmp_path_factory):
    env = SERVICE_ENV | {"CLR_MAX_UPLOAD_BYTES": str(80 * 2**20), "CLR_MAX_DATASET_BYTES": str(2 * 2**30),
                         "CLR_JOB_MEMORY_MB": str(JOB_MEMORY_MB)}
    with EmbeddedStack(port=free_port(), redis_url=f"{redis_server}/5", data_dir=tmp_path_factory.mktemp("big"),
                       extra_env=env) as stack:
        yield stack


def test_a_dataset_larger_than_the_jobs_memory_limit_trains(capped_service, tmp_path):
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(SAMPLES, FEATURES))
    rng = np.random.default_rng(0)
    for start in range(0, SAMPLES, 20_000):
        x[start:start + 20_000] = rng.random((min(20_000, SAMPLES - start), FEATURES), dtype=np.float32)
    y = (np.asarray(x[:, 0]) * 10).astype(np.int64)  # learnable: the class is the first feature's decile
    assert x.nbytes > JOB_MEMORY_MB * 2**20
    with Client(capped_service.url, capped_service.api_key, timeout=120) as client:
        dataset = client.upload_arrays({"x_train": x, "y_train": y})
        assert dataset["train_samples"] == SAMPLES and dataset["input_shape"] == [FEATURES]
        job = client.submit_training({
            "model": {"architecture": "mlp"}, "dataset": {"id": dataset["id"]}, "optimizer": {"name": "adam"},
            "batch_size": 4096, "epochs": 1, "seed": 0, "clr": {"base_lr": 1e-3, "max_lr": 1e-2, "step_size": 30}})
        done = client.wait(job["id"])
        assert done["state"] == "succeeded", done["error"]
        steps = -(-SAMPLES // 4096)
        assert done["result"]["iterations"] == steps
        curve = client.curves(job["id"])
        assert curve["iteration"] == list(range(steps)) and np.isfinite(curve["loss"]).all()
        # The cap holds: a validation split of 60 % is loaded into memory, and that job fails out of memory.
        loaded = client.wait(client.submit_training(job["spec"] | {"validation_split": 0.6})["id"])
        assert loaded["state"] == "failed" and "Out of memory" in loaded["error"], loaded["error"]
