"""Smith's Table 1 on data we have, through the service's comparisons: fixed LRs against triangular, triangular2,
exp_range and 1cycle (with the optimizer's momentum and with cyclical momentum), with the bounds of the service's
own range test, on digits and on a harder digits (fewer samples, noisy labels)."""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bench.common import table  # noqa: E402
from clr import datasets  # noqa: E402
from clr.plan import iterations_per_epoch  # noqa: E402
from clr_service.client import TERMINAL_STATES, Client  # noqa: E402
from clr_service.stack import EmbeddedStack, free_port  # noqa: E402

FIXED_GRID = (0.003, 0.01, 0.03, 0.1)
POLICIES = ("triangular", "triangular2", "exp_range")
ONE_CYCLES = {"one_cycle": False, "one_cycle_cyclical_momentum": True}  # arm: whether it cycles momentum
LABELS = {"one_cycle_cyclical_momentum": "one_cycle, cyclical momentum"}


def harder_digits(train_samples: int = 400, label_noise: float = 0.25) -> datasets.Dataset:
    """Digits with fewer training samples, a quarter of their labels replaced at random; the test set is clean."""
    data = datasets.digits()
    rng = np.random.default_rng(0)
    y = data.y_train[:train_samples].copy()
    noisy = rng.random(train_samples) < label_noise
    y[noisy] = rng.integers(0, 10, noisy.sum())
    return datasets.Dataset(data.x_train[:train_samples], y, data.x_test, data.y_test)


def upload(client: Client, data: datasets.Dataset, folder: Path) -> tuple[str, float]:
    """Upload the data with the test set appended as the validation part (`validation_split` takes the last
    samples), so that each epoch's validation accuracy is the test accuracy. Returns its id and that split."""
    path = folder / f"{len(data.x_train)}.npz"
    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.concatenate([data.x_train, data.x_test]),
             y_train=np.concatenate([data.y_train, data.y_test]))
    path.write_bytes(buffer.getvalue())
    total = len(data.x_train) + len(data.x_test)
    return client.upload_dataset(path)["id"], (len(data.x_test) - 0.5) / total


def ended(client: Client, job_id: str, poll_s: float = 2.0) -> dict:
    job = client.job(job_id)
    while job["state"] not in TERMINAL_STATES:
        time.sleep(poll_s)
        job = client.job(job_id)
    return job


def arms(args: argparse.Namespace, range_test_id: str, iterations: int) -> list[dict]:
    """The grid of fixed rates, the three cyclical modes and the two 1cycles, all but the fixed from the range test."""
    source = {"range_test_id": range_test_id, "accept_low_confidence": True}
    cyclical = [{"name": mode, "clr": {"step_size_epochs": args.step_epochs, "mode": mode}
                 | ({"gamma": 0.1 ** (1 / iterations)} if mode == "exp_range" else {}), **source}
                for mode in POLICIES]  # exp_range: the amplitude decays to a tenth by the end
    one_cycles = [{"name": name, "schedule": {"policy": "one_cycle", "cycle_momentum": cycled}, **source}
                  for name, cycled in ONE_CYCLES.items()]
    return [{"name": f"fixed_{lr:g}", "schedule": {"policy": "constant", "lr": lr}} for lr in args.grid] + (
        cyclical + one_cycles)


def run(name: str, data: datasets.Dataset, client: Client, folder: Path, args: argparse.Namespace,
        axes) -> list[list[object]]:
    dataset_id, validation_split = upload(client, data, folder)
    base = {"model": {"architecture": args.architecture}, "dataset": {"id": dataset_id},
            "optimizer": {"name": "sgd", "momentum": 0.9}, "batch_size": args.batch_size,
            "validation_split": validation_split}
    range_test = ended(client, client.submit_range_test(base | {"start_lr": 1e-4, "end_lr": 1.0,
                                                                "epochs": args.range_epochs, "seed": 0})["id"])
    suggested = range_test["result"]["suggested_bounds"]
    print(f"{name}: suggested bounds {suggested['min_lr']:.3g} .. {suggested['max_lr']:.3g}", flush=True)
    per_epoch = iterations_per_epoch(len(data.x_train) + len(data.x_test), args.batch_size, validation_split)
    spec = {"training": base | {"epochs": args.epochs}, "seeds": list(range(args.seeds)),
            "arms": arms(args, range_test["id"], args.epochs * per_epoch)}
    comparison = ended(client, client.submit_comparison(spec)["id"])
    assert comparison["state"] == "succeeded", comparison["error"]
    result, target = comparison["result"], comparison["result"]["target"]
    best_fixed = target["arm"]
    rows = []
    for arm in result["arms"]:
        if arm["name"].startswith("fixed") and arm["name"] != best_fixed:
            continue
        label = LABELS.get(arm["name"], arm["name"].replace("_", " ") if arm["name"].startswith("fixed") else
                           arm["name"])
        final = arm["final"]["val_accuracy"]
        reached = [] if arm["iterations_to_target"] == "never" else sorted(
            value for value in arm["iterations_to_target"]["per_run"] if value is not None)
        schedule = arm["schedules"][0]
        lr = (f"{schedule['lr']:g}" if arm["name"].startswith("fixed") else
              f"{schedule['base_lr']:.3g}-{schedule['max_lr']:.3g}" if "base_lr" in schedule
              else f"peak {schedule['max_lr']:.3g}")
        spread = f" ± {final['std']:.4f}" if final["std"] is not None else ""
        rows.append([name, label, lr, f"{final['mean']:.4f}{spread}",
                     f"{statistics.median(reached):,.0f}" if reached else "not reached",
                     f"{len(reached)}/{arm['runs']}"])
        runs = [client.job(job_id)["result"] for job_id in comparison["children"][arm["name"]].values()]
        curve = np.mean([run["history"]["val_accuracy"] for run in runs], axis=0)
        axes.plot(np.arange(1, len(curve) + 1) * (runs[0]["iterations"] // runs[0]["epochs"]), curve, label=label)
    axes.axhline(target["value"], color="0.5", linestyle=":", label="fixed-LR final")
    axes.set(title=name, xlabel="iteration", ylabel=f"test accuracy (mean of {args.seeds} seeds)")
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
    parser.add_argument("--data", choices=("both", "digits"), default="both", help="digits only: skip the noisy set")
    args = parser.parse_args()
    args.plot = args.plot or Path(f"docs/table1-{args.architecture}.png")
    figure = Figure(figsize=(12, 4.5))
    with tempfile.TemporaryDirectory() as directory, EmbeddedStack(
            port=free_port(), data_dir=Path(directory) / "data", worker_loglevel="WARNING") as stack:
        client = Client(stack.url, stack.api_key, timeout=120)
        rows = run("digits", datasets.digits(), client, Path(directory), args, figure.add_subplot(1, 2, 1))
        if args.data == "both":
            rows += run("digits, 400 samples, 25% noisy labels", harder_digits(), client, Path(directory), args,
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
