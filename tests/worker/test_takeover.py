"""A queued job whose message is gone (taken by a worker killed before it claimed the job) gets a new message, once
it has waited the stale time; a job whose message waits in the queue, or that was claimed, is left alone (real
Redis, Celery's own producer, no worker)."""

import json

from worker.celery_app import make_celery
from worker.coordination import QUEUE
from worker.settings import Settings
from worker.store import WAITING_KEY, JobStore
from worker.takeover import take_over_lost_jobs


def queue_ids(store) -> list[str]:
    return [json.loads(message)["headers"]["id"] for message in store.redis.lrange(QUEUE, 0, -1)]


def test_a_queued_job_whose_message_was_lost_is_sent_again_once(redis_server):
    settings = Settings(redis_url=f"{redis_server}/7", stale_after_s=5)  # a database of its own: no other job
    celery, store = make_celery(settings), JobStore.from_url(settings.redis_url)
    store.redis.flushdb()
    orphan, waiting, claimed = (store.create("training", {}) for _ in range(3))
    celery.send_task("clr.run_job", args=[waiting], task_id=waiting)  # its message is in the queue
    store.claim(claimed, "a-worker:ns:1", 3, 60.0, False)
    assert take_over_lost_jobs(celery, store, settings) == []  # nothing has waited the stale time yet

    store.redis.zadd(WAITING_KEY, {job_id: 0 for job_id in (orphan, waiting, claimed)})  # sent long ago
    store.redis.delete("clr:takeover-lock")  # each sweep holds it for half the stale time
    assert take_over_lost_jobs(celery, store, settings) == [orphan]
    assert queue_ids(store) == [orphan, waiting]  # newest first: LPUSH
    assert store.redis.zscore(WAITING_KEY, claimed) is None  # claimed: forgotten
    store.redis.delete("clr:takeover-lock")
    assert take_over_lost_jobs(celery, store, settings) == []  # sent again just now: not yet again
