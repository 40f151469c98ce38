"""The task on a duplicate delivery: it waits for the live holder, for a bounded time (real Redis, Celery eager)."""

from worker.tasks import JobNotSucceeded, run_job


def test_a_duplicate_delivery_gives_up_after_the_job_time_limit(redis_url, store, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("CLR_STALE_AFTER_S", "60")
    monkeypatch.setenv("CLR_JOB_TIME_LIMIT_S", "300")
    job_id = store.create("training", {})
    store.claim(job_id, "another-host:ns:1", 3, 60.0, False)  # held by a live runner elsewhere
    result = run_job.apply(args=[job_id])  # eager: each retry runs at once instead of after 60 s
    assert result.get() == "busy: gave up"
    assert result.task_id and store.get(job_id)["attempts"] == 1  # never claimed by this delivery


def test_a_job_that_fails_ends_its_task_in_failure_not_success(redis_url, store, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    job_id = store.create("training", {"epochs": "not a spec"})  # refused by the runner: the job fails
    result = run_job.apply(args=[job_id])
    assert store.get(job_id)["state"] == "failed"
    assert result.state == "FAILURE" and isinstance(result.result, JobNotSucceeded)
    assert f"Job {job_id} failed: " in str(result.result)
