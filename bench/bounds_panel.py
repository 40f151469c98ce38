"""The bound-suggestion panel: synthetic range tests with known bounds, and real range tests (with `verify`) through
the worker's code followed by CLR training with the curve's own suggestion, the verified one and fastai's valley,
at two lengths, against the best fixed LR of a grid at the same length.

fastai's `valley` and torch-lr-finder's steepest-gradient suggestions are re-implemented here from their documented
algorithms, as reference points on the same curves (they suggest one LR, not bounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from bench.common import claimed_job, redis_store, table  # noqa: E402
from clr import datasets  # noqa: E402
from clr.analysis import smooth  # noqa: E402
from clr.bounds import suggest_bounds, valley_index  # noqa: E402
from clr.schedules import range_sweep  # noqa: E402

FALL_START_LR = 1e-4
SYNTHETIC_DECADES = (1, 2, 3)
TRUE_BOUNDS = (FALL_START_LR, 1e-2)  # of the default two-decade fall
SYNTHETIC_LENGTHS = (100, 300, 1000, 5000)
SYNTHETIC_NOISE = (0.01, 0.03, 0.1)
TAILS = {"none": None, "NaN": np.nan, "inf": np.inf}


def synthetic_range_test(num_iterations: int = 1000, noise: float = 0.05, seed: int = 0, tail: float | None = None,
                         sweep: str = "exponential", decades: float = 2) -> tuple[np.ndarray, np.ndarray]:
    """A plateau to 1e-4, a fall linear in log LR over `decades` (to 1e-2 by default), a flat decade, then a blow-up
    (from half a decade into it on the `tail` value if given), with multiplicative Gaussian noise of `noise`."""
    lrs = range_sweep(1e-6, 10.0, num_iterations, sweep)
    position = np.log10(lrs)
    end = np.log10(FALL_START_LR) + decades
    fall = np.clip((position - np.log10(FALL_START_LR)) / decades, 0, 1)
    blow_up = np.where(position > end + 1, 10 ** (3 * (position - end - 1)) - 1, 0.0)
    losses = (2.3 - 2.0 * fall + blow_up) * (1 + noise * np.random.default_rng(seed).standard_normal(num_iterations))
    if tail is not None:
        losses[np.searchsorted(lrs, 10 ** (end + 1.5)):] = tail
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
    """One row per fall, length and noise: how often both bounds fall within 2x of the truth, over tails and
    seeds."""
    rows = []
    for decades in SYNTHETIC_DECADES:
        truth = (FALL_START_LR, FALL_START_LR * 10**decades)
        for length in SYNTHETIC_LENGTHS:
            for noise in SYNTHETIC_NOISE:
                hits, worst = 0, 1.0
                for tail in TAILS.values():
                    for seed in range(seeds):
                        bounds = suggest_bounds(*synthetic_range_test(length, noise, seed, tail, decades=decades))
                        hits += within(bounds.min_lr, truth[0]) and within(bounds.max_lr, truth[1])
                        ratios = (bounds.min_lr / truth[0], bounds.max_lr / truth[1])
                        worst = max(worst, *(max(ratio, 1 / ratio) for ratio in ratios))
                rows.append([f"1e-4 to {truth[1]:g}", length, f"{noise:.0%}", f"{hits}/{len(TAILS) * seeds}",
                             f"{worst:.2f}x"])
    return rows


@dataclass(frozen=True)
class Protocol:
    """How a suggestion is judged: CLR triangular, `step_epochs` per half cycle, `cycles` whole cycles."""

    name: str
    cycles: int
    step_epochs: int = 4

    @property
    def epochs(self) -> int:
        return 2 * self.cycles * self.step_epochs


SHORT, LONG = Protocol("8 epochs (the demo's: one cycle)", 1), Protocol("24 epochs (three cycles)", 3)
PROTOCOLS = (SHORT, LONG)


@dataclass(frozen=True)
class Case:
    """One real range test (with `verify`) and the grid of fixed LRs that judges its suggestions."""

    name: str
    architecture: str
    optimizer: dict
    batch_size: int
    start_lr: float
    end_lr: float
    range_epochs: int
    grid: tuple[float, ...]
    noisy_labels: bool = False


CASES = (
    Case("the demo: CNN + SGD momentum, 1e-4..1", "seed_cnn", {"name": "sgd", "momentum": 0.9}, 32, 1e-4, 1.0, 8,
         (0.01, 0.03, 0.1)),
    Case("MLP + SGD", "mlp", {"name": "sgd"}, 32, 1e-5, 10.0, 3, (0.03, 0.1, 0.3, 1.0)),
    Case("CNN + SGD momentum", "seed_cnn", {"name": "sgd", "momentum": 0.9}, 32, 1e-5, 10.0, 3, (0.01, 0.03, 0.1)),
    Case("MLP + Adam", "mlp", {"name": "adam"}, 32, 1e-5, 10.0, 3, (1e-3, 3e-3, 1e-2)),
    Case("400 noisy labels, CNN + SGD momentum, 75 points", "seed_cnn", {"name": "sgd", "momentum": 0.9}, 16, 1e-5,
         10.0, 3, (0.003, 0.01, 0.03), noisy_labels=True),
    Case("CNN + Adam, batch 64", "seed_cnn", {"name": "adam"}, 64, 1e-5, 1.0, 8, (1e-3, 3e-3, 1e-2)),
)
RULES = ("unverified", "verified", "fastai valley")


def case_data(case: Case) -> datasets.Dataset:
    from bench.table1 import harder_digits

    return harder_digits() if case.noisy_labels else datasets.digits()


class Lab:
    """Range tests and trainings of one case through `worker.engine` on a real Redis: every training holds out 10 % of
    the training data for validation (what `verify` judges on) and reports its accuracy on the untouched test set."""

    def __init__(self, case: Case, store, settings) -> None:
        self.case, self.store, self.settings = case, store, settings
        data = case_data(case)
        dataset_id = uuid.uuid4().hex
        settings.datasets_dir.mkdir(parents=True, exist_ok=True)
        np.savez(settings.datasets_dir / f"{dataset_id}.npz", x_train=data.x_train, y_train=data.y_train,
                 x_test=data.x_test, y_test=data.y_test)
        self.base = {"model": {"architecture": case.architecture}, "dataset": {"id": dataset_id},
                     "optimizer": case.optimizer, "batch_size": case.batch_size, "validation_split": 0.1}

    def _run(self, kind: str, spec, run):
        from worker.reporting import JobReporter

        with JobReporter(self.store, *claimed_job(self.store, kind, spec.model_dump(mode="json")),
                         self.settings) as reporter:
            return run(spec, reporter), reporter.job_id

    def range_test(self, seed: int, verify: dict | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
        """The range test's result (`suggested_bounds` or a `warning`; with `verify`, also `unverified_bounds` and
        `verification`) and its curve."""
        from clr.config import RangeTestSpec
        from worker.engine.range_test import run_range_test

        case = self.case
        spec = RangeTestSpec.model_validate(self.base | {"start_lr": case.start_lr, "end_lr": case.end_lr,
                                                         "epochs": case.range_epochs, "seed": seed, "verify": verify})
        result, job_id = self._run("range_test", spec, lambda spec, reporter: run_range_test(
            spec, reporter, self.settings))
        curve = self.store.curve(job_id)
        return result, curve.lrs.astype(np.float64), curve.losses.astype(np.float64)

    def train(self, bounds: tuple[float, float], protocol: Protocol, seed: int) -> float:
        """Test accuracy after CLR training with `bounds` (equal bounds: a fixed LR) at `protocol`."""
        from clr.config import TrainingSpec
        from worker.engine.training import run_training

        base_lr, max_lr = bounds
        spec = TrainingSpec.model_validate(self.base | {
            "cycles": protocol.cycles, "seed": seed,
            "clr": {"base_lr": base_lr, "max_lr": max(max_lr, base_lr * (1 + 1e-9)),
                    "step_size_epochs": protocol.step_epochs}})
        result, _ = self._run("training", spec, lambda spec, reporter: run_training(
            spec, reporter, self.settings))
        return result["test_accuracy"]


@dataclass
class Outcome:
    """What one case gave for one seed: each rule's bounds (None: no suggestion) and test accuracy per protocol."""

    bounds: dict[str, tuple[float, float] | None]
    accuracy: dict[tuple[str, str], float | None]
    steepest_lr: float
    warning: str | None


