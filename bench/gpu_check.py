"""The GPU check, one command on a machine with a GPU (under 10 minutes on one): which devices TensorFlow sees, then
for each Keras backend asked for (`--backends`; TensorFlow by default) a real job through the embedded service on
that backend that must run on the GPU, and the overhead benchmark on a real-size model (ResNet50V2 on 32x32x3) at
steps_per_execution 1 and at the fastest. On a machine without a GPU it runs the same steps on the CPU and says so
(the smoke test does that, tiny)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from clr_service.client import Client  # noqa: E402
from clr_service.stack import EmbeddedStack, free_port  # noqa: E402

JOB = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
       "batch_size": 64, "epochs": 2, "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 23}}


def job_devices(backend: str) -> list[str]:
    """The devices a real training job ran on, through an embedded stack (Redis, worker, API) on `backend`."""
    with tempfile.TemporaryDirectory() as data_dir, EmbeddedStack(port=free_port(), data_dir=Path(data_dir),
                                                                  worker_loglevel="WARNING",
                                                                  extra_env={"CLR_KERAS_BACKEND": backend}) as stack, \
            Client(stack.url, stack.api_key, timeout=120) as client:
        job = client.wait(client.submit_training(JOB)["id"])
    if job["state"] != "succeeded":
        raise SystemExit(f"The check's job {job['state']}: {job['error']}")
    return job["result"]["devices"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=["resnet50v2"], help="bench.overhead's models")
    parser.add_argument("--repetitions", default="5")
    parser.add_argument("--seconds", default="4", help="the baseline's timed part of each run, about")
    parser.add_argument("--scale", default="1.0")
    parser.add_argument("--backends", nargs="+", default=["tensorflow"], choices=["tensorflow", "jax", "torch"])
    parser.add_argument("--steps-per-execution", nargs="+", default=[], help="bench.overhead's, searched")
    args = parser.parse_args()

    gpus = tf.config.list_physical_devices("GPU")
    print(f"TensorFlow {tf.__version__}; GPUs visible: {[gpu.name for gpu in gpus] or 'none (the check runs on CPU)'}")
    for backend in args.backends:
        on = "" if backend == "tensorflow" else f" on {backend}"
        devices = job_devices(backend)
        print(f"A training job through the service{on} ran on: {devices}")
        if gpus and not any("GPU" in device or device.startswith(("gpu", "cuda")) for device in devices):
            raise SystemExit(f"FAILED: a GPU is visible but the job{on} did not run on it")
        print(f"Overhead of recording every iteration (bench.overhead{on}):", flush=True)
        searched = ["--steps-per-execution", *args.steps_per_execution] if args.steps_per_execution else []
        subprocess.run([sys.executable, "-m", "bench.overhead", "--models", *args.models, "--repetitions",
                        args.repetitions, "--seconds", args.seconds, "--scale", args.scale, *searched], check=True,
                       env=os.environ | {"KERAS_BACKEND": backend})


if __name__ == "__main__":
    main()
