"""Smith's Table 1 on data we have: fixed LR against triangular, triangular2, exp_range and 1cycle (with the
optimizer's momentum and with cyclical momentum), through the worker's own range-test and training code, on digits
and on a harder digits (fewer samples, noisy labels)."""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bench.common import claimed_job, redis_store, table  # noqa: E402
from clr import datasets  # noqa: E402
from clr.config import RangeTestSpec, TrainingSpec  # noqa: E402
from worker.engine.range_test import run_range_test  # noqa: E402
from worker.engine.training import run_training  # noqa: E402
from worker.reporting import JobReporter  # noqa: E402
from worker.settings import Settings  # noqa: E402

FIXED_GRID = (0.003, 0.01, 0.03, 0.1)
POLICIES = ("triangular", "triangular2", "exp_range")


def harder_digits(train_samples: int = 400, label_noise: float = 0.25) -> datasets.Dataset:
    """Digits with fewer training samples, a quarter of their labels replaced at random; the test set is clean."""
    data = datasets.digits()
    rng = np.random.default_rng(0)
    y = data.y_train[:train_samples].copy()
    noisy = rng.random(train_samples) < label_noise
    y[noisy] = rng.integers(0, 10, noisy.sum())
    return datasets.Dataset(data.x_train[:train_samples], y, data.x_test, data.y_test)


def upload(data: datasets.Dataset, settings: Settings) -> tuple[str, float]:
    """Write the data where the worker reads uploads, the test set appended as the validation part, so that the
    per-epoch validation accuracy is the test accuracy. Returns the id and the validation split."""
    dataset_id = uuid.uuid4().hex
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.concatenate([data.x_train, data.x_test]),
             y_train=np.concatenate([data.y_train, data.y_test]))
    (settings.datasets_dir / f"{dataset_id}.npz").write_bytes(buffer.getvalue())
    total = len(data.x_train) + len(data.x_test)
    return dataset_id, (len(data.x_test) - 0.5) / total


class Experiment:
    """Range test and trainings on one dataset through `worker.engine`, reporting to a real Redis."""

    def __init__(self, data: datasets.Dataset, store, settings: Settings, architecture: str, optimizer: dict,
                 batch_size: int, epochs: int, step_epochs: int) -> None:
        self.store, self.settings, self.epochs, self.step_epochs = store, settings, epochs, step_epochs
        self.dataset_id, self.validation_split = upload(data, settings)
        self.per_epoch = math.ceil(len(data.x_train) / batch_size)
        self.base = {"model": {"architecture": architecture}, "dataset": {"id": self.dataset_id},
                     "optimizer": optimizer, "batch_size": batch_size, "validation_split": self.validation_split}

    def _reporter(self) -> JobReporter:
        return JobReporter(self.store, *claimed_job(self.store, "benchmark"), self.settings)

    def range_test(self, start_lr: float = 1e-4, end_lr: float = 1.0, epochs: int = 8, seed: int = 0) -> dict:
        """The range test's result: `suggested_bounds` (or a `warning`), and its curve under `lrs`/`losses`."""
        spec = RangeTestSpec.model_validate(self.base | {"start_lr": start_lr, "end_lr": end_lr, "epochs": epochs,
                                                         "seed": seed})
        with self._reporter() as reporter:
            result = run_range_test(spec, reporter, self.settings)
        curve = self.store.curve(reporter.job_id)
        return result | {"lrs": curve.lrs, "losses": curve.losses}

    def train(self, clr: dict, seed: int) -> list[float]:
        """Test accuracy after each epoch of a CLR training."""
        return self._fit({"clr": clr}, seed)

    def one_cycle(self, max_lr: float, seed: int, cycle_momentum: bool) -> list[float]:
        """Test accuracy after each epoch of a 1cycle training peaking at `max_lr`, with the optimizer's momentum or
        with momentum cycled from 0.95 to 0.85 and back."""
        return self._fit({"schedule": {"policy": "one_cycle", "max_lr": max_lr, "cycle_momentum": cycle_momentum}},
                         seed)

    def _fit(self, schedule: dict, seed: int) -> list[float]:
        spec = TrainingSpec.model_validate(self.base | {"epochs": self.epochs, "seed": seed} | schedule)
        with self._reporter() as reporter:
            result = run_training(spec, reporter, self.settings)
        return result["history"]["val_accuracy"]

    def fixed(self, lr: float, seed: int) -> list[float]:
        """A fixed LR through the same path: a cycle whose bounds differ by one part in 10^9."""
        return self.train({"base_lr": lr, "max_lr": lr * (1 + 1e-9), "step_size": 1}, seed)

    def cyclical(self, policy: str, bounds: tuple[float, float], seed: int) -> list[float]:
        total = self.epochs * self.per_epoch
        clr = {"step_size": self.step_epochs * self.per_epoch, "mode": policy}
        if policy == "exp_range":
            clr["gamma"] = 0.1 ** (1 / total)  # the amplitude decays to a tenth by the end
        return self.train(clr | {"base_lr": bounds[0], "max_lr": bounds[1]}, seed)


