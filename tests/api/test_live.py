"""Watching a job live: the event stream (with a dropped connection resumed by `Last-Event-ID`), the Python client
and the CLI on top of it."""

import io
import json

import numpy as np
import pytest
from httpx_sse import connect_sse
from typer.testing import CliRunner

from clr.schedules import cyclical_lr
from clr_service.cli import app

pytestmark = pytest.mark.slow

PER_EPOCH = int(np.ceil(1437 / 16))  # digits' training split in batches of 16


def training(epochs: int, max_lr: float = 0.1) -> dict:
    return {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
            "batch_size": 16, "epochs": epochs, "seed": 3, "clr": {"base_lr": 0.01, "max_lr": max_lr, "step_size": 60}}


def read_events(client, job_id: str, last_event_id: str | None = None, stop_after_points: int | None = None):
    """(events as (name, data), the last points event's id), reading until the job ends or enough points came."""
    events, last_id, points = [], last_event_id, 0
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with connect_sse(client, "GET", f"/jobs/{job_id}/events", headers=headers) as source:
        for event in source.iter_sse():
            if not event.data:  # a keep-alive ping
                continue
            data = json.loads(event.data)
            events.append((event.event, data))
            if event.event == "points":
                last_id, points = event.id, points + len(data["iteration"])
                if stop_after_points is not None and points >= stop_after_points:
                    break  # the connection drops here
            if event.event == "state" and data["state"] in ("succeeded", "failed", "cancelled"):
                break
    return events, last_id


def test_the_event_stream_resumed_after_a_drop_has_every_iteration_once_on_the_schedule(client):
    epochs = 8
    job_id = client.post("/trainings", json=training(epochs)).json()["id"]
    first, last_id = read_events(client, job_id, stop_after_points=100)
    rest, _ = read_events(client, job_id, last_event_id=last_id)
    events = first + rest
    iterations = [i for name, data in events if name == "points" for i in data["iteration"]]
    lrs = [lr for name, data in events if name == "points" for lr in data["lr"]]
    assert iterations == list(range(epochs * PER_EPOCH))
    np.testing.assert_allclose(lrs, cyclical_lr(0.01, 0.1, 60)(np.arange(len(lrs))), rtol=1e-6)
    assert events[-1][0] == "state" and events[-1][1]["state"] == "succeeded"
    assert {data["epoch"] for name, data in events if name == "epoch"} == set(range(1, epochs + 1))
    assert any(name == "progress" and data["total_iterations"] == epochs * PER_EPOCH for name, data in events)


def invoke(*arguments: str):
    return CliRunner().invoke(app, list(arguments), catch_exceptions=False)


def test_the_cli_submits_watches_and_fetches(service, tmp_path):
    spec = tmp_path / "training.yaml"
    spec.write_text(json.dumps(training(2) | {"validation_split": 0.1}))  # JSON is YAML too
    connection = ["--url", service.url, "--key", service.api_key]
    submitted = invoke("submit", "training", str(spec), "--watch", *connection)
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.splitlines()[0].strip()
    assert f"{job_id}: succeeded" in submitted.output
    watched = invoke("watch", job_id, *connection)
    assert watched.exit_code == 0 and f"{2 * int(np.ceil(1293 / 16))}/" in watched.output  # iteration/total bar
    assert "epoch 2/2" in watched.output and "loss" in watched.output
    csv = invoke("curves", job_id, "--csv", *connection)
    assert csv.exit_code == 0 and csv.output.splitlines()[0] == "iteration,lr,loss"
    assert invoke("plot", job_id, "-o", str(tmp_path / "f.png"), *connection).exit_code == 0
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert invoke("model", job_id, "-o", str(tmp_path / "m.keras"), *connection).exit_code == 0
    assert (tmp_path / "m.keras").read_bytes()[:2] == b"PK"
    assert job_id in invoke("jobs", *connection).output


def test_watch_exits_non_zero_on_a_failed_job(client, service):
    rng, buffer = np.random.default_rng(0), io.BytesIO()
    np.savez(buffer, x_train=rng.random((256, 8, 8)) * 1e18, y_train=rng.integers(0, 10, 256))
    dataset_id = client.post("/datasets", files={"file": ("huge.npz", buffer.getvalue())}).json()["id"]
    body = training(50, max_lr=1e6) | {"dataset": {"id": dataset_id}}
    job_id = client.post("/trainings", json=body).json()["id"]
    watched = invoke("watch", job_id, "--url", service.url, "--key", service.api_key)
    assert watched.exit_code == 1 and f"{job_id}: failed" in watched.output
    assert "NaN" in watched.output or "infinite" in watched.output
