"""The job record's write rules, on a real Redis: points at their own offsets, writes fenced by the attempt, one
clock (Redis's) for staleness."""

import time

import numpy as np
import pytest

from worker.store import POINT, JobStore, LostClaim


def claimed(store, runner="test:1", runner_lost=False):
    job_id = store.create("training", {})
    return job_id, store.claim(job_id, runner, 5, 60.0, runner_lost).attempts


def points(first, last):
    iterations = np.arange(first, last)
    return iterations * 1e-3, iterations * 0.5


def test_points_land_at_their_own_iteration_and_a_repeated_write_changes_nothing(store):
    job_id, attempt = claimed(store)
    store.report(job_id, attempt, 0, *points(0, 100))
    store.report(job_id, attempt, 0, *points(0, 100))  # a retried write whose first reply was lost
    store.report(job_id, attempt, 100, *points(100, 150), iteration=150)
    curve = store.curve(job_id)
    assert list(curve.iterations) == list(range(150))
    np.testing.assert_allclose(curve.losses, np.arange(150) * 0.5)
    assert store.get(job_id)["iteration"] == 150 and len(store.redis.get(f"clr:curve:{job_id}")) == 150 * POINT.itemsize


def test_a_superseded_runner_cannot_write_finish_or_recreate_a_deleted_job(store):
    job_id, first = claimed(store, "host:ns:1")
    store.report(job_id, first, 0, *points(0, 10), iteration=10)
    second = store.claim(job_id, "host:ns:2", 5, 60.0, True).attempts  # taken over: the first runner was lost
    assert second == first + 1
    with pytest.raises(LostClaim):
        store.report(job_id, first, 0, *points(0, 50), iteration=50, epoch_history=[{"loss": 1.0}])
    assert not store.finish(job_id, first, "succeeded", result={})
    assert store.resume(job_id, second, 0, 0, []) == 0
    job = store.get(job_id)
    assert job["state"] == "running" and job["iteration"] == 0 and len(store.curve(job_id).losses) == 0
    store.report(job_id, second, 0, *points(0, 5), iteration=5)
    assert len(store.curve(job_id).losses) == 5

    store.delete(job_id)
    with pytest.raises(LostClaim):
        store.report(job_id, second, 5, *points(5, 6), iteration=6)
    assert not store.redis.exists(f"clr:job:{job_id}") and store.get(job_id) is None


def test_heartbeats_and_staleness_use_redis_time_not_the_workers_clock(store, monkeypatch):
    job_id, attempt = claimed(store)
    skewed = time.time() - 10_000
    monkeypatch.setattr(time, "time", lambda: skewed)  # this worker's clock is hours behind
    store.report(job_id, attempt)
    seconds, micros = store.redis.time()
    assert store.get(job_id)["heartbeat_at"] == pytest.approx(seconds + micros / 1e6, abs=5)
    time.sleep(0.3)
    assert store.claim(job_id, "other:1", 5, 0.1, False).outcome == "claimed"  # stale on Redis's clock


def test_cancelling_a_running_job_whose_runner_went_silent_ends_it_at_once(service, client):
    store = JobStore.from_url(service.redis_url)
    live, _ = claimed(store)
    assert client.post(f"/jobs/{live}/cancel").json()["state"] == "running"  # a live runner is asked to stop
    silent, _ = claimed(store)
    store.redis.hset(f"clr:job:{silent}", "heartbeat_at", time.time() - 3600)
    assert client.post(f"/jobs/{silent}/cancel").json()["state"] == "cancelled"
    assert client.delete(f"/jobs/{silent}").status_code == 204