def iterations_to_reach(curve: list[float], target: float, per_epoch: int) -> int | None:
    reached = next((epoch for epoch, accuracy in enumerate(curve, 1) if accuracy >= target), None)
    return None if reached is None else reached * per_epoch


def run(name: str, data: datasets.Dataset, store, settings: Settings, args: argparse.Namespace,
        axes) -> list[list[object]]:
    epochs, seeds = args.epochs, range(args.seeds)
    experiment = Experiment(data, store, settings, args.architecture, {"name": "sgd", "momentum": 0.9},
                            args.batch_size, epochs, args.step_epochs)
    suggested = experiment.range_test(epochs=args.range_epochs)["suggested_bounds"]
    bounds = (suggested["min_lr"], suggested["max_lr"])
    print(f"{name}: suggested bounds {bounds[0]:.3g} .. {bounds[1]:.3g}", flush=True)
    fixed = {lr: [experiment.fixed(lr, seed) for seed in seeds] for lr in args.grid}
    best_lr = max(fixed, key=lambda lr: statistics.mean(curve[-1] for curve in fixed[lr]))
    curves = {f"fixed {best_lr:g}": fixed[best_lr]}
    curves |= {policy: [experiment.cyclical(policy, bounds, seed) for seed in seeds] for policy in POLICIES}
    curves |= {name: [experiment.one_cycle(bounds[1], seed, cycled) for seed in seeds]
               for name, cycled in (("one_cycle", False), ("one_cycle, cyclical momentum", True))}
    target = statistics.mean(curve[-1] for curve in fixed[best_lr])
    rows = []
    for policy, runs in curves.items():
        finals = [curve[-1] for curve in runs]
        reach = [iterations_to_reach(curve, target, experiment.per_epoch) for curve in runs]
        reached = sorted(value for value in reach if value is not None)
        lr = f"{best_lr:g}" if policy.startswith("fixed") else f"{bounds[0]:.3g}-{bounds[1]:.3g}" if (
            policy in POLICIES) else f"peak {bounds[1]:.3g}"
        spread = f" ± {statistics.stdev(finals):.4f}" if len(finals) > 1 else ""
        rows.append([name, policy, lr, f"{statistics.mean(finals):.4f}{spread}",
                     f"{statistics.median(reached):,.0f}" if reached else "not reached",
                     f"{len(reached)}/{len(seeds)}"])
        iterations = np.arange(1, epochs + 1) * experiment.per_epoch
        axes.plot(iterations, np.mean(runs, axis=0), label=policy)
    axes.axhline(target, color="0.5", linestyle=":", label="fixed-LR final")
    axes.set(title=name, xlabel="iteration", ylabel=f"test accuracy (mean of {len(seeds)} seeds)")
    axes.legend()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--step-epochs", type=int, default=2, help="step_size in epochs (half a cycle)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--grid", type=float, nargs="+", default=FIXED_GRID, help="fixed LRs to compare with")
    parser.add_argument("--range-epochs", type=int, default=8, help="length of the range test")
    parser.add_argument("--architecture", choices=("mlp", "seed_cnn"), default="mlp")
    parser.add_argument("--plot", type=Path, help="default: docs/table1-ARCHITECTURE.png")
    args = parser.parse_args()
    args.plot = args.plot or Path(f"docs/table1-{args.architecture}.png")
    figure = Figure(figsize=(12, 4.5))
    with tempfile.TemporaryDirectory() as directory, redis_store() as (store, _):
        settings = Settings(data_dir=Path(directory))
        rows = run("digits", datasets.digits(), store, settings, args, figure.add_subplot(1, 2, 1))
        rows += run("digits, 400 samples, 25% noisy labels", harder_digits(), store, settings, args,
                    figure.add_subplot(1, 2, 2))
    print()
    print(f"{args.architecture}, SGD momentum 0.9, batch {args.batch_size}, {args.epochs} epochs, "
          f"step_size {args.step_epochs} epochs")
    print(table(["data", "policy", "LR", f"final test accuracy ({args.seeds} seeds)",
                 "iterations to reach fixed-LR final (median)", "runs reaching it"], rows))
    FigureCanvasAgg(figure)
    figure.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=100)
    print(f"\nPlot: {args.plot}")


if __name__ == "__main__":
    main()
