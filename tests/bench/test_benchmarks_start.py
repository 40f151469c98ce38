"""Each benchmark starts and prints its table (tiny sizes: this proves they run, it measures nothing)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_module(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_store_benchmark_prints_its_figures():
    out = run_module("bench.store", "--points", "20000", "--requests", "5", "--repetitions", "1")
    assert "bytes per point" in out and "points/s" in out and "curves?max_points=2000" in out


def test_table1_benchmark_prints_its_table_and_plot(tmp_path):
    plot = tmp_path / "table1.png"
    out = run_module("bench.table1", "--epochs", "1", "--seeds", "1", "--grid", "0.03", "--range-epochs", "3",
                     "--data", "digits", "--batch-size", "64", "--plot", str(plot))
    for policy in ("fixed 0.03", "triangular2", "exp_range", "one_cycle", "one_cycle, cyclical momentum"):
        assert f"| {policy}" in out
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_bounds_panel_prints_its_synthetic_table():
    out = run_module("bench.bounds_panel", "--synthetic-only")
    assert "both bounds within 2x" in out
    for fall in ("1e-4 to 0.001", "1e-4 to 0.01", "1e-4 to 0.1"):  # falls of one to three decades
        assert f"| {fall} | 5000 | 10% | 15/15 |" in out
