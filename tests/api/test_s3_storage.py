"""A lost worker host, and storage any host can reach: with `CLR_STORAGE_URL` on an S3 endpoint (moto's standalone
server), a worker on a host that shares no file with the API or the lost worker takes the job over once its
heartbeat is stale, resumes it from the checkpoint in the bucket, on the dataset from the bucket, and the API serves
the model it left there."""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clr import datasets
from clr_service.stack import EmbeddedStack, free_port, start_worker
from tests.api.test_durable_jobs import assert_one_point_per_iteration_on_schedule, training
from tests.conftest import SERVICE_ENV
from tests.helpers import wait_for_state, wait_until
from worker.store import JobStore

pytestmark = pytest.mark.slow

BUCKET = "clr-test"


@pytest.fixture(scope="module")
def s3_env():
    """A local S3 endpoint with an empty bucket, and the environment that points the service at it."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "CLR_STORAGE_URL": f"s3://{BUCKET}/service"}
    os.environ.update(env)  # this process's s3fs too
    import s3fs

    bucket = s3fs.S3FileSystem(skip_instance_cache=True)
    wait_until(lambda: _answers(bucket), "the S3 endpoint", timeout=30)
    bucket.mkdir(BUCKET)
    yield env, bucket
    server.kill()
    server.wait()
    for name in env:
        os.environ.pop(name)


def in_bucket(bucket, path: str) -> bool:
    bucket.invalidate_cache()
    return bucket.exists(path)


def _answers(bucket) -> bool:
    try:
        bucket.ls("")
        return True
    except OSError:
        return False


def test_a_worker_on_another_host_resumes_from_the_bucket_and_the_api_serves_its_model(redis_server, tmp_path,
                                                                                       s3_env):
    env, bucket = s3_env
    api_host, lost_host, new_host = tmp_path / "api", tmp_path / "lost", tmp_path / "new"
    with EmbeddedStack(port=free_port(), redis_url=f"{redis_server}/6", data_dir=api_host,
                       extra_env=SERVICE_ENV | env) as stack, stack.client() as client:
        digits, buffer = datasets.digits(), io.BytesIO()
        np.savez(buffer, x_train=digits.x_train[:600], y_train=digits.y_train[:600], x_test=digits.x_test,
                 y_test=digits.y_test)
        dataset_id = client.post("/datasets", files={"file": ("digits.npz", buffer.getvalue())}).json()["id"]
        assert in_bucket(bucket, f"{BUCKET}/service/datasets/{dataset_id}.npz")
        os.killpg(stack.processes[0].pid, signal.SIGKILL)  # the stack's own worker: replaced by one on `lost_host`
        stack.processes[0].wait()
        stack.processes[0] = start_worker(stack.env | {"CLR_DATA_DIR": str(lost_host)})
        total = 10 * int(np.ceil(600 / 16))
        job_id = client.post("/trainings", json=training(10, dataset={"id": dataset_id})).json()["id"]
        store = JobStore.from_url(stack.redis_url)
        checkpoint = f"{BUCKET}/service/jobs/{job_id}/checkpoint.npz"
        wait_until(lambda: store.get(job_id)["iteration"] > total // 4 and in_bucket(bucket, checkpoint),
                   "a checkpoint in the bucket", timeout=180)
        os.killpg(stack.processes[0].pid, signal.SIGKILL)  # the host is gone, and its disk with it
        stack.processes[0].wait()
        killed_at = time.monotonic()
        stack.processes[0] = start_worker(stack.env | {"CLR_DATA_DIR": str(new_host)})
        wait_until(lambda: store.get(job_id)["attempts"] == 2 and store.get(job_id)["state"] == "running",
                   "the job running again", timeout=float(SERVICE_ENV["CLR_STALE_AFTER_S"]) + 30)
        assert time.monotonic() - killed_at <= float(SERVICE_ENV["CLR_STALE_AFTER_S"]) + 30
        job = wait_for_state(client, job_id, {"succeeded", "failed"}, timeout=240)
        assert_one_point_per_iteration_on_schedule(client, job, total)
        assert job["attempts"] == 2 and job["resumes"][-1]["resumed_from"] > 0
        assert (new_host / "datasets" / f"{dataset_id}.npz").exists()  # fetched from the bucket
        assert not (api_host / "jobs").exists()  # the API host never had the model ...
        model = client.get(f"/jobs/{job_id}/model")  # ... and serves it from the bucket
        assert model.status_code == 200 and model.content == (new_host / "jobs" / job_id / "model.keras").read_bytes()
        assert not in_bucket(bucket, checkpoint)  # a finished job keeps no checkpoint
        assert client.delete(f"/jobs/{job_id}").status_code == 204
        assert not in_bucket(bucket, f"{BUCKET}/service/jobs/{job_id}")
