"""Fine-tuning on the real stack: a pretrained (saved) small CNN, uploaded; a range test with its body frozen sweeps
the head; a training with discriminative rates (fastai's slice) trains each layer group at its factor of the
schedule, its body frozen layers left as uploaded; layer names checked at submit."""

import keras
import numpy as np
import pytest

import clr.layer_rates  # noqa: F401 (registers the optimizer a training state names)
from clr import datasets
from clr.schedules import cyclical_lr
from tests.api.test_workloads import upload
from tests.helpers import in_plain_keras, wait_for_state

pytestmark = pytest.mark.slow
LAYERS = ["conv", "flat", "neck", "head"]


@pytest.fixture(scope="module")
def pretrained(client, tmp_path_factory) -> tuple[dict, keras.Model]:
    """A small CNN trained one epoch on digits, saved and uploaded."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(16, activation="relu", name="neck"),
                              keras.layers.Dense(10, activation="softmax", name="head")])
    model.compile("adam", "sparse_categorical_crossentropy")
    digits = datasets.digits()
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("pretrained") / "cnn.keras"
    model.save(path)
    return upload(client, "/models", path.read_bytes(), "cnn.keras"), model


def job(model_id: str, **fields) -> dict:
    return {"model": {"id": model_id} | fields.pop("model", {}), "dataset": {"name": "digits"},
            "optimizer": {"name": "sgd"}, "batch_size": 64, "seed": 0} | fields


def test_a_range_test_with_the_body_frozen_sweeps_the_head(client, pretrained):
    uploaded, _ = pretrained
    assert uploaded["layers"] == LAYERS
    submitted = client.post("/range-tests", json=job(uploaded["id"], model={"freeze": {"until": "neck"}}, epochs=2))
    assert submitted.status_code == 202, submitted.text
    done = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["frozen_layers"] == ["conv", "flat"]
    assert done["result"]["suggested_bounds"] is not None


def test_a_discriminative_training_trains_each_group_at_its_factor_and_leaves_the_frozen_ones(
        client, pretrained, tmp_path):
    uploaded, model = pretrained
    body = job(uploaded["id"], model={"freeze": {"count": 1}, "layer_groups": {"starts": ["neck", "head"]}},
               epochs=2, clr={"base_lr": 0.01, "max_lr": 0.1, "step_size": 20})
    submitted = client.post("/trainings", json=body)
    assert submitted.status_code == 202, submitted.text
    done = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["error"]
    result = done["result"]
    assert result["frozen_layers"] == ["conv"]
    assert [group["layers"] for group in result["layer_groups"]] == [["conv", "flat"], ["neck"], ["head"]]
    assert [group["factor"] for group in result["layer_groups"]] == pytest.approx([0.01, 0.1, 1.0])
    curve = client.get(f"/jobs/{done['id']}/curves").json()  # the head's rate: the schedule's, every iteration
    np.testing.assert_allclose(curve["lr"], cyclical_lr(0.01, 0.1, 20)(np.array(curve["iteration"])), rtol=1e-6)

    state = client.get(f"/jobs/{done['id']}/model", params={"include_optimizer": True})
    assert state.status_code == 200
    (tmp_path / "state.keras").write_bytes(state.content)
    trained = keras.saving.load_model(tmp_path / "state.keras")
    assert type(trained.optimizer).__name__ == "LayerRatesSGD"
    neck = trained.get_layer("neck")
    assert trained.optimizer.factors == {variable.path: 0.1 for variable in neck.weights}  # conv is frozen: no rate
    assert len(trained.optimizer.factors) == 2
    for before, after in zip(model.get_layer("conv").get_weights(), trained.get_layer("conv").get_weights(),
                             strict=True):
        np.testing.assert_array_equal(before, after)
    assert in_plain_keras(client, done["id"], "final", tmp_path)["accuracy"] > 0.3  # 0.1 by chance


def test_a_layer_the_model_lacks_is_refused_at_submit_naming_the_field(client, pretrained):
    uploaded, _ = pretrained
    refused = client.post("/trainings", json=job(uploaded["id"], model={"layer_groups": {"starts": ["trunk"]}},
                                                 epochs=1, clr={"base_lr": 0.01, "max_lr": 0.1, "step_size": 20}))
    assert refused.status_code == 422
    assert "model.layer_groups.starts: the model has no layer named 'trunk'; its layers: conv, flat, neck, head" \
        in refused.text
    unfrozen = client.post("/trainings", json=job(uploaded["id"], model={"freeze": {"count": 2}}, epochs=1,
                                                  clr={"base_lr": 0.01, "max_lr": 0.1, "step_size": 20},
                                                  unfreeze={"epochs": 1, "clr": {"base_lr": 0.01, "max_lr": 0.1,
                                                            "step_size": 20}, "layer_groups": {"starts": ["torso"]}}))
    assert unfrozen.status_code == 422
    assert "unfreeze.layer_groups.starts: the model has no layer named 'torso'" in unfrozen.text
    json_model = client.post("/range-tests", json=job("0" * 32) | {
        "model": {"keras_json": pretrained[1].to_json(), "freeze": {"until": "body"}}})
    assert json_model.status_code == 422
    assert "model.freeze.until: the model has no layer named 'body'" in json_model.text


def test_a_two_stage_fine_tuning_trains_the_head_then_the_whole_network_from_it(client, pretrained, tmp_path):
    uploaded, model = pretrained
    body = job(uploaded["id"], model={"freeze": {"until": "neck"}}, epochs=1,
               clr={"base_lr": 0.01, "max_lr": 0.1, "step_size": 11},
               unfreeze={"epochs": 1, "clr": {"step_size": 11}, "layer_groups": {"starts": ["neck"]},
                         "range_test": {"start_lr": 1e-3, "end_lr": 10.0, "iterations": 46},
                         "accept_low_confidence": True})
    submitted = client.post("/trainings", json=body)
    assert submitted.status_code == 202, submitted.text
    done = wait_for_state(client, submitted.json()["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["error"]
    head, whole = done["head"], done["result"]
    assert head["frozen_layers"] == ["conv", "flat"] and "frozen_layers" not in whole
    assert {key: value for key, value in whole["head"].items() if value != head.get(key)} == {}
    suggested = done["unfrozen_range_test"]["suggested_bounds"]
    assert whole["bounds"] == [suggested["min_lr"], suggested["max_lr"]]
    assert [group["layers"] for group in whole["layer_groups"]] == [["conv", "flat"], ["neck", "head"]]
    assert [group["factor"] for group in whole["layer_groups"]] == pytest.approx([0.01, 1.0])

    curves = {phase: client.get(f"/jobs/{done['id']}/curves", params={"phase": phase}).json()
              for phase in ("training", "unfrozen_range_test", "unfrozen")}
    assert len(curves["training"]["iteration"]) == head["iterations"]
    np.testing.assert_allclose(curves["training"]["lr"], cyclical_lr(0.01, 0.1, 11)(
        np.array(curves["training"]["iteration"])), rtol=1e-6)
    assert curves["unfrozen_range_test"]["iteration"] == list(range(done["unfrozen_range_test"]["iterations"]))
    # Both start from the head's weights on the same first batch (one seed, one batch order), where the head's stage
    # started from the upload's: the same loss, lower than the head's first
    first = curves["unfrozen_range_test"]["loss"][0]
    assert curves["unfrozen"]["loss"][0] == pytest.approx(first, rel=1e-5) and first < curves["training"]["loss"][0]
    unfrozen = curves["unfrozen"]
    assert unfrozen["iteration"] == list(range(whole["iterations"]))
    np.testing.assert_allclose(unfrozen["lr"], cyclical_lr(*whole["bounds"], 11)(
        np.array(unfrozen["iteration"])), rtol=1e-6)

    state = client.get(f"/jobs/{done['id']}/model")
    (tmp_path / "model.keras").write_bytes(state.content)
    trained = keras.saving.load_model(tmp_path / "model.keras")
    assert all(layer.trainable for layer in trained.layers)
    assert not np.array_equal(model.get_layer("conv").get_weights()[0], trained.get_layer("conv").get_weights()[0])
