"""Every invalid body is answered 4xx with a message naming the field; nothing is queued. The API runs in this
process: no test here needs a worker."""

import io
import json

import numpy as np
import pytest

from api.examples import RANGE_TEST_EXAMPLE, TRAINING_EXAMPLES
from bench.bounds_panel import synthetic_range_test
from clr.bounds import suggest_bounds

GOOD_TRAINING = TRAINING_EXAMPLES["bounds"]["value"]
GOOD_RANGE_TEST = RANGE_TEST_EXAMPLE
LAMBDA_MODEL = json.dumps({
    "module": "keras", "class_name": "Sequential", "config": {"layers": [
        {"module": "keras.layers", "class_name": "Lambda", "config": {"function": {"class_name": "__lambda__"}}}
    ]},
})


ONE_CYCLE = {"policy": "one_cycle", "max_lr": 0.1}
WITH_SCHEDULE = {key: value for key, value in GOOD_TRAINING.items() if key != "clr"} | {"schedule": ONE_CYCLE}


FIXED_ARM = {"name": "fixed", "schedule": {"policy": "constant", "lr": 0.05}}
COMPARISON = {"training": {key: value for key, value in GOOD_TRAINING.items() if key != "clr"}, "arms": [FIXED_ARM]}


def with_clr(**changes):
    return GOOD_TRAINING | {"clr": GOOD_TRAINING["clr"] | changes}


