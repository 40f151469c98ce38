"""What every worker's main process does beside serving tasks: take over the jobs of lost workers, and hand its
own jobs back (checkpointed) when it shuts down. No extra process: in compose every worker runs this, one at a
time under a Redis lock, so no single component must stay up."""

from __future__ import annotations

import logging
import os
import threading

import redis
from celery import Celery
from celery.signals import worker_ready, worker_shutting_down
from kombu.exceptions import OperationalError

from worker.celery_app import RUN_JOB
from worker.runner import process_id
from worker.settings import Settings
from worker.store import JobStore

log = logging.getLogger(__name__)
DRAIN_WITHIN_S = 600


def take_over_lost_jobs(app: Celery, store: JobStore, settings: Settings) -> list[str]:
    """Under the lock, put running jobs whose heartbeat is older than `stale_after_s` back in the queue, each
    with a new message for any live worker (which resumes it from its checkpoint), and send again the message of
    any job queued that long whose message is not in the queue; return their ids. A duplicate message is harmless:
    its claim finds the job running or finished."""
    if not store.workers.take_over_lock(process_id(os.getpid()), settings.stale_after_s / 2):
        return []
    taken = store.requeue_stale(settings.stale_after_s)
    for job_id in taken:
        log.warning("Job %s: its worker stopped heartbeating for %ss; queued again", job_id, settings.stale_after_s)
        app.send_task(RUN_JOB, args=[job_id], task_id=job_id)
    waiting = store.waiting_too_long(settings.stale_after_s)
    in_queue = store.workers.queued_job_ids() if waiting else set()  # the queue read only when a job waits too long
    for job_id in waiting:
        if job_id not in in_queue:
            log.warning("Job %s: queued for %ss with no message in the queue; sent again", job_id,
                        settings.stale_after_s)
            store.mark_waiting(job_id)
            app.send_task(RUN_JOB, args=[job_id], task_id=job_id)
            taken.append(job_id)
    return taken


def _watch(app: Celery, settings: Settings) -> None:
    store = JobStore.from_url(settings.redis_url)
    while True:
        try:
            take_over_lost_jobs(app, store, settings)
        except (redis.RedisError, OperationalError):
            log.warning("Looking for lost jobs failed; trying again", exc_info=True)
        threading.Event().wait(settings.stale_after_s / 2)


@worker_ready.connect
def start_watching(sender, **_) -> None:
    threading.Thread(target=_watch, args=(sender.app, Settings()), name="takeover", daemon=True).start()


@worker_shutting_down.connect
def hand_jobs_back(**_) -> None:
    """Ask this worker's running jobs to checkpoint and go back to the queue (they stop within a step)."""
    try:
        JobStore.from_url(Settings().redis_url).workers.drain(process_id(os.getpid()), DRAIN_WITHIN_S)
    except redis.RedisError:
        log.warning("Could not ask the running job to checkpoint: Redis is unreachable", exc_info=True)
