"""Celery's own event stream (what Flower and `celery events` read) agrees with the job: a job that fails is a
task that fails, seen live from the real worker."""

import threading

import keras
import pytest

from api.examples import TRAINING_EXAMPLES
from tests.helpers import wait_for_state
from worker.celery_app import make_celery
from worker.settings import Settings

pytestmark = pytest.mark.slow


def test_the_workers_task_events_show_a_failed_job_as_a_failed_task(service, client):
    celery, events, ready, receivers = make_celery(Settings(redis_url=service.redis_url)), {}, threading.Event(), []

    def capture():
        with celery.connection() as connection:
            receivers.append(celery.events.Receiver(connection, handlers={
                "*": lambda event: events.setdefault(event.get("uuid"), []).append(event["type"])}))
            receiver = receivers[0]
            ready.set()
            try:
                receiver.capture(limit=None, timeout=120, wakeup=False)
            except TimeoutError:
                pass

    listener = threading.Thread(target=capture, daemon=True)
    listener.start()
    assert ready.wait(30)
    nine_outputs = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(9)])
    body = TRAINING_EXAMPLES["one_cycle"]["value"] | {"model": {"keras_json": nine_outputs.to_json()}}
    job = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "failed" and "9 outputs" in job["error"]
    for _ in range(100):
        if "task-failed" in events.get(job["id"], []):
            break
        listener.join(0.1)
    receivers[0].should_stop = True
    assert {"task-received", "task-started", "task-failed"} <= set(events.get(job["id"], [])), events
    assert "task-succeeded" not in events[job["id"]]
