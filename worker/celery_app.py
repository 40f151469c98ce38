"""The Celery app, configured for long GPU jobs (DESIGN.md section 4). Imports no TensorFlow."""

from __future__ import annotations

import threading

from celery import Celery
from celery.signals import worker_process_init

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
        worker_send_task_events=True,  # Flower and `celery events` show each job's task as it runs and ends
        task_send_sent_event=True,
        task_time_limit=settings.job_time_limit_s + 120,
        task_soft_time_limit=settings.job_time_limit_s,
        broker_transport_options={"visibility_timeout": settings.job_time_limit_s + 3600},
        broker_connection_retry_on_startup=True,
    )
    return app


@worker_process_init.connect
def prepare_child(**_) -> None:
    """Each pool child, forked with no TensorFlow loaded, starts preparing for its job in a thread (the pool waits
    at most 4 s for a child to start): TensorFlow's import no longer delays the job's first iteration."""
    from worker.runner import prepare_for_jobs

    threading.Thread(target=prepare_for_jobs, name="prepare-for-jobs", daemon=True).start()


app = make_celery(Settings())
