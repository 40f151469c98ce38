"""The Celery app, configured for long GPU jobs (DESIGN.md section 4). Imports no TensorFlow."""

from __future__ import annotations

from celery import Celery

from worker.settings import Settings

RUN_JOB = "clr.run_job"


def make_celery(settings: Settings) -> Celery:
    """A Celery app on `settings.redis_url`: late acks, requeue on worker loss, one job per child process."""
    app = Celery("clr", broker=settings.redis_url, include=["worker.tasks", "worker.takeover"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        task_time_limit=settings.job_time_limit_s + 120,
        task_soft_time_limit=settings.job_time_limit_s,
        broker_transport_options={"visibility_timeout": settings.job_time_limit_s + 3600},
        broker_connection_retry_on_startup=True,
    )
    return app


app = make_celery(Settings())
