"""Celery tasks: thin, take a job id, idempotent."""

from __future__ import annotations

from worker.celery_app import RUN_JOB, app
from worker.settings import Settings


@app.task(name=RUN_JOB, bind=True, max_retries=None)
def run_job(self, job_id: str) -> str:
    """Claim the job and run it; retry later while another live runner holds it."""
    from worker.runner import claim_and_run  # imports TensorFlow here, in the child process, never at worker start

    settings = Settings()
    outcome = claim_and_run(job_id, settings)
    if outcome == "busy":  # a duplicate delivery: look again once the holder could have gone stale, for a while
        if self.request.retries * settings.stale_after_s > settings.job_time_limit_s:
            return "busy: gave up"
        raise self.retry(countdown=settings.stale_after_s)
    if outcome == "drained":  # checkpointed as this worker shuts down: a new message for the next worker
        raise self.retry(countdown=0)
    return outcome
