"""Real workloads on the real stack: `keras.applications` models, one-hot and regression losses, uploaded `.keras`
models, and the labels checked against the loss before anything runs."""

import io

import keras
import numpy as np
import pytest

import clr.keras_schedule  # noqa: F401  (registers the schedules a trained model is saved with)
from tests.helpers import wait_for_state

pytestmark = pytest.mark.slow


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def upload(client, path: str, payload: bytes, name: str) -> dict:
    response = client.post(path, files={"file": (name, payload)})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def regression(client) -> dict:
    """400 samples of 8 features whose float target is a fixed linear function of them, plus noise."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)).astype(np.float32)
    y = (x @ rng.normal(size=8) + 0.1 * rng.normal(size=500)).astype(np.float32)
    return upload(client, "/datasets", npz(x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:]),
                  "regression.npz")


def job(dataset_id: str, **fields) -> dict:
    return {"model": {"architecture": "mlp"}, "dataset": {"id": dataset_id}, "optimizer": {"name": "sgd"},
            "batch_size": 16, "seed": 0} | fields


def test_a_regression_with_mse_runs_its_range_test_then_trains_with_the_suggested_bounds(client, regression):
    assert regression["labels"]["y_train"]["dtype"] == "float32" and regression["num_classes"] is None
    body = job(regression["id"], loss="mean_squared_error", epochs=4, validation_split=0.1,
               range_test={"start_lr": 1e-4, "end_lr": 1.0, "epochs": 4}, accept_low_confidence=True,
               clr={"step_size_epochs": 2})
    submitted = client.post("/trainings", json=body)
    assert submitted.status_code == 202, submitted.text
    done = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["error"]
    result = done["result"]
    suggested = done["range_test"]["suggested_bounds"]
    assert result["bounds"] == [suggested["min_lr"], suggested["max_lr"]]
    assert set(result["final_metrics"]) >= {"loss", "mae", "rmse", "val_loss", "val_mae", "val_rmse"}
    assert result["test_mae"] < 0.5 and result["test_rmse"] ** 2 == pytest.approx(result["test_loss"], rel=1e-3)
    curve = client.get(f"/jobs/{done['id']}/curves").json()
    assert curve["iteration"] == list(range(result["iterations"])) and all(np.isfinite(curve["loss"]))
    sweep = client.get(f"/jobs/{done['id']}/curves", params={"phase": "range_test"}).json()
    assert len(sweep["iteration"]) == done["range_test"]["iterations"]


def test_labels_that_do_not_fit_the_loss_are_refused_naming_the_array(client, regression):
    refused = client.post("/range-tests", json=job(regression["id"]))  # sparse categorical CE on float targets
    assert refused.status_code == 422
    assert "loss: `y_train` holds float32" in refused.text and "one integer class" in refused.text
    classes = client.post("/range-tests", json=job("0" * 32) | {"dataset": {"name": "digits"},
                                                                "loss": "categorical_crossentropy"})
    assert classes.status_code == 422 and "one-hot" in classes.text and "`y_train` holds int64" in classes.text
    small = client.post("/range-tests", json=job("0" * 32) | {"dataset": {"name": "digits"},
                                                              "model": {"architecture": "ResNet50V2"}})
    assert small.status_code == 422
    assert "model.architecture: ResNet50V2 needs images of at least 32x32; the dataset's are 8x8" in small.text


def test_a_keras_application_trains_on_one_hot_labels(client, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(48, 32, 32, 3), dtype=np.uint8)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=48)]
    data = upload(client, "/datasets", npz(x_train=x, y_train=y), "images.npz")
    assert data["labels"]["y_train"]["one_hot"]
    body = {"model": {"architecture": "MobileNetV3Small"}, "dataset": {"id": data["id"]}, "loss":
            "categorical_crossentropy", "optimizer": {"name": "adam"}, "batch_size": 16, "epochs": 2,
            "clr": {"base_lr": 1e-4, "max_lr": 1e-3, "step_size": 3}}
    submitted = client.post("/trainings", json=body)
    assert submitted.status_code == 202, submitted.text
    done = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"}, timeout=300)
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["iterations"] == 6 and "accuracy" in done["result"]["final_metrics"]
    (tmp_path / "trained.keras").write_bytes(client.get(f"/jobs/{done['id']}/model").content)
    model = keras.saving.load_model(tmp_path / "trained.keras")
    assert model.name.startswith("MobileNetV3Small") and model.output_shape == (None, 3)


def keras_file(model: keras.Model, tmp_path) -> bytes:
    path = tmp_path / "model.keras"
    model.save(path)
    return path.read_bytes()


def test_an_uploaded_keras_model_trains_from_its_saved_weights(client, regression, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    uploaded = upload(client, "/models", keras_file(model, tmp_path), "regressor.keras")
    assert uploaded["class_name"] == "Sequential"
    assert uploaded["id"] in {meta["id"] for meta in client.get("/models").json()["uploaded"]}
    body = job(regression["id"], model={"id": uploaded["id"]}, loss="huber", epochs=1,
               clr={"base_lr": 1e-3, "max_lr": 1e-2, "step_size": 25})
    submitted = client.post("/trainings", json=body)
    assert submitted.status_code == 202, submitted.text
    done = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["iterations"] == 25
    unknown = client.post("/trainings", json=body | {"model": {"id": "f" * 32}})
    assert unknown.status_code == 422 and "model.id" in unknown.text


@keras.saving.register_keras_serializable(package="Mine")
class Doubling(keras.layers.Layer):
    def call(self, inputs):
        return inputs * 2


@pytest.mark.parametrize(("layer", "named"), [(Doubling(), "Doubling"), (keras.layers.Lambda(lambda t: t * 2),
                                                                         "Lambda")])
def test_models_that_need_code_to_load_are_refused_naming_it(client, tmp_path, layer, named):
    model = keras.Sequential([keras.Input((8,)), layer, keras.layers.Dense(1)])
    response = client.post("/models", files={"file": ("custom.keras", keras_file(model, tmp_path))})
    assert response.status_code == 422 and "refused in safe mode" in response.text and named in response.text
    not_a_model = client.post("/models", files={"file": ("x.keras", b"not a zip")})
    assert not_a_model.status_code == 422 and "not a `.keras` archive" in not_a_model.text