def post_raw(client, path, body):
    """Post a body that may hold NaN (Python's json writes it as a bare NaN token)."""
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("path", "body", "field", "text"),
    [
        ("/trainings", with_clr(base_lr=0.01, max_lr=0.001), "clr", "Argument `base_lr` must be < `max_lr`"),
        ("/trainings", with_clr(step_size_epochs=None, step_size=0), "step_size", "greater than or equal to 1"),
        ("/trainings", with_clr(mode="cosine"), "mode", "'triangular', 'triangular2' or 'exp_range'"),
        ("/trainings", with_clr(shape="square"), "shape", "'linear', 'parabolic' or 'sinusoidal'"),
        ("/trainings", with_clr(base_lr=float("nan")), "base_lr", "finite number"),
        ("/trainings", with_clr(max_lr=float("inf")), "max_lr", "finite number"),
        ("/trainings", with_clr(gamma=0.5), "clr", "Argument `gamma` is only used with mode='exp_range'"),
        ("/trainings", with_clr(step_size=10), "clr", "exactly one of `step_size`"),
        ("/trainings", GOOD_TRAINING | {"batch_size": -5}, "batch_size", "greater than or equal to 1"),
        ("/trainings", GOOD_TRAINING | {"epochs": 0}, "epochs", "greater than or equal to 1"),
        ("/trainings", GOOD_TRAINING | {"validation_split": 1.0}, "validation_split", "less than 1"),
        ("/trainings", GOOD_TRAINING | {"dataset": {"name": "imagenet"}}, "name", "'digits'"),
        ("/trainings", GOOD_TRAINING | {"model": {"architecture": "resnet"}}, "architecture", "'seed_cnn'"),
        ("/trainings", GOOD_TRAINING | {"model": {"keras_json": LAMBDA_MODEL}}, "keras_json", "Lambda"),
        ("/trainings", GOOD_TRAINING | {"model": {"keras_json": "{not json"}}, "keras_json", "not JSON"),
        ("/trainings", GOOD_TRAINING | {"model": {}}, "model", "exactly one of `architecture`, `keras_json` and `id`"),
        ("/trainings", GOOD_TRAINING | {"optimizer": {"name": "lbfgs"}}, "optimizer", "'sgd', 'adam', 'rmsprop'"),
        ("/trainings", GOOD_TRAINING | {"optimizer": {"name": "sgd", "momentum": 1.5}}, "momentum", "less than 1"),
        ("/trainings", GOOD_TRAINING | {"optimizer": {"name": "sgd", "betas": 1}}, "betas", "Extra inputs"),
        ("/trainings", GOOD_TRAINING | {"lr": 0.1}, "lr", "Extra inputs"),
        ("/trainings", GOOD_TRAINING | {"clr": {"step_size": 10}}, "body", "a `range_test_id` to take them from"),
        ("/trainings", GOOD_TRAINING | {"range_test_id": "0" * 32}, "body", "received `clr.base_lr`"),
        ("/trainings", GOOD_TRAINING | {"range_test": {"end_lr": 1.0}}, "body", "and `range_test`"),
        ("/trainings", GOOD_TRAINING | {"unfreeze": {"epochs": 1, "range_test": {}, "clr": {"step_size": 5}}}, "body",
         "`unfreeze` trains the whole network after its head: give `model.freeze`"),
        ("/trainings", GOOD_TRAINING | {"unfreeze": {"epochs": 1, "clr": {"step_size": 5}}}, "unfreeze",
         "Give exactly one of `clr.base_lr` and `clr.max_lr` or a `range_test` to run first"),
        ("/trainings", GOOD_TRAINING | {"dataset": {"id": "../../etc/passwd"}}, "id", "pattern"),
        ("/trainings", GOOD_TRAINING | {"schedule": ONE_CYCLE}, "body", "exactly one of `clr` and `schedule`"),
        ("/trainings", WITH_SCHEDULE | {"epochs": None, "cycles": 2}, "body", "`cycles` is for `clr`"),
        ("/trainings", WITH_SCHEDULE | {"schedule": {"policy": "one_cycle"}}, "body", "`schedule.max_lr`, a `range_test_id`"),
        ("/trainings", WITH_SCHEDULE | {"schedule": {"policy": "sgdr"}}, "schedule", "'one_cycle', 'cosine_restarts'"),
        ("/trainings", WITH_SCHEDULE | {"schedule": ONE_CYCLE | {"pct_start": 1.5}}, "pct_start", "less than 1"),
        ("/trainings", with_clr(cycle_momentum=True, base_momentum=0.95), "clr",
         "`base_momentum` must be < `max_momentum`. Received: base_momentum=0.95, max_momentum=0.9"),
        ("/trainings", WITH_SCHEDULE | {"schedule": ONE_CYCLE | {"max_momentum": 1.0}}, "max_momentum", "less than 1"),
        ("/trainings", WITH_SCHEDULE | {"schedule": {"policy": "cosine_restarts", "initial_lr": 0.1}},
         "cosine_restarts", "exactly one of `first_decay_steps`"),
        ("/range-tests", GOOD_RANGE_TEST | {"start_lr": 1.0, "end_lr": 0.1}, "body", "`start_lr` must be < `end_lr`"),
        ("/range-tests", GOOD_RANGE_TEST | {"sweep": "cubic"}, "sweep", "'exponential' or 'linear'"),
        ("/range-tests", GOOD_RANGE_TEST | {"iterations": 100}, "body", "at most one of `epochs` and `iterations`"),
        ("/range-tests", GOOD_RANGE_TEST | {"stop_factor": 0.5}, "stop_factor", "greater than 1"),
        ("/range-tests", GOOD_RANGE_TEST | {"beta": 1.0}, "beta", "less than 1"),
        ("/range-tests", GOOD_RANGE_TEST | {"end_lr": float("nan")}, "end_lr", "finite number"),
        ("/comparisons", {"training": WITH_SCHEDULE | {"schedule": None}, "arms": [{"name": "a", "clr": {}}]},
         "schedule", "Extra inputs"),
        ("/comparisons", COMPARISON | {"arms": [FIXED_ARM, FIXED_ARM]}, "body", "`arms` must be distinct"),
        ("/comparisons", COMPARISON | {"arms": [FIXED_ARM, {"name": "clr", "clr": {"step_size": 5}}]}, "body",
         "`arms[1]` (clr) is no training"),
        ("/comparisons", COMPARISON | {"seeds": list(range(8)), "arms": [FIXED_ARM | {"name": str(i)} for i in range(5)]},
         "body", "is more than 32 trainings"),
        ("/comparisons", COMPARISON | {"arms": []}, "arms", "at least 1 item"),
        ("/schedules/preview", {"clr": {"base_lr": 1, "max_lr": 2, "step_size": 0}, "iterations": 5}, "step_size", "greater than or equal to 1"),
        ("/schedules/preview", {"clr": {"base_lr": 1, "max_lr": 2, "step_size": 4}, "iterations": 10**9}, "iterations", "less"),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(client, store, path, body, field, text):
    jobs_before = store.redis.zcard("clr:jobs")
    response = post_raw(client, path, body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(field in [str(part) for part in item["loc"]] + [item["msg"]] for item in detail), detail
    assert text in response.text
    assert store.redis.zcard("clr:jobs") == jobs_before


@pytest.mark.parametrize("raw", [b"{", b"[]", b"", b"null", "{\"batch_size\": \"\u00e9\"}".encode()])
def test_malformed_json_is_a_422_not_a_500(client, raw):
    response = client.post("/trainings", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text


def test_unknown_ids_are_404_and_unfinished_range_tests_409(client, store):
    assert client.get("/jobs/nope").status_code == 404
    assert client.get(f"/jobs/{'0' * 32}/curves").status_code == 404
    assert client.post(f"/jobs/{'0' * 32}/cancel").status_code == 404
    response = client.post("/trainings", json=GOOD_TRAINING | {"clr": {"step_size": 10}, "range_test_id": "a" * 32})
    assert response.status_code == 404 and "range_test_id" in response.text
    queued = store.create("range_test", GOOD_RANGE_TEST)  # a record with no task behind it stays queued
    response = client.post("/trainings", json=GOOD_TRAINING | {"clr": {"step_size": 10}, "range_test_id": queued})
    assert response.status_code == 409 and "is queued, not succeeded" in response.text
    response = client.post("/trainings", json=GOOD_TRAINING | {"dataset": {"id": "b" * 32}})
    assert response.status_code == 422 and "dataset.id" in response.text
    assert client.delete(f"/jobs/{queued}").status_code == 409
    assert client.post(f"/jobs/{queued}/cancel").json()["state"] == "cancelled"
    assert client.post(f"/jobs/{queued}/cancel").status_code == 409
    assert client.delete(f"/jobs/{queued}").status_code == 204
    assert client.get(f"/jobs/{queued}").status_code == 404


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("payload", "status", "text"),
    [
        (npz_bytes(x_train=np.zeros((4, 8, 8)), y_train=np.zeros(4, np.int64)), 201, "train_samples"),
        (npz_bytes(x_train=np.zeros((4, 8, 8))), 422, "lacks `y_train`"),
        (npz_bytes(x_train=np.zeros((4, 8, 8)), y_train=np.zeros(3, np.int64)), 422, "one label (row) per sample"),
        (npz_bytes(x_train=np.zeros((4, 8, 8)), y_train=np.array([0, 1, np.nan, 2])), 422, "`y_train` holds 1 NaN"),
        (npz_bytes(x_train=np.zeros((4, 8, 8)), y_train=np.array(list("abcd"))), 422, "`y_train` holds <U1"),
        (npz_bytes(x_train=np.array([{"a": 1}] * 4, dtype=object), y_train=np.zeros(4, np.int64)), 422, "pickle"),
        (b"PK\x03\x04 not really a zip", 422, "file"),
        (npz_bytes(x_train=np.zeros((400, 28, 28)), y_train=np.zeros(400, np.int64)), 413, "exceeds the limit"),
    ],
)
def test_dataset_uploads(client, payload, status, text):
    response = client.post("/datasets", files={"file": ("data.npz", payload)})
    assert response.status_code == status, response.text
    assert text in response.text
    if status == 201:
        assert response.json()["id"] in {d["id"] for d in client.get("/datasets").json()["uploaded"]}


def test_schedule_preview_is_the_numpy_schedule(client):
    from clr.schedules import cyclical_lr

    body = {"clr": {"base_lr": 0.001, "max_lr": 0.006, "step_size": 20, "mode": "exp_range", "gamma": 0.99,
                    "shape": "sinusoidal"}, "iterations": 200}
    preview = client.post("/schedules/preview", json=body).json()
    assert preview["iteration"] == list(range(200))
    expected = cyclical_lr(0.001, 0.006, 20, "exp_range", 0.99, "sinusoidal")(np.arange(200))
    np.testing.assert_allclose(preview["lr"], expected, rtol=1e-12)


def test_a_constant_rate_previews_as_one_value_and_is_given_not_taken_from_a_range_test(client):
    preview = client.post("/schedules/preview", json={"schedule": {"policy": "constant", "lr": 0.03},
                                                       "iterations": 50}).json()
    assert preview["lr"] == [pytest.approx(0.03)] * 50 and preview["momentum"] is None
    from_range_test = GOOD_TRAINING | {"clr": None, "schedule": {"policy": "constant"}, "range_test_id": "a" * 32}
    refused = client.post("/trainings", json=from_range_test)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "schedule", "constant", "lr"]


def test_schedule_preview_with_a_dataset_gives_smiths_advice(client):
    body = {"clr": {"base_lr": 0.001, "max_lr": 0.006, "step_size": 45}, "iterations": 200,
            "dataset": {"name": "digits"}, "batch_size": 32}
    preview = client.post("/schedules/preview", json=body).json()
    assert preview["iterations_per_epoch"] == 45 and len(preview["warnings"]) == 2
    assert "step_size=45 is 1 epochs" in preview["warnings"][0] and "mid-cycle" in preview["warnings"][1]
    advised = body | {"clr": {"base_lr": 0.001, "max_lr": 0.006, "step_size": 90}, "iterations": 360}
    assert client.post("/schedules/preview", json=advised).json()["warnings"] == []
    unknown = body | {"dataset": {"id": "c" * 32}}
    assert client.post("/schedules/preview", json=unknown).status_code == 422


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"epochs": 2, "clr": {"base_lr": 0.001, "max_lr": 0.01, "step_size_epochs": 1}}, ["Smith recommends 2 to 10"]),
        ({"epochs": 3}, ["ends mid-cycle, at iteration 69 of cycles of 92 iterations"]),
        ({}, []),
        ({"epochs": None, "cycles": 1}, []),
    ],
    ids=["step size of 1 epoch", "epochs ending mid-cycle", "correct", "cycles"],
)
def test_trainings_get_smiths_advice_at_submit_time(client, changes, expected):
    body = {key: value for key, value in (GOOD_TRAINING | changes).items() if value is not None}
    response = client.post("/trainings", json=body)
    assert response.status_code == 202, response.text
    warnings = response.json()["warnings"]
    assert len(warnings) == len(expected) and all(text in w for text, w in zip(expected, warnings, strict=True))
    assert client.post(f"/jobs/{response.json()['id']}/cancel").status_code == 202


