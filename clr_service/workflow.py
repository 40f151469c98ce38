"""The seed article's workflow over HTTP: range test, suggested bounds verified by training, CLR training with them,
figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from api.examples import RANGE_TEST_EXAMPLE
from clr.schedules import cyclical_lr
from clr_service.client import Client

RANGE_TEST = RANGE_TEST_EXAMPLE | {"batch_size": 32, "epochs": 8, "verify": True}


def training_from(range_test: dict[str, Any]) -> dict[str, Any]:
    """A CLR training of the range test's model on its bounds: one whole cycle, `step_size` = 4 of the training's
    own epochs (its validation split included), so it ends at `base_lr`."""
    return {
        **{key: range_test["spec"][key] for key in ("model", "dataset", "optimizer", "batch_size", "seed")},
        "cycles": 1,
        "validation_split": 0.1,
        "range_test_id": range_test["id"],
        "clr": {"step_size_epochs": 4, "mode": "triangular"},
    }


def wait_for(client: Client, job: dict[str, Any], console: Console) -> dict[str, Any]:
    """Follow the job's event stream until it ends; raise if it did not succeed."""
    job = client.wait(job["id"])
    if job["state"] != "succeeded":
        raise RuntimeError(f"Job {job['id']} ended {job['state']}: {job['error']}")
    progress = job["progress"]
    console.print(f"  {job['kind']} {job['id']} succeeded after {progress['iteration']} iterations")
    return job


def cycle_report(client: Client, training: dict[str, Any]) -> str:
    """Where the training's schedule stands at its end: whole cycles of its own epochs end back at base_lr."""
    clr, progress = training["result"]["clr"], training["progress"]
    per_epoch, iterations = progress["total_iterations"] // progress["epochs"], training["result"]["iterations"]
    last = client.curves(training["id"], since=iterations - 1)
    at_end = cyclical_lr(**clr)(iterations)
    return (f"step_size={clr['step_size']} iterations = {clr['step_size'] / per_epoch:g} epochs of {per_epoch}; "
            f"{iterations} iterations = {iterations / (2 * clr['step_size']):g} whole cycles; the last batch used "
            f"lr={last['lr'][-1]:.4g} and the schedule ends at lr={at_end:.4g}"
            + (" = base_lr" if at_end == clr["base_lr"] else f", not at base_lr={clr['base_lr']:.4g}"))


def verification_table(range_test: dict[str, Any]) -> Table:
    """The bound pairs the range test trained to verify its suggestion, the chosen one marked."""
    table = Table("candidate", "min_lr", "max_lr", "val_loss", "val_accuracy", title="Verified by training each pair "
                  "one cycle from the same weights", title_justify="left")
    for row in range_test["result"]["verification"]:
        table.add_row(row["name"] + (" (chosen)" if row["chosen"] else ""), f"{row['min_lr']:.3g}",
                      f"{row['max_lr']:.3g}", "-" if row["val_loss"] is None else f"{row['val_loss']:.4f}",
                      "-" if row["val_accuracy"] is None else f"{row['val_accuracy']:.4f}")
    return table


def run(base_url: str, api_key: str, output_dir: Path, console: Console | None = None, seed: int = 0
        ) -> dict[str, Any]:
    """Run the workflow (its range test, its verification and the training seeded with `seed`) against the service
    at `base_url` with `api_key`; return the finished training job."""
    console = console or Console()
    output_dir.mkdir(parents=True, exist_ok=True)
    with Client(base_url, api_key) as client:
        console.print("Range test on digits with the article's CNN, its bounds verified by training ...")
        range_test = wait_for(client, client.submit_range_test(RANGE_TEST | {"seed": seed}), console)
        bounds = range_test["result"]["suggested_bounds"]
        console.print(verification_table(range_test))
        console.print(f"  suggested bounds: base_lr={bounds['min_lr']:.3g}, max_lr={bounds['max_lr']:.3g} "
                      f"(confidence {bounds['confidence']})")
        console.print(f"  {bounds['explanation']}")

        console.print("CLR training with those bounds, one cycle, step_size = 4 epochs ...")
        submitted = client.submit_training(training_from(range_test))
        for warning in submitted["warnings"]:
            console.print(f"  warning: {warning}")
        training = wait_for(client, submitted, console)
        console.print(f"  test accuracy: {training['result']['test_accuracy']:.4f}")
        console.print(f"  {cycle_report(client, training)}", soft_wrap=True)

        for job, name in ((range_test, "range_test.png"), (training, "training.png")):
            (output_dir / name).write_bytes(client.plot(job["id"]))
        console.print(f"Figures written to {output_dir / 'range_test.png'} and {output_dir / 'training.png'}")
    return training
