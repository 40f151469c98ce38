"""`clr-service export`: a training (1cycle cycling momentum, a validation split, its own range test first) and a
range test into TensorBoard event files and an MLflow run on a local file store, read back with TensorBoard's own
reader and MLflow's own client."""

import math
import sys
import types
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from typer.testing import CliRunner

from clr_service.cli import app
from tests.helpers import wait_for_state

pytestmark = pytest.mark.slow

# TensorBoard's own switch to its TensorFlow stub (what its `no_tensorflow` target adds): reading event files needs no
# TensorFlow, which here would take the reader 20 s to import.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

PER_EPOCH = math.ceil(math.floor(1437 * 0.9) / 64)  # digits' training split less 10 % validation, in batches of 64
JOB = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd", "momentum": 0.9},
       "batch_size": 64, "validation_split": 0.1, "seed": 0}
TRAINING = JOB | {"epochs": 2, "schedule": {"policy": "one_cycle", "cycle_momentum": True},
                  "range_test": {"start_lr": 1e-4, "end_lr": 10.0, "epochs": 3}, "accept_low_confidence": True}
RANGE_TEST = JOB | {"start_lr": 1e-4, "end_lr": 1.0, "epochs": 2, "stop_factor": 1e6}  # it sweeps both epochs whole


@pytest.fixture(scope="module")
def jobs(client) -> dict[str, dict]:
    ids = {"training": client.post("/trainings", json=TRAINING).json()["id"],
           "range_test": client.post("/range-tests", json=RANGE_TEST).json()["id"]}
    ended = {kind: wait_for_state(client, job_id, {"succeeded", "failed"}) for kind, job_id in ids.items()}
    assert all(job["state"] == "succeeded" for job in ended.values()), ended
    return ended


def export(service, job_id: str, *destinations: str) -> str:
    result = CliRunner().invoke(app, ["export", job_id, *destinations, "--url", service.url, "--key", service.api_key],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def curves(client, job_id: str, phase: str = "training") -> dict:
    return client.get(f"/jobs/{job_id}/curves", params={"phase": phase}).json()


def tensorboard_run(folder) -> EventAccumulator:
    run = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})  # 0: keep every event
    run.Reload()
    return run


def assert_tensorboard_curve(run: EventAccumulator, name: str, curve: dict, columns: tuple[str, ...]) -> None:
    """One scalar per iteration at step = iteration, as the curve holds it (TensorBoard keeps float32)."""
    for column in columns:
        events = run.Scalars(f"{name}/{column}")
        assert [event.step for event in events] == curve["iteration"], column
        assert [event.value for event in events] == pytest.approx(curve[column], rel=1e-6), column


def assert_tensorboard_epochs(run: EventAccumulator, epochs: list[dict]) -> None:
    """Each epoch's metrics at the step of its last iteration."""
    assert len(epochs) == 2 and "val_loss" in epochs[0]
    for name in epochs[0]:
        events = run.Scalars(f"epoch/{name}")
        assert [event.step for event in events] == [PER_EPOCH - 1, 2 * PER_EPOCH - 1], name
        assert [event.value for event in events] == pytest.approx([epoch[name] for epoch in epochs], rel=1e-6), name


def test_a_training_in_tensorboard(service, client, jobs, tmp_path):
    job_id = jobs["training"]["id"]
    assert export(service, job_id, "--tensorboard", str(tmp_path)).strip() == f"tensorboard: {tmp_path / job_id}"
    run, trained = tensorboard_run(tmp_path / job_id), curves(client, job_id)
    assert trained["iteration"] == list(range(2 * PER_EPOCH))
    assert_tensorboard_curve(run, "training", trained, ("lr", "loss", "momentum"))
    assert_tensorboard_curve(run, "range_test", curves(client, job_id, "range_test"),
                             ("lr", "loss", "smoothed_loss", "accuracy"))
    assert_tensorboard_epochs(run, trained["epochs"])
    for name in ("training", "range_test"):
        image = run.Images(f"figure/{name}")[0]
        assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and image.width > 400 and image.height > 200
    hparams = tensorboard_run(tmp_path / job_id / "hparams").PluginTagToContent("hparams")
    spec = HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info.hparams
    assert spec["schedule.policy"].string_value == "one_cycle" and spec["batch_size"].number_value == 64
    assert spec["range_test.end_lr"].number_value == 10.0 and spec["schedule.cycle_momentum"].bool_value


def test_a_range_test_in_tensorboard(service, client, jobs, tmp_path):
    job_id = jobs["range_test"]["id"]
    export(service, job_id, "--tensorboard", str(tmp_path))
    run, sweep = tensorboard_run(tmp_path / job_id), curves(client, job_id)
    assert sweep["iteration"] == list(range(2 * PER_EPOCH))
    assert_tensorboard_curve(run, "range_test", sweep, ("lr", "loss", "smoothed_loss", "accuracy"))
    assert_tensorboard_epochs(run, sweep["epochs"])
    assert run.Images("figure/range_test")[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_training_in_mlflow(service, client, jobs, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store behind this opt-in
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    job_id, uri = jobs["training"]["id"], (tmp_path / "mlruns").as_uri()
    run_id = export(service, job_id, "--mlflow", uri).strip().removeprefix("mlflow run: ")
    mlflow = MlflowClient(uri)
    run = mlflow.get_run(run_id)
    assert run.info.run_name == job_id and run.info.status == "FINISHED"
    assert mlflow.get_experiment(run.info.experiment_id).name == "clr-service"
    assert run.data.params["schedule.policy"] == "one_cycle" and run.data.params["batch_size"] == "64"
    assert run.data.params["range_test.end_lr"] == "10.0" and "range_test_id" not in run.data.params
    trained, sweep = curves(client, job_id), curves(client, job_id, "range_test")
    for key, curve in [(f"training/{column}", trained) for column in ("lr", "loss", "momentum")] + [
            (f"range_test/{column}", sweep) for column in ("lr", "loss", "smoothed_loss", "accuracy")]:
        history = sorted(mlflow.get_metric_history(run_id, key), key=lambda metric: metric.step)
        assert [metric.step for metric in history] == curve["iteration"], key
        assert [metric.value for metric in history] == curve[key.split("/")[1]], key
    for name in trained["epochs"][0]:
        history = sorted(mlflow.get_metric_history(run_id, f"epoch/{name}"), key=lambda metric: metric.step)
        assert [(metric.step, metric.value) for metric in history] == [
            (PER_EPOCH - 1, trained["epochs"][0][name]), (2 * PER_EPOCH - 1, trained["epochs"][1][name])], name
    assert {artifact.path for artifact in mlflow.list_artifacts(run_id)} == {"figure", "model", "job.json"}
    assert {artifact.path for artifact in mlflow.list_artifacts(run_id, "figure")} == {
        "figure/training.png", "figure/range_test.png"}
    assert {artifact.path for artifact in mlflow.list_artifacts(run_id, "model")} == {
        "model/final.keras", "model/best.keras"}
    figure = mlflow.download_artifacts(run_id, "figure/training.png", str(tmp_path))
    assert Path(figure).read_bytes() == client.get(f"/jobs/{job_id}/plot.png").content


def test_without_the_export_extra_the_cli_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "clr_service.export", raising=False)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed: importing it raises ImportError
    result = CliRunner().invoke(app, ["export", "0" * 32, "--tensorboard", str(tmp_path), "--key", "k"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.strip().startswith("Exporting needs the `export` extra (") and "Traceback" not in result.output
    assert "pip install 'clr-service[export]'" in result.output and len(result.output.strip().splitlines()) == 1
