"""Run one job in this (child) process: claim it atomically, run it with a reporter, record the outcome."""

from __future__ import annotations

import logging
import os
import resource
import socket
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

from worker.comparisons import settle_parent
from worker.errors import Drained, JobError
from worker.job_files import stored_bytes
from worker.kinds import KINDS
from worker.reporting import JobReporter
from worker.settings import Settings
from worker.store import JobStore, through_redis_failures

log = logging.getLogger(__name__)


def _process_namespace() -> str:
    """This host's boot and this process's pid namespace: processes in one namespace can see each other's pids.
    A hostname alone is not enough (containers on one host, or on several, can share one)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def process_id(pid: int) -> str:
    """Process `pid` of this pid namespace, as `host:namespace:pid`."""
    return f"{socket.gethostname()}:{_process_namespace()}:{pid}"


def this_runner() -> str:
    """This process."""
    return process_id(os.getpid())


def runner_is_lost(runner: str | None) -> bool:
    """Whether `runner` ran in this pid namespace, in a process that no longer exists."""
    if not runner:
        return False
    place, _, pid = runner.rpartition(":")
    if place != f"{socket.gethostname()}:{_process_namespace()}":
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def limit_memory(megabytes: int | None) -> None:
    """Cap what this job's process may allocate (heap and private mappings, `RLIMIT_DATA`; memory-mapped datasets
    do not count), so that one job cannot exhaust its host: past it, the job fails out of memory."""
    if megabytes is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (megabytes * 2**20, megabytes * 2**20))


_prepared = False


def import_job_code() -> None:
    """Import what jobs run (each kind's worker function, with Keras and its backend: seconds) without running any
    of it: the worker's parent does, so that its pool children are forked with it imported (`worker.celery_app`)."""
    for kind in KINDS.values():
        if kind.runs is not None:
            kind.runner()


def prepare_for_jobs() -> None:
    """Set the GPUs up and import what a job runs, once per process: a pool child does it before it reports ready
    (`worker.celery_app`), and a job does it again only where that failed."""
    global _prepared
    if not _prepared:
        from worker.engine import devices

        devices.use_gpus_with_memory_growth()
        import_job_code()
        _prepared = True


def describe(error: BaseException) -> str:
    """A readable one-line message for a failed job."""
    name = type(error).__name__
    if isinstance(error, SoftTimeLimitExceeded):
        return "The job exceeded its time limit"
    if "ResourceExhausted" in name or isinstance(error, MemoryError):
        return f"Out of memory ({name}): lower batch_size or use a smaller model"
    text = str(error).strip().splitlines()
    return f"{name}: {text[0] if text else 'no message'}"


def finish(store: JobStore, job_id: str, attempt: int, settings: Settings, state: str, **outcome) -> None:
    """End the attempt, riding out a Redis failure of up to `stale_after_s`, drop its checkpoint, and settle its
    comparison where it is the last of one's trainings to end; if Redis stays away the error propagates and the job
    is left running with a stale heartbeat, for the next worker to take over."""
    if not through_redis_failures(lambda: store.finish(job_id, attempt, state, **outcome), settings.stale_after_s):
        log.warning("Job %s is no longer on attempt %s (taken over, deleted, or ended by an earlier try)",
                    job_id, attempt)
        return
    files = settings.job_files(job_id)
    files.remove_checkpoints()
    for path in files.resume_files():
        settings.storage().remove(path)
    through_redis_failures(lambda: settle_parent(store, store.get(job_id)), settings.stale_after_s)


def claim_and_run(job_id: str, settings: Settings) -> str:
    """Run the job unless another live runner holds it or it is finished; return the claim's outcome. Every path
    that claimed the job ends it, except a lost claim (the job is someone else's) or Redis staying away."""
    store = JobStore.from_url(settings.redis_url)
    job = store.get(job_id)
    if job is None:
        return "missing"
    claim = store.claim(job_id, this_runner(), settings.max_attempts, settings.stale_after_s,
                        runner_is_lost(job.get("runner")))
    if claim.outcome != "claimed":
        log.info("Job %s not run: %s", job_id, claim.outcome)
        return claim.outcome
    reporter = JobReporter(store, job_id, claim.attempts, settings, worker=process_id(os.getppid()))
    try:
        with reporter:  # heartbeats from the claim on: importing TensorFlow takes seconds
            limit_memory(settings.job_memory_mb)
            prepare_for_jobs()
            result = KINDS[job["kind"]].run(job, reporter, settings)
    except Drained:
        log.info("Job %s checkpointed and goes back to the queue: this worker shuts down", job_id)
        through_redis_failures(lambda: store.requeue(job_id, claim.attempts), settings.stale_after_s)
        return "drained"
    except Exception as error:  # every failure ends the job readably; the worker goes on serving
        if reporter.lost.is_set():
            return "lost"
        log.exception("Job %s failed", job_id)
        message = str(error) if isinstance(error, JobError) else describe(error)
        finish(store, job_id, claim.attempts, settings, "failed", error=message)
        return claim.outcome
    if reporter.lost.is_set():
        return "lost"
    if reporter.fatal is not None:
        finish(store, job_id, claim.attempts, settings, "failed", error=f"Reporting failed: {describe(reporter.fatal)}")
    else:
        state = "cancelled" if reporter.cancel_requested.is_set() else "succeeded"
        finish(store, job_id, claim.attempts, settings, state, result=result)
        store.tenants.add_usage(job.get("owner", ""), stored_bytes(result))
    return claim.outcome
