"""Celery tasks: thin, take a job id, idempotent."""

from __future__ import annotations

from worker.celery_app import RUN_JOB, app
from worker.settings import Settings
from worker.store import JobStore


class JobNotSucceeded(Exception):
    """The job the task ran ended failed or cancelled: the task ends in FAILURE, so Celery's own tools (Flower,
    `celery events`) agree with the job; an expected end, logged without a traceback."""


@app.task(name=RUN_JOB, bind=True, max_retries=None, throws=(JobNotSucceeded,))
def run_job(self, job_id: str) -> str:
    """Claim the job and run it; retry later while another live runner holds it. Returns the job's state when it
    ran to success, else how the delivery ended (`finished`: someone ended the job already)."""
    from worker.runner import claim_and_run  # imports TensorFlow here, in the child process, never at worker start

    settings = Settings()
    outcome = claim_and_run(job_id, settings)
    if outcome in ("claimed", "exhausted"):
        job = JobStore.from_url(settings.redis_url).get(job_id) or {"state": "deleted"}
        if job["state"] != "succeeded":
            raise JobNotSucceeded(f"Job {job_id} {job['state']}" + (f": {job['error']}" if job.get("error") else ""))
        return job["state"]
    if outcome == "busy":  # a duplicate delivery: look again once the holder could have gone stale, for a while
        if self.request.retries * settings.stale_after_s > settings.job_time_limit_s:
            return "busy: gave up"
        raise self.retry(countdown=settings.stale_after_s)
    if outcome == "drained":  # checkpointed as this worker shuts down: a new message for the next worker
        raise self.retry(countdown=0)
    return outcome
