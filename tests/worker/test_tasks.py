"""The task on a duplicate delivery: it waits for the live holder, for a bounded time (real Redis, Celery eager)."""

from worker.tasks import run_job


def test_a_duplicate_delivery_gives_up_after_the_job_time_limit(redis_url, store, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("CLR_STALE_AFTER_S", "60")
    monkeypatch.setenv("CLR_JOB_TIME_LIMIT_S", "300")
    job_id = store.create("training", {})
    store.claim(job_id, "another-host:ns:1", 3, 60.0, False)  # held by a live runner elsewhere
    result = run_job.apply(args=[job_id])  # eager: each retry runs at once instead of after 60 s
    assert result.get() == "busy: gave up"
    assert result.task_id and store.get(job_id)["attempts"] == 1  # never claimed by this delivery
