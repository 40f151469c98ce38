"""A slow or oversized request cannot hold a connection: heads have a size limit and a deadline, bodies an idle
limit, while an event stream, whose request is complete, stays open as long as it streams."""

import socket
import time

import httpx
import pytest

from clr_service.stack import free_port, start_api, stop

LIMIT_S = 2.0  # the head deadline and the body's idle limit of the API under test


@pytest.fixture(scope="module")
def strict_api(service, tmp_path_factory):
    """An API on the session's stack whose time limits are short enough to watch."""
    port = free_port()
    process = start_api("127.0.0.1", port, service.env | {
        "CLR_HEAD_TIMEOUT_S": str(LIMIT_S), "CLR_BODY_IDLE_S": str(LIMIT_S), "CLR_SSE_PING_S": "0.5"})
    yield port
    stop([process])


def closed_after(connection: socket.socket) -> tuple[bytes, float]:
    """What the server sends before it closes the connection, and how long that took."""
    started, answer = time.monotonic(), b""
    connection.settimeout(3 * LIMIT_S + 5)
    while chunk := connection.recv(65536):
        answer += chunk
    return answer, time.monotonic() - started


def test_a_head_larger_than_the_limit_gets_431(strict_api):
    with socket.create_connection(("127.0.0.1", strict_api)) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 2**20 + b"\r\n\r\n")
        answer, _ = closed_after(connection)
    assert answer.startswith(b"HTTP/1.1 431") and b"32768 bytes" in answer, answer[:200]


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1"], ids=["idle", "half a head"])
def test_a_head_not_sent_within_the_deadline_is_cut_off(strict_api, sent):
    with socket.create_connection(("127.0.0.1", strict_api)) as connection:
        connection.sendall(sent)
        answer, took = closed_after(connection)
    assert answer == b"" and LIMIT_S * 0.8 < took < LIMIT_S + 3, took


def test_a_body_that_stalls_is_cut_off_and_the_app_sees_a_disconnect(strict_api, service):
    token = service.api_key.encode()
    with socket.create_connection(("127.0.0.1", strict_api)) as connection:
        connection.sendall(b"POST /datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                           b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b")
        answer, took = closed_after(connection)
    assert answer == b"" and took < LIMIT_S + 3, (answer[:200], took)
    assert httpx.get(f"http://127.0.0.1:{strict_api}/health").status_code == 200


def test_keep_alive_and_event_streams_outlast_the_limits(strict_api, client, service):
    job_id = client.post("/range-tests", json={
        "model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
        "batch_size": 8, "epochs": 20}).json()["id"]
    with httpx.Client(base_url=f"http://127.0.0.1:{strict_api}", timeout=30,
                      headers={"Authorization": f"Bearer {service.api_key}"}) as slow:
        assert slow.get("/health").status_code == 200
        time.sleep(LIMIT_S / 2)
        assert slow.get("/health").status_code == 200  # the same connection, its head deadline re-armed
        started, events = time.monotonic(), []
        with slow.stream("GET", f"/jobs/{job_id}/events") as stream:
            for line in stream.iter_lines():
                events.append(line)
                if time.monotonic() - started > 2 * LIMIT_S:
                    break
    assert time.monotonic() - started > 2 * LIMIT_S and any(line.startswith("event:") for line in events)
    client.post(f"/jobs/{job_id}/cancel")
