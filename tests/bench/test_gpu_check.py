"""The GPU check runs on a machine without a GPU too, on TensorFlow and on JAX, the overhead benchmark with it (tiny:
this proves they run, it measures nothing)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_gpu_check_runs_on_the_cpu_and_says_where_the_job_ran():
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--models", "mlp", "--repetitions", "2",
                           "--seconds", "0.05", "--scale", "0.02", "--backends", "tensorflow", "jax",
                           "--steps-per-execution", "1", "2"],
                          capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GPUs visible: none (the check runs on CPU)" in done.stdout
    assert "ran on: ['/device:CPU:0']" in done.stdout  # then the overhead benchmark, tiny
    assert "ours / baseline, wall" in done.stdout and "anchor / baseline, wall" in done.stdout
    assert "| MLP (64 hidden) |" in done.stdout
    assert "A training job through the service on jax ran on: ['cpu:0']" in done.stdout  # then its overhead, tiny
    assert "Keras backend: jax" in done.stdout and done.stdout.count("| MLP (64 hidden) | 1 |") >= 2
