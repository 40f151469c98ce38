"""Hostile inputs, round three: each is a 4xx naming the field and the value, never a 500; a refused chunked
`finish` leaves the upload as it was; `/health` names no host; every answer carries the browser hardening headers."""

import io
import json
import os
import shutil
import warnings
import zipfile

import httpx
import numpy as np
import pytest

from api.examples import TRAINING_EXAMPLES
from clr_service.stack import free_port, start_api, stop

pytestmark = pytest.mark.slow

GOOD_TRAINING = TRAINING_EXAMPLES["bounds"]["value"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def zipped(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def npz(**arrays: np.ndarray) -> bytes:
    return zipped(**{f"{name}.npy": npy(array) for name, array in arrays.items()})


def upload_npz(client, payload: bytes):
    return client.post("/datasets", files={"file": ("data.npz", payload)})


def post_json(client, path: str, body: bytes, content_type: str = "application/json"):
    return client.post(path, content=body, headers={"content-type": content_type})


@pytest.fixture
def upload(client) -> str:
    started = client.post("/datasets/uploads")
    assert started.status_code == 201, started.text
    return started.json()["id"]


def put(client, upload: str, name: str, array: np.ndarray, offset: int = 0):
    return client.put(f"/datasets/uploads/{upload}/arrays/{name}", params={"offset": offset}, content=npy(array))


X = np.zeros((4, 3, 3), np.float32)


@pytest.mark.parametrize(("y", "text"), [
    (np.array([0, 1, 2, 2**40]), "`y_train` holds class 1099511627776; classes are 0 to 99999"),
    (np.arange(4) + 1j, "`y_train` holds complex128"),
    (np.arange(4).astype("m8[s]"), "`y_train` holds timedelta64[s]"),
    (np.arange(4).astype("M8[D]"), "`y_train` holds datetime64[D]"),
], ids=["class 2**40", "complex", "timedelta", "datetime"])
def test_labels_that_are_no_classes_or_no_real_numbers_are_refused_at_upload(client, y, text):
    response = upload_npz(client, npz(x_train=X, y_train=y))
    assert response.status_code == 422 and text in response.text, response.text


def test_the_largest_class_allowed_is_accepted(client):
    response = upload_npz(client, npz(x_train=X, y_train=np.array([0, 1, 2, 99_999])))
    assert response.status_code == 201 and response.json()["num_classes"] == 100_000, response.text


def test_a_chunked_upload_with_a_class_past_the_limit_fails_its_finish(client, upload):
    assert put(client, upload, "x_train", X).status_code == 200
    assert put(client, upload, "y_train", np.array([0, 1, 2, 2**40])).status_code == 200
    refused = client.post(f"/datasets/uploads/{upload}/finish")
    assert refused.status_code == 422 and "`y_train` holds class 1099511627776" in refused.text, refused.text


@pytest.mark.parametrize(("part", "dtype"), [
    (np.arange(4).astype("m8[s]"), "timedelta64[s]"), (np.arange(4).astype("M8[D]"), "datetime64[D]"),
    (np.arange(4) + 1j, "complex128")], ids=["timedelta", "datetime", "complex"])
def test_a_part_that_holds_no_real_numbers_is_refused_and_the_upload_still_finishes(client, upload, part, dtype):
    assert put(client, upload, "x_train", X).status_code == 200
    refused = put(client, upload, "y_train", part)
    assert refused.status_code == 422 and "y_train" in refused.text and f"dtype={dtype}" in refused.text, refused.text
    assert put(client, upload, "y_train", np.arange(4)).status_code == 200
    finished = client.post(f"/datasets/uploads/{upload}/finish")
    assert finished.status_code == 201, finished.text


def test_a_refused_finish_leaves_the_upload_as_it_was(client, upload, service):
    staged = service.data_dir / "datasets" / f"{upload}.uploading"
    assert put(client, upload, "x_train", np.zeros((5, 3, 3), np.float32)).status_code == 200
    assert put(client, upload, "y_train", np.arange(4)).status_code == 200
    before = client.get(f"/datasets/uploads/{upload}").json(), sorted(path.name for path in staged.iterdir())
    for _ in range(2):  # a retry fails the same readable way
        refused = client.post(f"/datasets/uploads/{upload}/finish")
        assert refused.status_code == 422 and "`y_train` must hold one label (row) per sample" in refused.text
        assert (client.get(f"/datasets/uploads/{upload}").json(), sorted(p.name for p in staged.iterdir())) == before
    assert put(client, upload, "y_train", np.arange(1), 4).status_code == 200
    finished = client.post(f"/datasets/uploads/{upload}/finish")
    assert finished.status_code == 201 and finished.json()["train_samples"] == 5, finished.text


def keras_json(**top) -> str:
    return json.dumps({"module": "keras", "class_name": "Sequential", "config": {"layers": []}} | top)


NESTED_LIST = keras_json(config={"layers": [{"module": "keras.layers", "class_name": ["Lambda"], "config": {}}]})


@pytest.mark.parametrize(("model", "text"), [
    (keras_json(module=None), "module=None"),
    (keras_json(module=3), "module=3"),
    (keras_json(class_name={"a": 1}), "class_name={'a': 1}"),
    (NESTED_LIST, "class_name=['Lambda']"),
], ids=["module null", "module a number", "class_name a dict", "class_name a list"])
def test_a_keras_config_whose_module_or_class_name_is_no_string_is_refused(client, model, text):
    response = client.post("/trainings", json=GOOD_TRAINING | {"model": {"keras_json": model}})
    assert response.status_code == 422 and "keras_json" in response.text and text in response.text, response.text
    uploaded = client.post("/models", files={"file": ("model.keras", zipped(**{"config.json": model.encode()}))})
    assert uploaded.status_code == 422 and "config.json" in uploaded.text and text in uploaded.text, uploaded.text


@pytest.mark.parametrize("body", [rb'{"batch_size": "\ud800"}', rb'{"\ud800": 1}'], ids=["value", "key"])
def test_a_lone_surrogate_is_echoed_escaped_in_a_422(client, body):
    response = post_json(client, "/trainings", body)
    assert response.status_code == 422, response.text
    assert "\\ud800" in json.dumps(response.json()["detail"], ensure_ascii=False)


@pytest.mark.parametrize("content_type", ["application/vnd.api+json", "Application/JSON",
                                          "application/json; charset=utf-8", "APPLICATION/PROBLEM+JSON"])
def test_deep_json_of_any_json_content_type_is_refused_before_parsing(client, content_type):
    response = post_json(client, "/trainings", b"[" * 900 + b"]" * 900, content_type)
    assert response.status_code == 422 and "JSON nested 900 levels deep" in response.text, response.text


@pytest.mark.parametrize(("members", "text"), [
    ({"x_train.npy": b"not an array at all", "y_train.npy": npy(np.arange(4))}, "`x_train` is not an `.npy` array"),
    ({"x_train.npy": npy(X), "y_train": b"\x93NUMPY\x01\x00garbled"}, "`y_train` is not an `.npy` array"),
], ids=["not npy", "garbled header"])
def test_npz_members_that_are_no_npy_arrays_are_refused_naming_the_member(client, members, text):
    response = upload_npz(client, zipped(**members))
    assert response.status_code == 422 and text in response.text, response.text


def header_declaring(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


def test_an_npy_header_declaring_terabytes_is_refused_before_allocating(client):
    response = upload_npz(client, zipped(**{"x_train.npy": header_declaring((2**40, 3)), "y_train.npy": npy(
        np.arange(4))}))
    assert response.status_code == 422 and "`x_train`" in response.text and "26388279066624 bytes" in response.text


def test_a_registered_path_with_too_long_a_name_is_a_422(client):
    response = client.post("/datasets/registered", json={"path": "a" * 300})
    assert response.status_code == 422 and "path" in response.text and "a" * 300 in response.text, response.text


@pytest.fixture(scope="module")
def without_redis(tmp_path_factory) -> httpx.Client:
    """The API alone, its Redis on a port where nothing listens."""
    port = free_port()
    api = start_api("127.0.0.1", port, os.environ | {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                                                     "CLR_DATA_DIR": str(tmp_path_factory.mktemp("no-redis"))})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        stop([api])


def test_health_says_redis_is_unreachable_and_names_no_host(without_redis):
    response = without_redis.get("/health")
    assert response.status_code == 503 and response.json() == {"redis": "unreachable", "workers": []}
    refused = without_redis.get("/jobs", headers={"Authorization": "Bearer anything"})
    assert refused.status_code == 503 and "127.0.0.1" not in refused.text and "unreachable" in refused.text


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc", "/openapi.json", "/static/dashboard/app.js", "/jobs"])
def test_every_answer_carries_the_hardening_headers(without_redis, path):
    headers = without_redis.get(path).headers
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in headers["content-security-policy"]


@pytest.mark.skipif(CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed, so the pages were not "
                                             "checked against the Content-Security-Policy in a browser")
@pytest.mark.parametrize(("path", "rendered"), [
    ("/", "header .brand"), ("/docs", ".swagger-ui .info .title"), ("/redoc", "redoc h1")])
def test_the_pages_render_under_the_content_security_policy(service, path, rendered):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-sandbox"])
        page, refused = browser.new_page(), []
        page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in
                message.text else None)
        page.goto(service.url + path)
        page.wait_for_selector(rendered, timeout=30_000)
        page.wait_for_timeout(500)
        browser.close()
    assert refused == []


def own_activation(x):
    return x


@pytest.mark.parametrize(("activation", "named"), [(lambda x: x, "__lambda__"), (own_activation, "own_activation")],
                         ids=["a lambda", "a function of the user's"])
def test_a_model_whose_layers_call_code_of_its_own_is_refused_before_any_job_fails_on_it(client, tmp_path,
                                                                                          activation, named):
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation=activation)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that a lambda will not load in safe mode: the point here
        model.save(tmp_path / "own.keras")
        model_json = model.to_json()
    uploaded = client.post("/models", files={"file": ("own.keras", (tmp_path / "own.keras").read_bytes())})
    assert uploaded.status_code == 422 and named in uploaded.text, uploaded.text
    inline = client.post("/trainings", json=GOOD_TRAINING | {"model": {"keras_json": model_json}})
    assert inline.status_code == 422 and named in inline.text, inline.text


def test_a_compiled_model_with_keras_functions_for_its_loss_is_accepted(client, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation=keras.activations.softmax)])
    model.compile("sgd", keras.losses.sparse_categorical_crossentropy,
                  metrics=[keras.metrics.sparse_categorical_accuracy])
    model.save(tmp_path / "compiled.keras")
    uploaded = client.post("/models", files={"file": ("compiled.keras", (tmp_path / "compiled.keras").read_bytes())})
    assert uploaded.status_code == 201, uploaded.text
    assert client.delete(f"/models/{uploaded.json()['id']}").status_code == 204
