"""Hostile inputs, round four, on the real stack: abandoning an upload waits for the part or finish that holds it, and
a hung Redis costs a request one short timeout, not a timeout per retry."""

import io
import os
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from clr_service.stack import free_port, start_api, start_redis, stop

pytestmark = pytest.mark.slow

ANSWER_WITHIN_S = 10  # a request's 503 with Redis hung: one socket timeout and a little


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_abandoning_an_upload_waits_for_the_part_being_added(client, service, store):
    upload = client.post("/datasets/uploads").json()["id"]
    body, sending, go_on = npy(np.zeros((200, 8, 8), np.float32)), threading.Event(), threading.Event()

    def slowly():
        yield body[:1024]
        sending.set()
        go_on.wait(30)
        yield body[1024:]

    answers = {}
    putting = threading.Thread(target=lambda: answers.update(put=client.put(
        f"/datasets/uploads/{upload}/arrays/x_train", params={"offset": 0}, content=slowly())))
    putting.start()
    try:
        assert sending.wait(30)
        lock = f"clr:lock:uploads:{upload}"
        deadline = time.monotonic() + 10
        while not store.redis.exists(lock) and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = client.delete(f"/datasets/uploads/{upload}")
    finally:
        go_on.set()
        putting.join(30)
    assert refused.status_code == 409 and upload in refused.text, refused.text
    assert answers["put"].status_code == 200, answers["put"].text
    assert str(service.data_dir) not in answers["put"].text + refused.text
    assert client.delete(f"/datasets/uploads/{upload}").status_code == 204
    late = client.post(f"/datasets/uploads/{upload}/finish")
    assert late.status_code == 404 and upload in late.text and str(service.data_dir) not in late.text


def test_a_hung_redis_answers_503_within_seconds(tmp_path):
    redis_port, api_port = free_port(), free_port()
    processes = [start_redis(redis_port, tmp_path / "redis")]
    try:
        processes.append(start_api("127.0.0.1", api_port, os.environ | {
            "CLR_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CLR_DATA_DIR": str(tmp_path / "data")}))
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60,
                          headers={"Authorization": "Bearer nobody"}) as jobs:
            assert jobs.get("/jobs").status_code == 401
            os.kill(processes[0].pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                hung = jobs.get("/jobs")
                took = time.monotonic() - started
            finally:
                os.kill(processes[0].pid, signal.SIGCONT)
            assert hung.status_code == 503 and took < ANSWER_WITHIN_S, (hung.status_code, took)
            assert jobs.get("/jobs").status_code == 401  # Redis back, the API with it
    finally:
        stop(processes)
