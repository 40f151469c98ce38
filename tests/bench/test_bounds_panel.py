"""The real part of the bound-suggestion panel that fits the suite, through the worker's code on a real Redis, at the
demo's protocol (8 epochs, one cycle): the fast sweep on the MLP and the 75-point range test on noisy labels, each
with `verify`, against the best fixed LR of the benchmark's grid at that protocol. The benchmark runs every case at
both lengths (docs/benchmarks.md); `tests/clr_service/test_cli.py` runs the demo itself through the service.
"""

import dataclasses

import pytest

from bench.bounds_panel import CASES, SHORT, Lab, best_fixed, run_case
from worker.settings import Settings
from worker.store import JobStore

pytestmark = pytest.mark.slow

SEEDS = range(2)
_, MLP_SGD, _, _, NOISY, _ = CASES
TESTED = {  # case with the best LR of its grid at 8 epochs, and how far below it every seed may end
    "MLP + SGD, 1e-5..10": (dataclasses.replace(MLP_SGD, grid=(0.3,)), 0.01),
    "400 noisy labels, a 75-point range test (no suggestion before)": (dataclasses.replace(NOISY, grid=(0.01,)),
                                                                        0.03),
}


@pytest.fixture(scope="module")
def lab_parts(redis_url, tmp_path_factory):
    return JobStore.from_url(redis_url), Settings(redis_url=redis_url, data_dir=tmp_path_factory.mktemp("panel"))


@pytest.mark.parametrize(("case", "margin"), TESTED.values(), ids=TESTED.keys())
def test_verified_bounds_train_close_to_the_best_fixed_lr(case, margin, lab_parts):
    lab = Lab(case, *lab_parts)
    _, best = best_fixed(lab, SHORT, SEEDS)
    for seed in SEEDS:
        outcome = run_case(lab, seed, (SHORT,), {"candidates": 3, "epochs": 2}, rules=("verified",))
        verified, unverified = outcome.bounds["verified"], outcome.bounds["unverified"]
        assert verified is not None and unverified is not None, outcome.warning
        assert verified[1] >= 3 * verified[0] * 0.999 and verified[1] < case.end_lr / 3
        accuracy = outcome.accuracy["verified", SHORT.name]
        assert accuracy >= best - margin, (seed, verified, accuracy, best)