def test_openapi_has_an_example_for_every_body(client):
    spec = client.get("/openapi.json").json()
    for path in ("/range-tests", "/trainings", "/schedules/preview"):
        examples = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"]
        assert examples
    assert client.get("/docs").status_code == 200


def test_job_listing_filters_and_paginates(client, store):
    ids = [store.create("training", GOOD_TRAINING) for _ in range(3)]
    page = client.get("/jobs", params={"kind": "training", "state": "queued", "limit": 2}).json()
    assert page["limit"] == 2 and len(page["jobs"]) == 2 and page["total"] >= 3
    assert all(job["kind"] == "training" and job["state"] == "queued" for job in page["jobs"])
    assert page["jobs"][0]["id"] == ids[-1]  # newest first
    assert client.get("/jobs", params={"state": "exploded"}).status_code == 422
    for job_id in ids:
        client.post(f"/jobs/{job_id}/cancel")
        client.delete(f"/jobs/{job_id}")


def finished_range_test(store, result: dict) -> str:
    """A range-test record ended `succeeded` with `result`, as a worker would leave it."""
    job_id = store.create("range_test", GOOD_RANGE_TEST)
    claim = store.claim(job_id, "test:1", 3, 60.0, False)
    assert claim.outcome == "claimed" and store.finish(job_id, claim.attempts, "succeeded", result=result)
    return job_id


