"""The bound-suggestion panel: synthetic range tests with known bounds, and real range tests through the worker's
code followed by CLR training with the suggested bounds against the best fixed LR of a grid.

fastai's `valley` and torch-lr-finder's steepest-gradient suggestions are re-implemented here from their documented
algorithms, as reference points on the same curves (they suggest one LR, not bounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from bench.common import redis_store, table  # noqa: E402
from clr import datasets  # noqa: E402
from clr.analysis import smooth  # noqa: E402
from clr.bounds import suggest_bounds, valley_index  # noqa: E402
from clr.schedules import range_sweep  # noqa: E402

TRUE_BOUNDS = (1e-4, 1e-2)
SYNTHETIC_LENGTHS = (100, 300, 1000, 5000)
SYNTHETIC_NOISE = (0.01, 0.03, 0.1)
TAILS = {"none": None, "NaN": np.nan, "inf": np.inf}


def synthetic_range_test(num_iterations: int = 1000, noise: float = 0.05, seed: int = 0, tail: float | None = None,
                         sweep: str = "exponential") -> tuple[np.ndarray, np.ndarray]:
    """A plateau to 1e-4, a fall linear in log LR to 1e-2, a flat stretch, a blow-up past 1e-1 (from 0.3 on the
    `tail` value if given), with multiplicative Gaussian noise of `noise`."""
    lrs = range_sweep(1e-6, 10.0, num_iterations, sweep)
    position = np.log10(lrs)
    fall = np.clip((position + 4) / 2, 0, 1)
    blow_up = np.where(position > -1, 10 ** (3 * (position + 1)) - 1, 0.0)
    losses = (2.3 - 2.0 * fall + blow_up) * (1 + noise * np.random.default_rng(seed).standard_normal(num_iterations))
    if tail is not None:
        losses[np.searchsorted(lrs, 0.3):] = tail
    return lrs, losses


def within(value: float, truth: float, factor: float = 2.0) -> bool:
    return truth / factor <= value <= truth * factor


def fastai_valley_lr(lrs: np.ndarray, losses: np.ndarray, beta: float = 0.98) -> float:
    """fastai's `valley` on fastai's curve: the debiased EMA, the first 10 % and the last 5 points dropped."""
    cut = slice(len(lrs) // 10, -5)
    return float(lrs[cut][valley_index(smooth(losses, beta)[cut])])


def steepest_gradient_lr(lrs: np.ndarray, losses: np.ndarray, smooth_f: float = 0.05) -> float:
    """torch-lr-finder's suggestion: the steepest gradient (per point) of its EMA-smoothed loss, the first 10 and
    last 5 points dropped."""
    smoothed = [losses[0]]
    for loss in losses[1:]:
        smoothed.append(smooth_f * loss + (1 - smooth_f) * smoothed[-1])
    cut = slice(10, -5)
    return float(lrs[cut][np.gradient(np.asarray(smoothed)[cut]).argmin()])


def synthetic_panel(seeds: int = 5) -> list[list[object]]:
    """One row per length and noise: how often both bounds fall within 2x of the truth, over tails and seeds."""
    rows = []
    for length in SYNTHETIC_LENGTHS:
        for noise in SYNTHETIC_NOISE:
            hits, worst = 0, 1.0
            for tail in TAILS.values():
                for seed in range(seeds):
                    lrs, losses = synthetic_range_test(length, noise, seed, tail)
                    bounds = suggest_bounds(lrs, losses)
                    hits += within(bounds.min_lr, TRUE_BOUNDS[0]) and within(bounds.max_lr, TRUE_BOUNDS[1])
                    ratios = (bounds.min_lr / TRUE_BOUNDS[0], bounds.max_lr / TRUE_BOUNDS[1])
                    worst = max(worst, *(max(ratio, 1 / ratio) for ratio in ratios))
            rows.append([length, f"{noise:.0%}", f"{hits}/{len(TAILS) * seeds}", f"{worst:.2f}x"])
    return rows


@dataclass(frozen=True)
class Case:
    """One real range test and the trainings that judge its suggestion."""

    name: str
    architecture: str
    optimizer: dict
    batch_size: int
    start_lr: float
    end_lr: float
    range_epochs: int
    grid: tuple[float, ...]
    noisy_labels: bool = False
    training_epochs: int = 24  # three whole triangular cycles, ending at base_lr
    step_epochs: int = 4


SGD_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
CASES = (
    Case("MLP + SGD", "mlp", {"name": "sgd"}, 32, 1e-5, 10.0, 3, SGD_GRID),
    Case("MLP + SGD", "mlp", {"name": "sgd"}, 32, 1e-4, 1.0, 3, SGD_GRID),
    Case("CNN + SGD momentum", "seed_cnn", {"name": "sgd", "momentum": 0.9}, 32, 1e-5, 10.0, 3, SGD_GRID[:4]),
    Case("CNN + SGD momentum", "seed_cnn", {"name": "sgd", "momentum": 0.9}, 32, 1e-4, 1.0, 3, SGD_GRID[:4]),
    Case("MLP + Adam", "mlp", {"name": "adam"}, 32, 1e-5, 10.0, 3, (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)),
    Case("noisy labels, CNN + SGD momentum", "seed_cnn", {"name": "sgd", "momentum": 0.9}, 16, 1e-5, 10.0, 3,
         SGD_GRID[:4], noisy_labels=True),
    Case("noisy labels, CNN + SGD momentum", "seed_cnn", {"name": "sgd", "momentum": 0.9}, 16, 1e-5, 10.0, 12,
         SGD_GRID[:4], noisy_labels=True),
)


def case_data(case: Case) -> datasets.Dataset:
    from bench.table1 import harder_digits

    return harder_digits() if case.noisy_labels else datasets.digits()


@dataclass
class CaseResult:
    """What one case gave for one seed."""

    suggestion: dict | None
    warning: str | None
    valley_lr: float
    steepest_lr: float
    clr_accuracy: float | None


def run_case(case: Case, seed: int, store, settings) -> CaseResult:
    """The range test through `worker.jobs`, then (if it suggested bounds) CLR training with them."""
    from bench.table1 import Experiment

    experiment = Experiment(case_data(case), store, settings, case.architecture, case.optimizer, case.batch_size,
                            case.training_epochs, case.step_epochs)
    result = experiment.range_test(case.start_lr, case.end_lr, case.range_epochs, seed)
    lrs, losses = result["lrs"].astype(np.float64), result["losses"].astype(np.float64)
    bounds = result["suggested_bounds"]
    accuracy = None
    if bounds is not None:
        clr = {"base_lr": bounds["min_lr"], "max_lr": bounds["max_lr"],
               "step_size": case.step_epochs * experiment.per_epoch}
        accuracy = experiment.train(clr, seed)[-1]
    return CaseResult(bounds, result.get("warning"), fastai_valley_lr(lrs, losses), steepest_gradient_lr(lrs, losses),
                      accuracy)


def best_fixed(case: Case, seeds: range, store, settings) -> tuple[float, float]:
    """The grid's best fixed LR by mean final test accuracy over `seeds`, and that mean."""
    from bench.table1 import Experiment

    experiment = Experiment(case_data(case), store, settings, case.architecture, case.optimizer, case.batch_size,
                            case.training_epochs, case.step_epochs)
    means = {lr: statistics.mean(experiment.fixed(lr, seed)[-1] for seed in seeds) for lr in case.grid}
    best = max(means, key=means.get)
    return best, means[best]


