"""The real part of the bound-suggestion panel, through the worker's code on a real Redis: every suggestion is
usable and CLR training with it ends within 1 point of the best fixed LR in at least 2 of 3 seeds, never at chance.

The grid here is the best LR of the full grid in `bench.bounds_panel.CASES` (1, then 0.3), and the trainings run
the issue's shorter protocol (8 epochs, two cycles of 2 epochs) instead of the benchmark's 24 epochs (three cycles
of 4), so the suite stays short; the benchmark runs every case in full (docs/benchmarks.md).
"""

import dataclasses

import pytest

from bench.bounds_panel import CASES, best_fixed, run_case
from worker.settings import Settings
from worker.store import JobStore

pytestmark = pytest.mark.slow

SEEDS = range(3)
CHANCE = 0.2  # ten classes: 0.1 is chance
SHORT = {"training_epochs": 8, "step_epochs": 2}
MLP_SGD_FAST_SWEEP, *_, NOISY_SHORT, _ = (dataclasses.replace(case, **SHORT) for case in CASES)
TESTED = {  # case, and how far below the best fixed LR at least 2 of 3 seeds may end
    "MLP + SGD, 1e-5..10 (5.4 to 10 before)": (dataclasses.replace(MLP_SGD_FAST_SWEEP, grid=(1.0,)), 0.01),
}  # MLP + Adam, the noisy set with a 12-epoch test and the CNN run in the benchmark only (docs/benchmarks.md): the
# suite stays under 10 minutes.


@pytest.fixture(scope="module")
def lab(redis_url, tmp_path_factory):
    return JobStore.from_url(redis_url), Settings(redis_url=redis_url, data_dir=tmp_path_factory.mktemp("panel"))


@pytest.mark.parametrize(("case", "margin"), TESTED.values(), ids=TESTED.keys())
def test_suggested_bounds_train_within_a_point_of_the_best_fixed_lr(case, margin, lab):
    _, best = best_fixed(case, SEEDS, *lab)
    outcomes = [run_case(case, seed, *lab) for seed in SEEDS]
    for outcome in outcomes:
        bounds = outcome.suggestion
        assert bounds is not None, outcome.warning
        assert bounds["max_lr"] >= 3 * bounds["min_lr"] and bounds["max_lr"] < case.end_lr / 3, bounds
        assert bounds["confidence"] != "low", bounds["reasons"]
        assert outcome.clr_accuracy > CHANCE, bounds
    accuracies = [outcome.clr_accuracy for outcome in outcomes]
    assert sum(accuracy >= best - margin for accuracy in accuracies) >= 2, (accuracies, best)


def test_a_short_range_test_on_noisy_labels_gives_no_bounds_it_cannot_back(lab):
    """The 75-point test on 25 % wrong labels: before, bounds equal (refused by CyclicLR) or on the flat start
    (8 % accuracy); now no suggestion with what to change, or a low-confidence one that still trains."""
    for seed in SEEDS:
        outcome = run_case(NOISY_SHORT, seed, *lab)
        if outcome.suggestion is None:
            assert "run more iterations" in outcome.warning
        else:
            assert outcome.suggestion["confidence"] == "low" and outcome.suggestion["reasons"]
            assert outcome.suggestion["max_lr"] >= 3 * outcome.suggestion["min_lr"]
            assert outcome.clr_accuracy > CHANCE
