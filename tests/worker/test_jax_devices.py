"""A training split between two devices on JAX (Keras's `DataParallel`; the CPU made to show two, as a host with two
GPUs would): the same curve and LR at every iteration as on one device, a batch that does not split evenly padded
and weighted so that its loss is its own samples' (real Redis, real Keras, in a process of its own)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clr.schedules import cyclical_lr

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SPEC = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd", "momentum": 0.9},
        "batch_size": 16, "epochs": 2, "seed": 3, "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 30}}
PER_EPOCH = 90  # 1,437 training digits in batches of 16: the last of each epoch has 13, which 2 devices cannot split


def train_on_one_and_two_devices(redis_url: str, folder: str) -> dict:
    """The same training with `CLR_GPUS_PER_JOB` 1 and 2: each one's devices, curve and epoch history."""
    from clr.config import TrainingSpec
    from worker.engine.training import run_training
    from worker.reporting import JobReporter
    from worker.settings import Settings
    from worker.store import JobStore

    store, out = JobStore.from_url(redis_url), {}
    for devices in (1, 2):
        settings = Settings(redis_url=redis_url, data_dir=Path(folder), gpus_per_job=devices)
        job_id = store.create("training", SPEC)
        claim = store.claim(job_id, "test:1", 5, 60.0, False)
        with JobReporter(store, job_id, claim.attempts, settings) as reporter:
            result = run_training(TrainingSpec.model_validate(SPEC), reporter, settings)
        curve = store.curve(job_id)
        out[devices] = {"devices": result["devices"], "iterations": curve.iterations.tolist(),
                        "lrs": curve.lrs.tolist(), "losses": curve.losses.tolist(), "history": result["history"]}
    return out


def test_a_training_split_between_two_devices_records_what_one_device_does(redis_url, tmp_path):
    code = ("import json, sys; from tests.worker.test_jax_devices import *; "
            f"print(json.dumps(train_on_one_and_two_devices({redis_url!r}, {str(tmp_path)!r})))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=os.environ | {"KERAS_BACKEND": "jax",
                                           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert run.returncode == 0, run.stderr[-4000:]
    one, two = json.loads(run.stdout.strip().splitlines()[-1]).values()
    assert one["devices"] == ["cpu:0"] and two["devices"] == ["cpu:0", "cpu:1"]
    assert one["iterations"] == two["iterations"] == list(range(2 * PER_EPOCH))
    np.testing.assert_allclose(two["lrs"], cyclical_lr(0.01, 0.1, 30)(np.arange(2 * PER_EPOCH)), rtol=1e-6)
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4)  # the padded last batches' included
    # An epoch's metrics weigh its padded batch as a whole one (16 samples for 13): off by 3e-4 here
    for metric in ("loss", "accuracy"):
        np.testing.assert_allclose(two["history"][metric], one["history"][metric], rtol=1e-3)
