"""Hostile inputs, round three, on the real stack: parallel uploads cannot pass a storage quota together, a body
without a valid key is refused before the service reads it, a revoked key loses the event stream it holds, and
deleting an upload gives its bytes back (never while a job uses it)."""

import http.client
import io
import json
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import numpy as np
import pytest
import redis

from api.keys import ApiKey, KeyStore
from api.examples import TRAINING_EXAMPLES
from clr.config import TrainingSpec
from worker.storage import Storage

pytestmark = pytest.mark.slow

QUOTA_MB = 1
PARALLEL_UPLOADS = 20
DECLARED_BYTES = 300_000  # within the upload limit of the tests' service: only the key refuses it
FIRST_CHUNK = b"0" * 2**14
ANSWER_WITHIN_S = 5  # the 401 comes this soon although most of the body is never sent
STREAM_ENDS_WITHIN_S = 5
MULTIPART = "multipart/form-data; boundary=b"
FILE_PART = b'--b\r\nContent-Disposition: form-data; name="file"; filename="d.npz"\r\n\r\n'


@pytest.fixture
def keys(service) -> KeyStore:
    return KeyStore(redis.Redis.from_url(service.redis_url))


def new_key(keys: KeyStore, name: str, **limits) -> tuple[str, str]:
    """A fresh key's name and token."""
    name = f"{name}-{time.monotonic_ns()}"
    return name, keys.create(ApiKey(name, **limits))


def npz(rows: int = 3000, features: int = 10) -> bytes:
    """A dataset archive: by default about 265 kB, three of which fit in 1 MB."""
    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.random.default_rng(0).random((rows, features)), y_train=np.arange(rows) % 2)
    return buffer.getvalue()


