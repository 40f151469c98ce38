"""Keys, tenants and limits on the real stack: nothing is open, no tenant reaches another's work, limits answer
before they are crossed, and no body can make the API fail."""

import io
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import redis

from api.keys import ApiKey, KeyStore
from tests.helpers import wait_for_state

pytestmark = pytest.mark.slow

RANGE_TEST = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
              "batch_size": 128, "epochs": 1}
TRAINING = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
            "batch_size": 128, "epochs": 1, "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 20}}


@pytest.fixture
def keys(service) -> KeyStore:
    return KeyStore(redis.Redis.from_url(service.redis_url))


def new_key(keys: KeyStore, name: str, **limits) -> str:
    return keys.create(ApiKey(f"{name}-{time.monotonic_ns()}", **limits))


def small_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.random.default_rng(0).random((40, 4, 4, 1)), y_train=np.arange(40) % 2)
    return buffer.getvalue()


def test_no_wrong_or_revoked_key_is_401_and_health_and_docs_stay_open(service, keys):
    with service.client("not-a-key") as wrong:
        answer = wrong.get("/jobs")
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert wrong.get("/health").status_code == 200 and wrong.get("/openapi.json").status_code == 200
    with service.client() as admin:
        anonymous = admin.get("/jobs", headers={"Authorization": ""})
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    name = f"revoked-{time.monotonic_ns()}"
    token = keys.create(ApiKey(name))
    with service.client(token) as client:
        assert client.get("/jobs").status_code == 200
        assert keys.revoke(name)
        assert client.get("/jobs").status_code == 401  # at once


def test_two_tenants_see_only_their_own_and_an_admin_sees_both(service, keys):
    with service.client(new_key(keys, "alice")) as alice, service.client(new_key(keys, "bob")) as bob, \
            service.client() as admin:
        range_test = wait_for_state(alice, alice.post("/range-tests", json=RANGE_TEST).json()["id"],
                                    {"succeeded", "failed"})
        job_id = range_test["id"]
        dataset = alice.post("/datasets", files={"file": ("d.npz", small_npz())}).json()
        missing = bob.get(f"/jobs/{'0' * 32}").json()["detail"].replace("0" * 32, job_id)
        for method, path in (("GET", f"/jobs/{job_id}"), ("GET", f"/jobs/{job_id}/curves"),
                             ("GET", f"/jobs/{job_id}/plot.png"), ("GET", f"/jobs/{job_id}/model"),
                             ("POST", f"/jobs/{job_id}/cancel"), ("DELETE", f"/jobs/{job_id}")):
            answer = bob.request(method, path)
            assert (answer.status_code, answer.json()["detail"]) == (404, missing), (method, path)
        as_bounds = bob.post("/trainings", json={**TRAINING, "clr": {"step_size": 20}, "range_test_id": job_id})
        assert as_bounds.status_code == 404
        as_data = bob.post("/range-tests", json={**RANGE_TEST, "dataset": {"id": dataset["id"]}})
        never = bob.post("/range-tests", json={**RANGE_TEST, "dataset": {"id": "f" * 32}})
        assert as_data.status_code == never.status_code == 422
        assert job_id not in [job["id"] for job in bob.get("/jobs").json()["jobs"]]
        assert dataset["id"] not in [d["id"] for d in bob.get("/datasets").json()["uploaded"]]
        assert [job["id"] for job in alice.get("/jobs").json()["jobs"]] == [job_id]
        assert job_id in [job["id"] for job in admin.get("/jobs", params={"limit": 500}).json()["jobs"]]
        assert admin.get(f"/jobs/{job_id}").status_code == 200
        assert dataset["id"] in [d["id"] for d in admin.get("/datasets").json()["uploaded"]]


def test_too_many_active_jobs_and_too_many_requests_are_429_with_retry_after(service, keys):
    with service.client(new_key(keys, "busy", max_active_jobs=1)) as busy:
        first = busy.post("/trainings", json=TRAINING)
        assert first.status_code == 202
        second = busy.post("/trainings", json=TRAINING)
        assert second.status_code == 429 and int(second.headers["retry-after"]) > 0
        assert "max_active_jobs" in second.json()["detail"]
        wait_for_state(busy, first.json()["id"], {"succeeded", "failed"})
        assert busy.post("/trainings", json=TRAINING).status_code == 202  # an ended job frees its place
    with service.client(new_key(keys, "chatty", rate=2)) as chatty:
        answers = [chatty.get("/jobs") for _ in range(6)]
        limited = [answer for answer in answers if answer.status_code == 429]
        assert limited and all(int(answer.headers["retry-after"]) >= 1 for answer in limited)
        time.sleep(1.1)
        assert chatty.get("/jobs").status_code == 200


def test_storage_quota_body_and_upload_limits_are_413(service, keys):
    with service.client(new_key(keys, "small", max_storage_mb=0.008)) as small:  # room for one 5.8 kB upload
        assert small.post("/datasets", files={"file": ("d.npz", small_npz())}).status_code == 201
        over = small.post("/datasets", files={"file": ("d.npz", small_npz())})
        assert over.status_code == 413 and "max_storage_mb" in over.json()["detail"]
    with service.client(new_key(keys, "full", max_storage_mb=0)) as full:
        refused = full.post("/trainings", json=TRAINING)
        assert refused.status_code == 413 and "max_storage_mb" in refused.json()["detail"]
    with service.client() as admin:
        too_big = admin.post("/trainings", content=b"x" * (3 * 2**20), headers={"content-type": "application/json"})
        assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
        upload = admin.post("/datasets", files={"file": ("d.npz", b"0" * 400_000)})
        assert upload.status_code == 413


def test_a_body_larger_than_the_limit_is_refused_before_it_is_sent_whole(service):
    """A chunked body with no length: the 413 comes as soon as the limit is passed."""
    code = (
        "import httpx, sys\n"
        "def body():\n"
        "    for _ in range(400):\n"
        "        yield b'x' * 65536\n"
        f"r = httpx.post('{service.url}/trainings', content=body(), headers={{'Authorization': 'Bearer {service.api_key}', "
        "'content-type': 'application/json'}, timeout=30)\n"
        "print(r.status_code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "413", done.stderr[-2000:]


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,
    '{"model": ' + '{"a": ' * 5_000 + "1" + "}" * 5_000 + "}",
])
def test_deeply_nested_bodies_are_422_naming_the_body(client, body):
    answer = client.post("/trainings", content=body.encode(), headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body"]


def test_a_deeply_nested_keras_json_is_422_naming_the_field(client):
    body = {**TRAINING, "model": {"keras_json": "[" * 100_000 + "]" * 100_000}}
    answer = client.post("/trainings", json=body)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][-1] == "keras_json"
    assert "levels deep" in answer.json()["detail"][0]["msg"]
    assert json.loads(answer.content)  # a readable body, not a 500
