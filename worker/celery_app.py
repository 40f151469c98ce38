"""The Celery app, configured for long GPU jobs (docs/architecture.md, "Celery and TensorFlow"); imports no
TensorFlow itself (a worker's parent does, once started, and never runs it)."""

from __future__ import annotations

import logging
import os
import threading

from celery import Celery, bootsteps
from celery.signals import worker_before_create_process, worker_process_init, worker_ready

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


_importing: threading.Thread | None = None


@worker_ready.connect
def import_for_later_children(**_) -> None:
    """Once its first pool processes are forked (each imports the training code itself, meanwhile), the worker's
    parent imports TensorFlow, Keras and the training code in a thread, and never runs them: the processes forked
    after it (each job's next spare) have them at once, ready in milliseconds instead of after an import of their own
    (seconds), so a spare is ready again before even a short job ends. Fork after TensorFlow's runtime started hangs
    the child; after its import alone it does not, and nothing in the parent starts it (docs/architecture.md)."""
    global _importing
    _importing = threading.Thread(target=_import_job_code, name="import-job-code", daemon=True)
    _importing.start()


def _import_job_code() -> None:
    from worker.runner import import_job_code

    try:
        import_job_code()
    except Exception:  # noqa: BLE001
        log.exception("Importing the training code in the worker's parent failed; each pool process will import it")


@worker_before_create_process.connect
def finish_the_import_before_forking(**_) -> None:
    """No pool process is forked while the parent's import runs (a fork mid-import leaves the child a half-imported
    module, locked)."""
    if _importing is not None:
        _importing.join()


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
