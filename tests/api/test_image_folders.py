"""A folder of images uploaded as a zip on the real stack: the broken files listed as set aside, the mislabelled one
kept, the arrays stored as an `.npz` whose bytes the quota counts, and a training on it."""

import io
import time
import zipfile

import pytest
import redis

from api.keys import ApiKey, KeyStore
from clr_service.client import Client
from tests.helpers import image_bytes, image_folder_zip, wait_for_state

pytestmark = pytest.mark.slow


def test_an_image_folder_uploads_with_its_broken_files_set_aside_and_trains(service, store):
    keys = KeyStore(redis.Redis.from_url(service.redis_url))
    name = f"images-{time.monotonic_ns()}"
    with service.client(keys.create(ApiKey(name))) as client:
        answer = client.post("/datasets", params={"image_size": 16, "color_mode": "rgb"},
                             files={"file": ("pets.zip", image_folder_zip(per_class=24))})
        assert answer.status_code == 201, answer.text
        dataset = answer.json()
        assert dataset["class_names"] == ["bright", "dark"] and dataset["num_classes"] == 2
        assert {entry["path"] for entry in dataset["quarantined"]} == {"train/dark/truncated.jpg",
                                                                       "train/bright/notes.jpg"}
        assert dataset["mislabelled"] == [{"path": "train/bright/actually_png.jpg", "format": "PNG"}]
        assert (dataset["train_samples"], dataset["test_samples"], dataset["input_shape"]) == (49, 16, [16, 16, 3])
        stored = service.data_dir / "datasets" / f"{dataset['id']}.npz"
        assert dataset["bytes"] == stored.stat().st_size == store.tenants.usage(name)

        body = {"model": {"architecture": "seed_cnn"}, "dataset": {"id": dataset["id"]},
                "optimizer": {"name": "sgd", "momentum": 0.9}, "batch_size": 8, "epochs": 3,
                "schedule": {"policy": "one_cycle", "max_lr": 0.05}, "seed": 0}
        job = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"})
        assert job["state"] == "succeeded", job["error"]
        assert job["result"]["iterations"] == 3 * 7 and 0 <= job["result"]["test_accuracy"] <= 1
        assert job["result"]["class_names"] == ["bright", "dark"]  # the model's output i is class_names[i]

        assert client.delete(f"/jobs/{job['id']}").status_code == 204
        assert client.delete(f"/datasets/{dataset['id']}").status_code == 204
        assert store.tenants.usage(name) == 0 and not stored.exists()


@pytest.mark.parametrize(("member", "text"), [("../escape.png", "leaves the archive"),
                                              ("train/x/../../escape.png", "leaves the archive")])
def test_a_hostile_image_zip_is_refused_naming_the_member_and_leaves_nothing(client, service, member, text):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("train/a/fine.png", image_bytes(10, "PNG"))
        archive.writestr(member, image_bytes(20, "PNG"))
    before = set((service.data_dir / "datasets").glob("*"))
    answer = client.post("/datasets", params={"image_size": 8}, files={"file": ("x.zip", buffer.getvalue())})
    assert answer.status_code == 422 and text in answer.json()["detail"] and member in answer.json()["detail"]
    assert set((service.data_dir / "datasets").glob("*")) == before


def test_a_zip_of_images_without_image_size_is_refused_as_no_npz(client):
    answer = client.post("/datasets", files={"file": ("pets.zip", image_folder_zip(per_class=2, broken=False))})
    assert answer.status_code == 422 and answer.json()["detail"].startswith("file: ")


def test_the_client_uploads_a_larger_zip_in_parts_and_the_quota_counts_its_arrays(service, store, tmp_path):
    keys = KeyStore(redis.Redis.from_url(service.redis_url))
    name = f"parts-{time.monotonic_ns()}"
    archive = tmp_path / "pets.zip"
    archive.write_bytes(image_folder_zip(per_class=24))
    with Client(service.url, keys.create(ApiKey(name))) as client:
        dataset = client.upload_dataset(archive, image_size=16, part_bytes=archive.stat().st_size // 3 + 1)
        assert dataset["filename"] == "(chunked upload)" and dataset["class_names"] == ["bright", "dark"]
        assert (dataset["train_samples"], dataset["test_samples"], dataset["input_shape"]) == (49, 16, [16, 16, 3])
        stored = service.data_dir / "datasets" / f"{dataset['id']}.npz"
        assert dataset["bytes"] == stored.stat().st_size == store.tenants.usage(name)  # the arrays', not the zip's
        assert not (service.data_dir / "datasets" / f"{dataset['id']}.uploading").exists()
        client.http.delete(f"/datasets/{dataset['id']}").raise_for_status()
        assert store.tenants.usage(name) == 0
