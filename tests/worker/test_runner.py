"""Every path of a claimed job ends it (real Redis, real Keras on digits, in this process)."""

import time

import keras
import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from api.examples import TRAINING_EXAMPLES
from clr import datasets
from clr.config import TrainingSpec
from clr.keras_schedule import CyclicalSchedule
from worker import runner
from worker.engine import devices
from worker.engine.build import build_model
from worker.engine.data import split as split_data
from worker.engine.streams import train_recorded
from worker.errors import JobError
from worker.reporting import JobReporter
from worker.settings import Settings
from worker.store import JobStore

pytestmark = pytest.mark.slow


def queued_training(store) -> str:
    return store.create("training", TRAINING_EXAMPLES["bounds"]["value"])


def test_a_failing_gpu_setup_ends_the_job_instead_of_leaving_it_running(redis_url, store, monkeypatch, tmp_path):
    def broken_gpu_setup():
        raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")

    monkeypatch.setattr(devices, "use_gpus_with_memory_growth", broken_gpu_setup)
    job_id = queued_training(store)
    assert runner.claim_and_run(job_id, Settings(redis_url=redis_url, data_dir=tmp_path)) == "claimed"
    job = store.get(job_id)
    assert job["state"] == "failed" and "CUDA driver version" in job["error"]


def test_when_fit_raises_the_points_it_ran_are_kept(redis_url, store):
    job_id = store.create("training", {})
    attempt = store.claim(job_id, "test:1", 5, 60.0, False).attempts

    class FailsInEpoch2(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("disk full")

    data = datasets.digits()
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    model.compile(keras.optimizers.SGD(CyclicalSchedule(0.01, 0.1, 50)), "sparse_categorical_crossentropy",
                  steps_per_execution=8)
    split = split_data(data, 0.0)
    with JobReporter(store, job_id, attempt, Settings(flush_interval_s=60)) as reporter:  # no flush while it runs
        with pytest.raises(RuntimeError, match="disk full"):
            train_recorded(model, split, 32, 5, reporter, extra_callbacks=(FailsInEpoch2(),))
    ran = int(model.optimizer.iterations.numpy())
    assert ran == 2 * 45 and list(store.curve(job_id).iterations) == list(range(ran))


def test_ending_a_job_rides_out_a_redis_pause(redis_url, store):
    job_id = store.create("training", {})
    attempt = store.claim(job_id, "test:1", 5, 60.0, False).attempts
    store.redis.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
    started = time.monotonic()
    impatient = JobStore(redis.Redis.from_url(redis_url, socket_timeout=0.3, retry=Retry(NoBackoff(), 0)))
    runner.finish(impatient, job_id, attempt, Settings(stale_after_s=30), "succeeded", result={"ok": True})
    assert time.monotonic() - started >= 1.0
    assert store.get(job_id)["state"] == "succeeded" and store.get(job_id)["result"] == {"ok": True}


def test_runner_ids_tell_pid_namespaces_apart(monkeypatch):
    me = runner.this_runner()
    host, namespace, pid = me.split(":", 2)
    assert int(pid) > 0 and namespace
    assert not runner.runner_is_lost(me)  # alive
    assert runner.runner_is_lost(f"{host}:{namespace}:{2**22 + 7}")  # dead, in our namespace
    assert not runner.runner_is_lost(f"{host}:another-container:{2**22 + 7}")  # same hostname, not ours to judge
    assert not runner.runner_is_lost(None)


def test_ending_a_job_taken_over_meanwhile_leaves_the_new_attempt_alone(store):
    job_id = store.create("training", {})
    first = store.claim(job_id, "test:1", 5, 60.0, False).attempts
    store.claim(job_id, "test:2", 5, 60.0, True)
    runner.finish(store, job_id, first, Settings(), "failed", error="too late")
    assert store.get(job_id)["state"] == "running" and store.get(job_id)["error"] is None
    assert np.isfinite(store.get(job_id)["heartbeat_at"])


@pytest.mark.parametrize(("loss", "units", "message"), [
    ("sparse_categorical_crossentropy", 9, "The model has 9 outputs; the labels need at least 10 for loss"),
    ("categorical_crossentropy", 11, "The model has 11 outputs; the labels need 10 for loss"),
])
def test_a_model_with_the_wrong_number_of_outputs_is_refused_naming_both(loss, units, message, tmp_path):
    data = datasets.digits()
    if loss == "categorical_crossentropy":
        data = datasets.Dataset(data.x_train, np.eye(10, dtype=np.float32)[data.y_train], None, None)
    model = keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(), keras.layers.Dense(units)])
    body = TRAINING_EXAMPLES["one_cycle"]["value"] | {"model": {"keras_json": model.to_json()}, "loss": loss}
    with pytest.raises(JobError, match=message):
        build_model(TrainingSpec.model_validate(body), data, Settings(data_dir=tmp_path))
