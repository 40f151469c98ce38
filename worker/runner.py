"""Run one job in this (child) process: claim it atomically, run it with a reporter, record the outcome."""

from __future__ import annotations

import logging
import os
import socket

from celery.exceptions import SoftTimeLimitExceeded

from clr.config import RangeTestSpec, TrainingSpec
from worker.reporting import JobReporter
from worker.settings import Settings
from worker.store import JobStore

log = logging.getLogger(__name__)


def this_runner() -> str:
    """This process, as `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def runner_is_lost(runner: str | None) -> bool:
    """Whether `runner` ran on this host in a process that no longer exists."""
    if not runner:
        return False
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def use_gpus_with_memory_growth() -> None:
    """Let TensorFlow grow GPU memory as needed on the GPUs in `CUDA_VISIBLE_DEVICES`; CPU when there are none."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


def describe(error: BaseException) -> str:
    """A readable one-line message for a failed job."""
    name = type(error).__name__
    if isinstance(error, SoftTimeLimitExceeded):
        return "The job exceeded its time limit"
    if "ResourceExhausted" in name or isinstance(error, MemoryError):
        return f"Out of memory ({name}): lower batch_size or use a smaller model"
    text = str(error).strip().splitlines()
    return f"{name}: {text[0] if text else 'no message'}"


def claim_and_run(job_id: str, settings: Settings) -> str:
    """Run the job unless another live runner holds it or it is finished; return the claim's outcome."""
    store = JobStore.from_url(settings.redis_url)
    runner = this_runner()
    job = store.get(job_id)
    if job is None:
        return "missing"
    claim = store.claim(job_id, runner, settings.max_attempts, settings.stale_after_s, runner_is_lost(job.get("runner")))
    if claim.outcome != "claimed":
        log.info("Job %s not run: %s", job_id, claim.outcome)
        return claim.outcome
    use_gpus_with_memory_growth()
    from worker import jobs  # Keras, imported only once the job is ours

    try:
        with JobReporter(store, job_id, runner, settings) as reporter:
            if job["kind"] == "range_test":
                result = jobs.run_range_test(RangeTestSpec.model_validate(job["spec"]), reporter, settings)
            else:
                bounds = tuple(job["bounds"]) if job["bounds"] else None
                result = jobs.run_training(TrainingSpec.model_validate(job["spec"]), bounds, reporter, settings)
        state = "cancelled" if reporter.cancel_requested.is_set() else "succeeded"
        store.finish(job_id, runner, state, result=result)
    except Exception as error:  # every failure ends the job readably; the worker goes on serving
        log.exception("Job %s failed", job_id)
        message = str(error) if isinstance(error, jobs.JobError) else describe(error)
        store.finish(job_id, runner, "failed", error=message)
    return claim.outcome