def keras_file() -> bytes:
    """A `.keras` archive holding only its `config.json`: all the API reads of one."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", json.dumps({"module": "keras", "class_name": "Sequential",
                                                    "config": {"layers": []}}))
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def queued_job(store, owner: str, **fields) -> str:
    """A job of tenant `owner` that stays queued (it is never sent to the worker), its spec as the API makes one."""
    spec = TrainingSpec.model_validate(TRAINING_EXAMPLES["bounds"]["value"] | fields).model_dump(mode="json")
    return store.create("training", spec, owner=owner)


def in_parallel(call, items: list) -> list:
    """`call(item)` for every item, each in a thread of its own, all let go at once."""
    start = threading.Barrier(len(items))

    def at_once(item):
        start.wait()
        return call(item)

    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(at_once, items))


def test_parallel_uploads_cannot_pass_the_storage_quota_together(service, keys, store):
    name, token = new_key(keys, "parallel", max_storage_mb=QUOTA_MB)
    payload = npz()
    with service.client(token, timeout=120) as client:
        answers = in_parallel(lambda _: client.post("/datasets", files={"file": ("d.npz", payload)}),
                              list(range(PARALLEL_UPLOADS)))
        listed = client.get("/datasets").json()["uploaded"]
    accepted = [answer.json() for answer in answers if answer.status_code == 201]
    refused = [answer for answer in answers if answer.status_code != 201]
    assert len(accepted) == QUOTA_MB * 2**20 // len(payload), [answer.text for answer in refused]
    assert sum(meta["bytes"] for meta in accepted) <= QUOTA_MB * 2**20
    assert all(answer.status_code == 413 and "max_storage_mb" in answer.json()["detail"] for answer in refused)
    stored = sum((service.data_dir / "datasets" / f"{meta['id']}.npz").stat().st_size for meta in accepted)
    assert store.tenants.usage(name) == stored == sum(meta["bytes"] for meta in listed)
    assert {meta["id"] for meta in listed} == {meta["id"] for meta in accepted}


def test_parallel_parts_cannot_pass_the_storage_quota_together(service, keys, store):
    name, token = new_key(keys, "parallel-parts", max_storage_mb=QUOTA_MB)
    part = npy(np.zeros(30_000))  # 240 kB: four fit in 1 MB
    with service.client(token, timeout=120) as client:
        uploads = [client.post("/datasets/uploads").json()["id"] for _ in range(PARALLEL_UPLOADS)]
        answers = in_parallel(lambda upload: client.put(f"/datasets/uploads/{upload}/arrays/x_train",
                                                        params={"offset": 0}, content=part), uploads)
    refused = [answer for answer in answers if answer.status_code != 200]
    assert len(answers) - len(refused) == QUOTA_MB * 2**20 // len(part), [answer.text for answer in refused]
    assert all(answer.status_code == 413 and answer.json()["detail"].startswith("x_train: ") and "max_storage_mb" in
               answer.json()["detail"] for answer in refused)
    staged = [path for upload in uploads for path in (service.data_dir / "datasets" / f"{upload}.uploading").iterdir()]
    assert store.tenants.usage(name) == sum(path.stat().st_size for path in staged) == len(staged) * len(part)


@pytest.mark.parametrize(("method", "path", "content_type", "first_bytes"), [
    ("POST", "/datasets", MULTIPART, FILE_PART + FIRST_CHUNK),
    ("POST", "/models", MULTIPART, FILE_PART + FIRST_CHUNK),
    ("PUT", f"/datasets/uploads/{'0' * 32}/arrays/x_train?offset=0", "application/octet-stream", FIRST_CHUNK),
    ("POST", "/trainings", "application/json", b'{"model": "' + FIRST_CHUNK),
], ids=["dataset", "model", "chunked part", "json"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-key"], ids=["no key", "unknown key"])
def test_a_body_without_a_valid_key_is_refused_before_the_service_reads_it(service, method, path, content_type,
                                                                            first_bytes, framing, authorization):
    """Only the headers and the first 16 kB of a body that is declared much longer (or streamed chunked, as a 50 MB
    upload would be) are sent: the 401 comes without the rest."""
    address = urlsplit(service.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=ANSWER_WITHIN_S)
    connection.putrequest(method, path)
    connection.putheader("Content-Type", content_type)
    if authorization:
        connection.putheader("Authorization", authorization)
    if framing == "chunked":
        connection.putheader("Transfer-Encoding", "chunked")
        first_bytes = b"%x\r\n%s\r\n" % (len(first_bytes), first_bytes)  # no last chunk: more would follow
    else:
        connection.putheader("Content-Length", str(DECLARED_BYTES))
    try:
        connection.endheaders(first_bytes)
        answer = connection.getresponse()
        assert (answer.status, answer.getheader("WWW-Authenticate")) == (401, "Bearer")
        assert json.loads(answer.read())["detail"].startswith("Authorization: ")
    finally:
        connection.close()


def test_a_revoked_key_loses_the_event_stream_it_holds(service, keys, store):
    name, token = new_key(keys, "watcher")
    job_id = queued_job(store, name)
    try:
        with service.client(token) as watcher, watcher.stream("GET", f"/jobs/{job_id}/events") as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            next(line for line in lines if '"state": "queued"' in line)
            keys.revoke(name)
            revoked_at, after = time.monotonic(), []
            for line in lines:  # keep-alive pings come every second
                assert time.monotonic() - revoked_at < STREAM_ENDS_WITHIN_S, f"the stream goes on: {after}"
                after.append(line)
        assert "event: error" in after and any("the API key was revoked" in line for line in after), after
    finally:
        store.delete(job_id)


def test_deleting_uploads_gives_their_bytes_back_to_the_quota(service, keys, store):
    name, token = new_key(keys, "deleter", max_storage_mb=0.3)  # room for one dataset of 265 kB and little else
    payload = npz()
    with service.client(token) as owner:
        dataset = owner.post("/datasets", files={"file": ("d.npz", payload)}).json()
        assert owner.post("/datasets", files={"file": ("d.npz", payload)}).status_code == 413
        model = owner.post("/models", files={"file": ("m.keras", keras_file())}).json()
        upload = owner.post("/datasets/uploads").json()["id"]
        for array, values in (("x_train", np.zeros((10, 4), np.float32)), ("y_train", np.arange(10) % 2)):
            assert owner.put(f"/datasets/uploads/{upload}/arrays/{array}", params={"offset": 0},
                             content=npy(values)).status_code == 200
        chunked = owner.post(f"/datasets/uploads/{upload}/finish").json()
        assert store.tenants.usage(name) == dataset["bytes"] + model["bytes"] + chunked["bytes"] > 0
        files = [service.data_dir / "datasets" / f"{dataset['id']}.npz", service.data_dir / "models" /
                 f"{model['id']}.keras", service.data_dir / "datasets" / upload]
        assert all(path.exists() for path in files)
        for path in (f"/datasets/{dataset['id']}", f"/models/{model['id']}", f"/datasets/{upload}"):
            assert owner.delete(path).status_code == 204
            assert owner.delete(path).status_code == 404  # its bytes are given back once
        assert store.tenants.usage(name) == 0 and not any(path.exists() for path in files)
        assert owner.get("/datasets").json()["uploaded"] == owner.get("/models").json()["uploaded"] == []
        assert owner.post("/datasets", files={"file": ("d.npz", payload)}).status_code == 201  # the room is free


def test_another_tenants_upload_is_404_and_an_admin_deletes_it_for_its_owner(service, keys, store):
    alice_name, alice_token = new_key(keys, "alice")
    with service.client(alice_token) as alice, service.client(new_key(keys, "bob")[1]) as bob, \
            service.client() as admin:
        uploads = {"dataset": alice.post("/datasets", files={"file": ("d.npz", npz(40, 4))}).json(),
                   "model": alice.post("/models", files={"file": ("m.keras", keras_file())}).json()}
        stored = store.tenants.usage(alice_name)
        for noun, meta in uploads.items():
            refused, missing = bob.delete(f"/{noun}s/{meta['id']}"), bob.delete(f"/{noun}s/{'f' * 32}")
            assert refused.status_code == missing.status_code == 404  # as if there were none
            assert refused.json()["detail"] == missing.json()["detail"].replace("f" * 32, meta["id"])
        assert store.tenants.usage(alice_name) == stored
        assert alice.get("/models").json()["uploaded"] == [uploads["model"]]
        for noun, meta in uploads.items():
            assert admin.delete(f"/{noun}s/{meta['id']}").status_code == 204
        assert store.tenants.usage(alice_name) == 0


def test_an_upload_a_queued_job_uses_is_409_naming_the_job_until_it_ends(service, keys, store):
    name, token = new_key(keys, "in-use")
    with service.client(token) as owner:
        dataset = owner.post("/datasets", files={"file": ("d.npz", npz(40, 4))}).json()
        model = owner.post("/models", files={"file": ("m.keras", keras_file())}).json()
        job_id = queued_job(store, name, dataset={"id": dataset["id"]}, model={"id": model["id"]})
        paths = {"dataset": f"/datasets/{dataset['id']}", "model": f"/models/{model['id']}"}
        for field, path in paths.items():
            refused = owner.delete(path)
            assert refused.status_code == 409, refused.text
            assert refused.json()["detail"].startswith(f"{field}.id: ") and f"job {job_id!r}, which is queued" in (
                refused.json()["detail"])
        assert owner.post(f"/jobs/{job_id}/cancel").json()["state"] == "cancelled"
        assert all(owner.delete(path).status_code == 204 for path in paths.values())
        assert store.tenants.usage(name) == 0


def test_deleting_a_stored_file_or_folder_removes_its_published_copy(tmp_path):
    url = f"memory://clr-{time.monotonic_ns()}"
    here = Storage(url, tmp_path / "here")
    folder, file = tmp_path / "here" / "datasets" / "a", tmp_path / "here" / "models" / "b.keras"
    folder.mkdir(parents=True)
    file.parent.mkdir()
    (folder / "x_train.npy").write_bytes(b"x")
    file.write_bytes(b"m")
    for path in (folder, file):
        relative = path.relative_to(here.local_root)
        here.publish(path)
        assert Storage(url, tmp_path / "before").fetch(tmp_path / "before" / relative)
        here.delete(path)
        assert not path.exists() and not Storage(url, tmp_path / "after").fetch(tmp_path / "after" / relative)