def test_a_low_confidence_range_test_is_refused_as_bounds_unless_accepted(client, store):
    bounds = suggest_bounds(*synthetic_range_test(50, 0.1, 1)).as_dict()
    assert bounds["confidence"] == "low"
    body = {key: value for key, value in GOOD_TRAINING.items() if key != "clr"} | {"clr": {"step_size": 10}}
    low = finished_range_test(store, {"suggested_bounds": bounds})
    response = client.post("/trainings", json=body | {"range_test_id": low})
    assert response.status_code == 409 and "low confidence" in response.text and "points per decade" in response.text
    assert "accept_low_confidence" in response.text
    accepted = client.post("/trainings", json=body | {"range_test_id": low, "accept_low_confidence": True})
    assert accepted.status_code == 202, accepted.text
    assert client.post(f"/jobs/{accepted.json()['id']}/cancel").status_code == 202

    none = finished_range_test(store, {"suggested_bounds": None, "warning": "No bounds suggested: run more iterations"})
    response = client.post("/trainings", json=body | {"range_test_id": none, "accept_low_confidence": True})
    assert response.status_code == 409
    assert "suggested no bounds: No bounds suggested: run more iterations" in response.text


def test_curve_requests_at_the_edges_answer_instead_of_failing(client, store):
    job_id = store.create("training", GOOD_TRAINING)
    attempt = store.claim(job_id, "test:1", 3, 60.0, False).attempts
    losses = np.linspace(2.0, 1.0, 50)
    losses[30:] = np.nan
    store.report(job_id, attempt, 0, np.full(50, 0.01), losses)
    for max_points in (4, 5, 6):
        curves = client.get(f"/jobs/{job_id}/curves", params={"max_points": max_points})
        assert curves.status_code == 200, curves.text
        kept = curves.json()["iteration"]
        assert len(kept) <= max_points and {0, 30, 49} <= set(kept)  # the ends and the divergence point
    assert client.get(f"/jobs/{job_id}/curves", params={"since": 2**60}).status_code == 422
    assert client.get(f"/jobs/{job_id}/curves", params={"since": 2**40}).json()["iteration"] == []


