"""The chaos benchmark's smoke run: one fault of each kind on a few short trainings, and no job lost, no point
missing or repeated, no LR off the schedule."""

import pytest

from tests.bench.test_benchmarks_start import run_module

pytestmark = pytest.mark.slow


def row(out: str, name: str) -> list[str]:
    """The cells of the markdown table row that starts with `name`."""
    line = next(line for line in out.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_one_fault_of_each_kind_loses_no_job_and_no_point():
    out = run_module("bench.chaos", "--jobs", "3", "--keep", "2", "--seeds", "1", "--epochs", "12", "--faults", "5",
                     "--each-once", "--min-gap", "3", "--max-gap", "6", "--max-minutes", "3", "--wait-minutes", "4")
    assert row(out, "total")[1] == "5"  # five faults (a kind with nothing to act on waits for a target: skipped)
    for kind in ("SIGKILL of a job's process", "SIGKILL of a whole worker, a new one started",
                 "SIGKILL and restart of Redis", "SIGKILL and restart of the API",
                 "SIGSTOP of a worker past the stale time, then SIGCONT"):
        assert row(out, kind)[1] == "1", out  # one of each
    _, count, succeeded, failed, cancelled, lost, missing, repeated, lr_mismatches, *_ = row(out, "all")
    assert int(count) >= 3 and (lost, missing, repeated, lr_mismatches) == ("0", "0", "0", "0"), out
