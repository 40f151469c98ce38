"""The Celery app, configured for long GPU jobs (docs/architecture.md, "Celery and TensorFlow"); imports no
TensorFlow itself (a worker's parent does, at its start, and never runs it)."""

from __future__ import annotations

import logging
import os

from celery import Celery, bootsteps
from celery.signals import worker_init, worker_process_init

from worker.settings import Settings

RUN_JOB = "clr.run_job"
PREPARE_WITHIN_S = 120.0  # a new pool child's TensorFlow import, on a busy host
log = logging.getLogger(__name__)


JOBS_AT_ONCE = 1  # per worker: a job has the host's accelerators to itself


def make_celery(settings: Settings) -> Celery:
    """A Celery app on `settings.redis_url`: late acks, requeue on worker loss, `jobs_per_child` jobs (one by
    default) per child process, and
    `warm_spares` children warm beside the one running the job (a pool child reports ready only once TensorFlow is
    imported, so the next job goes to a warm one while another warms up)."""
    app = Celery("clr", broker=settings.redis_url, include=["worker.tasks", "worker.takeover"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=settings.jobs_per_child,
        worker_concurrency=JOBS_AT_ONCE + settings.warm_spares,
        worker_disable_prefetch=True,  # take a message only when a job may start (`OneJobAtATime`)
        worker_proc_alive_timeout=PREPARE_WITHIN_S,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,  # Flower and `celery events` show each job's task as it runs and ends
        task_send_sent_event=True,
        task_time_limit=settings.job_time_limit_s + 120,
        task_soft_time_limit=settings.job_time_limit_s,
        broker_transport_options={"visibility_timeout": settings.job_time_limit_s + 3600},
        broker_connection_retry_on_startup=True,
    )
    app.steps["consumer"].add(OneJobAtATime)
    return app


class OneJobAtATime(bootsteps.StartStopStep):
    """With `worker_disable_prefetch`, Celery takes a new message only while fewer requests are reserved than the
    worker's `max_concurrency` (the autoscaler's bound, else the pool's size): set to `JOBS_AT_ONCE` before the
    consumer takes any, it leaves the other pool processes spares."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, consumer) -> None:
        consumer.controller.max_concurrency = JOBS_AT_ONCE


@worker_init.connect
def import_before_forking(**_) -> None:
    """The worker's parent imports TensorFlow, Keras and the training code once, before its pool forks, and never
    runs them: each pool child is forked with them imported, ready in a fraction of a second instead of after an
    import of its own (seconds), so a spare is ready again before a short job ends. Fork after TensorFlow's runtime
    started hangs; after its import alone it does not, and nothing in the parent starts it. A failure is left for
    the children to meet again."""
    from worker.runner import import_job_code

    try:
        import_job_code()
    except Exception:  # noqa: BLE001
        log.exception("Importing the training code in the worker's parent failed; each pool process will try")


@worker_process_init.connect
def prepare_child(**_) -> None:
    """Each pool child sets its GPUs up (TensorFlow's runtime starts here, in the child) and imports what the
    parent could not before it reports ready (within `PREPARE_WITHIN_S`), so a job never waits for either. A
    failure is left for the job to meet again and report (a broken GPU setup fails the job, readably)."""
    from worker.runner import prepare_for_jobs

    try:
        prepare_for_jobs()
    except Exception:  # noqa: BLE001
        log.exception("Preparing this pool process for jobs failed; its job will try again")


SETTINGS = Settings()
os.environ["KERAS_BACKEND"] = SETTINGS.keras_backend  # read where a pool child first imports Keras
app = make_celery(SETTINGS)