@pytest.mark.parametrize(
    ("arrays", "status", "text"),
    [
        ({"x_test": np.zeros((0, 8, 8)), "y_test": np.zeros(0, np.int64)}, 422, "`x_test` holds no samples"),
        ({"x_test": np.zeros((4, 9, 9)), "y_test": np.zeros(4, np.int64)}, 422, "shape of `x_train`'s"),
    ],
    ids=["empty test set", "test samples of another shape"],
)
def test_uploads_with_a_bad_test_set_are_refused_and_leave_no_file(client, service, arrays, status, text):
    files_before = set((service.data_dir / "datasets").glob("*"))
    payload = npz_bytes(x_train=np.zeros((4, 8, 8)), y_train=np.zeros(4, np.int64), **arrays)
    response = client.post("/datasets", files={"file": ("data.npz", payload)})
    assert response.status_code == status and text in response.text
    assert set((service.data_dir / "datasets").glob("*")) == files_before


def test_an_archive_that_unpacks_past_the_limit_is_refused_before_loading(client):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=np.zeros((1000, 28, 28)), y_train=np.zeros(1000, np.int64))  # 6.3 MB unpacked
    assert len(buffer.getvalue()) < 300_000
    response = client.post("/datasets", files={"file": ("zeros.npz", buffer.getvalue())})
    assert response.status_code == 413 and "unpacks to" in response.text


def test_schedule_preview_of_the_other_policies_is_their_numpy_oracle(client):
    from clr.policies import cosine_restarts_lr, cyclical_momentum, one_cycle_lr, one_cycle_momentum

    body = {"schedule": {"policy": "one_cycle", "max_lr": 0.1, "three_phase": True}, "iterations": 300}
    preview = client.post("/schedules/preview", json=body).json()
    np.testing.assert_allclose(preview["lr"], one_cycle_lr(0.1, 300, three_phase=True)(np.arange(300)), rtol=1e-12)
    assert preview["momentum"] == one_cycle_momentum(300, three_phase=True)(np.arange(300)).tolist()
    cyclical = {"clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 20, "cycle_momentum": True}, "iterations": 100}
    preview = client.post("/schedules/preview", json=cyclical).json()
    assert preview["momentum"] == cyclical_momentum(0.8, 0.9, 20)(np.arange(100)).tolist()
    fixed = {"schedule": {"policy": "one_cycle", "max_lr": 0.1, "cycle_momentum": False}, "iterations": 300}
    assert client.post("/schedules/preview", json=fixed).json()["momentum"] is None
    sgdr = {"policy": "cosine_restarts", "initial_lr": 0.05, "first_decay_epochs": 2, "t_mul": 1.0}
    refused = client.post("/schedules/preview", json={"schedule": sgdr, "iterations": 300})
    assert refused.status_code == 422 and "needs the data's epoch length" in refused.text
    with_data = {"schedule": sgdr, "iterations": 300, "dataset": {"name": "digits"}, "batch_size": 32}
    preview = client.post("/schedules/preview", json=with_data).json()
    np.testing.assert_allclose(preview["lr"], cosine_restarts_lr(0.05, 90, t_mul=1.0)(np.arange(300)), rtol=1e-12)
    unpriced = {"schedule": {"policy": "one_cycle"}, "iterations": 300}
    assert client.post("/schedules/preview", json=unpriced).status_code == 422
