"""A zip of class folders too big for one request, uploaded in parts: each part at its byte offset (a part sent twice
is refused, not added twice), then finished with `image_size` into the same dataset a one-request upload makes."""

import io

import numpy as np

from tests.helpers import image_folder_zip


def started(client) -> str:
    response = client.post("/datasets/uploads")
    assert response.status_code == 201, response.text
    return response.json()["id"]


def put_archive(client, upload_id: str, offset: int, part: bytes):
    return client.put(f"/datasets/uploads/{upload_id}/archive", params={"offset": offset}, content=part)


def test_an_image_folder_uploads_in_parts_and_finishes_as_one_upload_would(client):
    archive = image_folder_zip()
    upload_id, third = started(client), len(archive) // 3 + 1
    for offset in range(0, len(archive), third):
        answer = put_archive(client, upload_id, offset, archive[offset:offset + third])
        assert answer.status_code == 200, answer.text
        assert answer.json()["archive_bytes"] == min(offset + third, len(archive))
    again = put_archive(client, upload_id, 0, archive[:third])
    assert again.status_code == 409 and f"the archive holds {len(archive)} bytes" in again.text
    unsized = client.post(f"/datasets/uploads/{upload_id}/finish")
    assert unsized.status_code == 422 and "image_size" in unsized.text

    finished = client.post(f"/datasets/uploads/{upload_id}/finish", params={"image_size": 8})
    assert finished.status_code == 201, finished.text
    whole = client.post("/datasets", params={"image_size": 8}, files={"file": ("pets.zip", archive)})
    assert whole.status_code == 201, whole.text
    chunked, single = finished.json(), whole.json()
    for field in ("class_names", "quarantined", "mislabelled", "train_samples", "test_samples", "input_shape",
                  "labels", "bytes"):
        assert chunked[field] == single[field], field
    assert {entry["path"] for entry in chunked["quarantined"]} == {"train/dark/truncated.jpg",
                                                                   "train/bright/notes.jpg"}
    assert chunked["id"] == upload_id and upload_id in {dataset["id"] for dataset in client.get("/datasets").json()
                                                        ["uploaded"]}


def test_an_archive_goes_in_an_upload_of_its_own(client):
    upload_id = started(client)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 8, 8, 1), np.float32))
    assert client.put(f"/datasets/uploads/{upload_id}/arrays/x_train", params={"offset": 0},
                      content=buffer.getvalue()).status_code == 200
    refused = put_archive(client, upload_id, 0, image_folder_zip()[:100])
    assert refused.status_code == 409 and "holds arrays" in refused.text
    assert client.delete(f"/datasets/uploads/{upload_id}").status_code == 204
