"""Chunked uploads on the shared service (parts up to 300,000 bytes, arrays up to 3,000,000): parts in order,
resumable, each checked, nothing left behind by a refused one."""

import io
import time

import numpy as np
import pytest
import redis

from api.keys import ApiKey, KeyStore


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@pytest.fixture
def upload(client) -> str:
    started = client.post("/datasets/uploads")
    assert started.status_code == 201, started.text
    return started.json()["id"]


def put(client, upload: str, name: str, array: np.ndarray, offset: int):
    return client.put(f"/datasets/uploads/{upload}/arrays/{name}", params={"offset": offset}, content=npy(array))


def test_parts_append_in_order_and_a_repeated_part_is_not_added_twice(client, upload, service):
    x = np.random.default_rng(0).random((300, 8, 8)).astype(np.float32)
    assert put(client, upload, "x_train", x[:200], 0).status_code == 200
    repeated = put(client, upload, "x_train", x[:200], 0)
    assert repeated.status_code == 409 and "x_train holds 200 rows" in repeated.text
    assert client.get(f"/datasets/uploads/{upload}").json()["arrays"]["x_train"]["shape"] == [200, 8, 8]
    assert put(client, upload, "x_train", x[200:], 200).status_code == 200
    assert put(client, upload, "y_train", np.arange(300) % 10, 0).status_code == 200
    dataset = client.post(f"/datasets/uploads/{upload}/finish")
    assert dataset.status_code == 201, dataset.text
    meta = dataset.json()
    assert meta["id"] == upload and meta["train_samples"] == 300 and meta["input_shape"] == [8, 8, 1]
    assert meta["num_classes"] == 10
    assert upload in {d["id"] for d in client.get("/datasets").json()["uploaded"]}
    folder = service.data_dir / "datasets" / upload
    assert np.array_equal(np.load(folder / "x_train.npy"), x) and sorted(p.name for p in folder.iterdir()) == [
        "x_train.npy", "y_train.npy"]
    assert client.get(f"/datasets/uploads/{upload}").status_code == 404  # finished: a dataset now


@pytest.mark.parametrize(("array", "status", "text"), [
    (np.zeros((10, 8, 9), np.float32), 422, "parts before held <f4 rows of shape (8, 8)"),
    (np.zeros((10, 8, 8), np.float64), 422, "parts before held <f4"),
    (np.array([{"a": 1}] * 3, dtype=object), 422, "not one `.npy` array without pickles"),
    (np.zeros((1200, 8, 8), np.float32), 413, "exceeds the limit"),
])
def test_a_part_that_does_not_fit_is_refused_and_not_kept(client, upload, service, array, status, text):
    assert put(client, upload, "x_train", np.zeros((5, 8, 8), np.float32), 0).status_code == 200
    refused = put(client, upload, "x_train", array, 5)
    assert refused.status_code == status and text in refused.text, refused.text
    assert client.get(f"/datasets/uploads/{upload}").json()["arrays"]["x_train"]["shape"] == [5, 8, 8]
    staged = sorted(p.name for p in (service.data_dir / "datasets" / f"{upload}.uploading").iterdir())
    assert staged == ["x_train.00000.npy"]


def test_arrays_that_do_not_fit_together_fail_the_finish_and_keep_the_upload_till_abandoned(client, upload, service):
    put(client, upload, "x_train", np.zeros((5, 8, 8), np.float32), 0)
    put(client, upload, "y_train", np.zeros(4, np.int64), 0)
    finish = client.post(f"/datasets/uploads/{upload}/finish")
    assert finish.status_code == 422 and "`y_train` must hold one label (row) per sample" in finish.text
    assert "the upload is kept as it was" in finish.text
    assert client.get(f"/datasets/uploads/{upload}").json()["arrays"]["y_train"]["shape"] == [4]
    assert client.delete(f"/datasets/uploads/{upload}").status_code == 204
    assert not (service.data_dir / "datasets" / f"{upload}.uploading").exists()


def test_an_upload_is_its_owners_only_and_abandoning_it_frees_its_bytes(service, upload):
    keys = KeyStore(redis.Redis.from_url(service.redis_url))
    name = f"uploader-{time.monotonic_ns()}"
    with service.client(keys.create(ApiKey(name))) as owner, service.client(
            keys.create(ApiKey(f"stranger-{time.monotonic_ns()}"))) as stranger:
        own = owner.post("/datasets/uploads").json()["id"]
        assert put(owner, own, "x_train", np.zeros((5, 8, 8), np.float32), 0).status_code == 200
        assert keys.redis.get(f"clr:usage:{name}") is not None and int(keys.redis.get(f"clr:usage:{name}")) > 0
        for call in (stranger.get(f"/datasets/uploads/{own}"), put(stranger, own, "x_train", np.zeros((5, 8, 8)), 5),
                     stranger.post(f"/datasets/uploads/{own}/finish"), stranger.delete(f"/datasets/uploads/{own}")):
            assert call.status_code == 404
        assert owner.delete(f"/datasets/uploads/{own}").status_code == 204
        assert int(keys.redis.get(f"clr:usage:{name}")) == 0
        assert not (service.data_dir / "datasets" / f"{own}.uploading").exists()