def run_case(lab: Lab, seed: int, protocols: tuple[Protocol, ...] = PROTOCOLS, verify: dict | None = None,
             rules: tuple[str, ...] = RULES) -> Outcome:
    """One range test with `verify` (its curve's own suggestion is the unverified one), fastai's valley on the same
    curve, and CLR training with each of `rules` at every protocol."""
    result, lrs, losses = lab.range_test(seed, verify or {})
    valley = fastai_valley_lr(lrs, losses)
    pairs = {"unverified": result.get("unverified_bounds"), "verified": result["suggested_bounds"]}
    bounds = {rule: (pair["min_lr"], pair["max_lr"]) if pair else None for rule, pair in pairs.items()}
    bounds["fastai valley"] = (valley / 4, valley)
    accuracy = {(rule, protocol.name): lab.train(bounds[rule], protocol, seed) if bounds[rule] else None
                for rule in rules for protocol in protocols}
    return Outcome(bounds, accuracy, steepest_gradient_lr(lrs, losses), result.get("warning"))


def best_fixed(lab: Lab, protocol: Protocol, seeds: range) -> tuple[float, float]:
    """The grid's best fixed LR at `protocol` by mean test accuracy over `seeds`, and that mean."""
    means = {lr: statistics.mean(lab.train((lr, lr), protocol, seed) for seed in seeds) for lr in lab.case.grid}
    best = max(means, key=means.get)
    return best, means[best]