def real_panel(seeds: range, cases: tuple[Case, ...] = CASES) -> list[list[object]]:
    """One row per case and seed."""
    rows, reference = [], {}
    with tempfile.TemporaryDirectory() as directory, redis_store() as (store, _):
        from worker.settings import Settings

        settings = Settings(data_dir=Path(directory))
        for case in cases:
            key = (case.name, case.architecture, case.batch_size, case.training_epochs)
            if key not in reference:
                reference[key] = best_fixed(case, seeds, store, settings)
            best_lr, best_accuracy = reference[key]
            for seed in seeds:
                outcome = run_case(case, seed, store, settings)
                bounds = outcome.suggestion
                suggested = (f"{bounds['min_lr']:.3g} to {bounds['max_lr']:.3g} ({bounds['confidence']})"
                             if bounds else f"none: {outcome.warning}")
                accuracy = "-" if outcome.clr_accuracy is None else (
                    f"{outcome.clr_accuracy:.3f} ({100 * (outcome.clr_accuracy - best_accuracy):+.1f})")
                rows.append([case.name, f"{case.start_lr:g}..{case.end_lr:g}, {case.range_epochs} ep", seed,
                             suggested, accuracy, f"{best_lr:g}: {best_accuracy:.3f}",
                             f"{outcome.valley_lr:.3g}", f"{outcome.steepest_lr:.3g}"])
                print(" | ".join(str(cell) for cell in rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--synthetic-only", action="store_true")
    args = parser.parse_args()
    print("Synthetic range tests, true bounds 1e-4 and 1e-2; 3 tails (none, NaN, inf) x 5 seeds per row\n")
    print(table(["points", "noise", "both bounds within 2x", "worst factor"], synthetic_panel()))
    if args.synthetic_only:
        return
    print(f"\nReal range tests through worker.jobs on digits; CLR triangular, {CASES[0].training_epochs} epochs, "
          f"step_size {CASES[0].step_epochs} epochs; test accuracy (points against the best fixed LR of the grid, "
          "mean of seeds)\n")
    rows = real_panel(range(args.seeds))
    print(table(["case", "sweep", "seed", "suggested bounds", "CLR test accuracy", "best fixed LR: accuracy",
                 "fastai valley", "steepest gradient"], rows))


if __name__ == "__main__":
    main()
