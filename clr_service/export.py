"""A job fetched over HTTP (`clr_service.client`) written as TensorBoard event files or as an MLflow run, for the
tools a user already has; needs the `export` extra, not TensorFlow.

Each curve's columns (`lr`, `loss`, `momentum`, `accuracy`, a range test's `smoothed_loss`) are scalars
`<curve>/<column>` at step = iteration, the curve being `training` or `range_test` (a range test's own, or the one a
training ran first); each epoch's metrics are `epoch/<metric>` at the step of the epoch's last iteration. A value the
service sent as null (non-finite) is NaN."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from PIL import Image
from tensorboardX import SummaryWriter

from clr_service.client import Client

Scalar = tuple[str, int, float]  # tag, step, value
QUEUED_EVENTS = 10_000  # TensorBoard events queued for the writer's thread: a long curve waits on it less often
RUN_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
MODEL_SIZES = {"final": "model_bytes", "best": "best_model_bytes"}  # the result holds a model's size once saved


def curve_phases(job: dict[str, Any]) -> dict[str, str]:
    """The job's curves, its own first, by the name they are exported under, to the `phase` that fetches each."""
    if job["kind"] == "range_test":
        return {"range_test": "training"}
    return {"training": "training"} | ({"range_test": "range_test"} if job["spec"].get("range_test") else {})


def fetch_curves(client: Client, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each of the job's curves as the service answers it (every one holds the job's per-epoch metrics, `epochs`)."""
    return {name: client.curves(job["id"], phase=phase) for name, phase in curve_phases(job).items()}


def own_curve(curves: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The job's own curve, which comes first."""
    return next(iter(curves.values()))


def as_float(value: float | None) -> float:
    """A value as the service sent it, null (non-finite) as NaN."""
    return float("nan") if value is None else float(value)


def iteration_scalars(name: str, curve: dict[str, Any]) -> Iterator[Scalar]:
    """Every per-iteration column of `curve` as `name/column` at step = iteration."""
    for column, values in curve.items():
        if column not in ("iteration", "epochs"):
            for step, value in zip(curve["iteration"], values, strict=True):
                yield f"{name}/{column}", step, as_float(value)


def iterations_per_epoch(job: dict[str, Any]) -> int:
    """A range test's from its result's step-size advice (its total also counts a verification's iterations); a
    training's from its total of whole epochs."""
    advice = (job["result"] or {}).get("step_size_advice")
    progress = job["progress"]
    return advice["iterations_per_epoch"] if advice else progress["total_iterations"] // max(progress["epochs"], 1)


def epoch_scalars(job: dict[str, Any], curve: dict[str, Any]) -> Iterator[Scalar]:
    """Every epoch's metrics as `epoch/metric` at the step of the epoch's last iteration: the last of `curve`, the
    job's own, for an epoch cut short (a range test's last, one that stopped early)."""
    per_epoch, last = iterations_per_epoch(job), (curve["iteration"] or [0])[-1]
    for number, metrics in enumerate(curve["epochs"], start=1):
        step = min(number * per_epoch - 1, last)
        yield from ((f"epoch/{name}", step, as_float(value)) for name, value in metrics.items())


def scalars(job: dict[str, Any], curves: dict[str, dict[str, Any]]) -> Iterator[Scalar]:
    """The scalars of every curve, then those of every epoch."""
    for name, curve in curves.items():
        yield from iteration_scalars(name, curve)
    yield from epoch_scalars(job, own_curve(curves))


def flat_spec(spec: dict[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """The spec's values by dotted path (`clr.max_lr`), lists as JSON; fields left unset (None) left out."""
    flat = {}
    for name, value in spec.items():
        if isinstance(value, dict):
            flat |= flat_spec(value, f"{prefix}{name}.")
        elif value is not None:
            flat[prefix + name] = json.dumps(value) if isinstance(value, list) else value
    return flat


def last_epoch(curves: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The last epoch's finite metrics as `final/metric`: what the TensorBoard HParams table shows per job."""
    epochs = own_curve(curves)["epochs"]
    return {f"final/{name}": value for name, value in (epochs[-1] if epochs else {}).items() if value is not None}


def pixels(png: bytes) -> np.ndarray:
    """A PNG as RGB pixels (height, width, channel)."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def to_tensorboard(client: Client, job_id: str, folder: str | Path) -> Path:
    """Write the job as the TensorBoard run `folder/<job id>`: its scalars, its figures as images `figure/<curve>`,
    and its spec as hyperparameters (with the last epoch's metrics); return the run's folder."""
    job = client.job(job_id)
    curves = fetch_curves(client, job)
    run = Path(folder) / job_id
    with SummaryWriter(str(run), max_queue=QUEUED_EVENTS) as writer:
        for tag, step, value in scalars(job, curves):
            writer.add_scalar(tag, value, step)
        for name, phase in curve_phases(job).items():
            writer.add_image(f"figure/{name}", pixels(client.plot(job_id, phase)), dataformats="HWC")
        writer.add_hparams(flat_spec(job["spec"]), last_epoch(curves), name="hparams")
    return run


def millis(timestamp: str) -> int:
    """An ISO time as MLflow counts it: milliseconds since the epoch."""
    return round(datetime.fromisoformat(timestamp).timestamp() * 1000)


def experiment_id(mlflow: MlflowClient, name: str) -> str:
    """The id of the experiment `name`, created if there is none."""
    experiment = mlflow.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else mlflow.create_experiment(name)


def artifact_files(client: Client, job: dict[str, Any], folder: Path) -> Iterator[tuple[Path, str]]:
    """The job's figures (`figure/<curve>.png`) and saved models (`model/final.keras`, `model/best.keras`), written
    into `folder`, with the artifact folder of each."""
    for name, phase in curve_phases(job).items():
        path = folder / f"{name}.png"
        path.write_bytes(client.plot(job["id"], phase))
        yield path, "figure"
    for which, size in MODEL_SIZES.items():
        if size in (job["result"] or {}):
            path = folder / f"{which}.keras"
            path.write_bytes(client.model(job["id"], which))
            yield path, "model"


def to_mlflow(client: Client, job_id: str, tracking_uri: str, experiment: str = "clr-service") -> str:
    """Log the job as a run named by its id in `experiment` at `tracking_uri`: its scalars as metrics, its spec as
    params, its record (`job.json`), figures and models as artifacts; the run ends as the job did. Return the run's
    id."""
    job = client.job(job_id)
    curves = fetch_curves(client, job)
    mlflow = MlflowClient(tracking_uri)
    started = millis(job["started_at"] or job["created_at"])
    run_id = mlflow.create_run(experiment_id(mlflow, experiment), started, run_name=job_id,
                               tags={"clr.job_id": job_id, "clr.kind": job["kind"], "clr.state": job["state"]}
                               ).info.run_id
    mlflow.log_batch(run_id, [Metric(tag, value, started, step) for tag, step, value in scalars(job, curves)],
                     [Param(name, str(value)) for name, value in flat_spec(job["spec"]).items()])
    mlflow.log_dict(run_id, job, "job.json")
    with tempfile.TemporaryDirectory() as folder:
        for path, artifact_folder in artifact_files(client, job, Path(folder)):
            mlflow.log_artifact(run_id, str(path), artifact_folder)
    if job["state"] in RUN_STATUS:
        mlflow.set_terminated(run_id, RUN_STATUS[job["state"]], millis(job["finished_at"]))
    return run_id