def points_below(accuracy: float | None, best: float) -> str:
    return "-" if accuracy is None else f"{accuracy:.3f} ({100 * (accuracy - best):+.1f})"


def real_panel(seeds: range, cases: tuple[Case, ...] = CASES
               ) -> tuple[list[list[object]], list[list[object]], dict[str, dict[str, tuple[float, float]]]]:
    """One row per case, seed and protocol, one summary row per rule and protocol, and each case's best fixed LR
    and its accuracy per protocol."""
    rows, gaps, references = [], {(rule, protocol.name): [] for rule in RULES for protocol in PROTOCOLS}, {}
    with tempfile.TemporaryDirectory() as directory, redis_store() as (store, _):
        from worker.settings import Settings

        settings = Settings(data_dir=Path(directory))
        for case in cases:
            lab = Lab(case, store, settings)
            reference = references[case.name] = {protocol.name: best_fixed(lab, protocol, seeds)
                                                 for protocol in PROTOCOLS}
            for seed in seeds:
                outcome = run_case(lab, seed)
                for protocol in PROTOCOLS:
                    best_lr, best = reference[protocol.name]
                    cells = []
                    for rule in RULES:
                        pair, accuracy = outcome.bounds[rule], outcome.accuracy[rule, protocol.name]
                        gaps[rule, protocol.name].append(None if accuracy is None else 100 * (accuracy - best))
                        cells.append("none" if pair is None else f"{pair[0]:.3g}-{pair[1]:.3g}: "
                                     f"{points_below(accuracy, best)}")
                    rows.append([case.name, seed, protocol.name.split(" (")[0], f"{best_lr:g}: {best:.3f}", *cells,
                                 f"{outcome.steepest_lr:.3g}"])
                    print(" | ".join(str(cell) for cell in rows[-1]), flush=True)
    summary = []
    for (rule, protocol), values in gaps.items():
        measured = [value for value in values if value is not None]
        summary.append([rule, protocol.split(" (")[0], f"{len(measured)}/{len(values)}",
                        f"{statistics.mean(measured):+.2f}" if measured else "-",
                        f"{min(measured):+.1f}" if measured else "-",
                        f"{sum(value >= -1 for value in measured)}/{len(values)}",
                        f"{sum(value >= -2 for value in measured)}/{len(values)}"])
    return rows, summary, references


def demo_through_the_service(seeds: range) -> list[float]:
    """`clr-service demo --seed S`'s test accuracy for each seed: its workflow over HTTP on an embedded stack."""
    from rich.console import Console

    from clr_service import workflow
    from clr_service.stack import EmbeddedStack, free_port

    with tempfile.TemporaryDirectory() as directory, EmbeddedStack(
            port=free_port(), data_dir=Path(directory), worker_loglevel="WARNING") as stack:
        return [workflow.run(stack.url, stack.api_key, Path(directory) / "out", Console(quiet=True), seed)
                ["result"]["test_accuracy"] for seed in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--synthetic-only", action="store_true")
    parser.add_argument("--cases", nargs="*", help="only the cases whose name contains one of these")
    args = parser.parse_args()
    print("Synthetic range tests, falls of one to three decades from 1e-4; 3 tails (none, NaN, inf) x 5 seeds per "
          "row\n")
    print(table(["fall", "points", "noise", "both bounds within 2x", "worst factor"], synthetic_panel()))
    if args.synthetic_only:
        return
    cases = tuple(case for case in CASES if not args.cases or any(name in case.name for name in args.cases))
    print("\nReal range tests (with verify) through worker.engine on digits; CLR triangular, step_size 4 epochs, "
          "judged at 8 and 24 epochs; test accuracy (points against the best fixed LR of the grid at the same "
          "protocol, mean of seeds)\n")
    rows, summary, references = real_panel(range(args.seeds), cases)
    print(table(["case", "seed", "protocol", "best fixed LR: accuracy", *RULES, "steepest gradient"], rows))
    print()
    print(table(["rule", "protocol", "runs with bounds", "mean points vs best fixed", "worst",
                 "within 1 point", "within 2 points"], summary))
    if CASES[0].name in references:
        best_lr, best = references[CASES[0].name][SHORT.name]
        print(f"\n`clr-service demo --seed S` through the service (embedded stack, HTTP), against the best fixed LR "
              f"at its protocol ({best_lr:g}: {best:.3f})\n")
        demo = demo_through_the_service(range(args.seeds))
        print(table(["seed", "demo's test accuracy", "points vs best fixed"],
                    [[seed, f"{accuracy:.4f}", f"{100 * (accuracy - best):+.1f}"]
                     for seed, accuracy in enumerate(demo)]))


if __name__ == "__main__":
    main()
