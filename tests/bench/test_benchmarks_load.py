"""The start-latency, API-load and curve-scale benchmarks start and print their tables (tiny sizes: this proves
they run, it measures nothing)."""

import shutil

import pytest

from tests.bench.test_benchmarks_start import run_module


@pytest.mark.slow
def test_start_latency_benchmark_prints_its_table():
    out = run_module("bench.start_latency", "--jobs", "1", "--idle", "0", "--phase-runs", "1", "--spares", "1",
                     "--jobs-per-child", "100")
    assert "| POST to first iteration |" in out and "| import TensorFlow |" in out
    assert "1 warm spare(s), 100 jobs per process: back to back / idle, p50 of POST to first iteration: " in out


def test_api_load_benchmark_prints_its_table():
    out = run_module("bench.api_load", "--workers", "2", "--clients", "3", "--seconds", "0.3", "--pace", "0.1",
                     "--jobs", "200", "--points", "5000")
    assert "| `GET /jobs?limit=50` (200 jobs) | closed loop |" in out and "| one request per 0.1 s |" in out


def test_curves_scale_benchmark_prints_its_table():
    out = run_module("bench.curves_scale", "--points", "20000", "--requests", "2")
    assert "| 20,000 |" in out and "`curves?max_points=2000`" in out


@pytest.mark.skipif(shutil.which("wrk") is None,
                    reason="LOUD SKIP: wrk is not installed (`make test` installs it with apt), so the API overhead "
                           "benchmark was not run")
def test_api_overhead_benchmark_prints_its_ratio():
    out = run_module("bench.api_overhead", "--seconds", "1", "--repetitions", "2", "--connections", "4")
    assert "| ours |" in out and "| anchor |" in out and "anchor / ours, requests/s: " in out
