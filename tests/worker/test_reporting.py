"""The reporter on a real Redis: nothing lost or shifted when a write fails, stopped for good when its claim is
lost or its recorder fails; and the forced cancel only while training runs."""

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clr.recording import RecorderOverrun
from tests.helpers import wait_until
from worker.reporting import JobReporter
from worker.settings import Settings
from worker.store import JobStore

ROOT = Path(__file__).resolve().parents[2]


def claimed(store):
    job_id = store.create("training", {})
    return job_id, store.claim(job_id, "test:1", 5, 60.0, False).attempts


class Recorder:
    """Stands in for an `IterationRecorder` in the reporter's hands: `poll` and `model.stop_training`."""

    def __init__(self, error: Exception | None = None):
        self.model, self.error = SimpleNamespace(stop_training=False), error

    def poll(self) -> int:
        if self.error:
            raise self.error
        return 0


def test_a_failed_write_keeps_its_points_and_no_later_point_shifts(redis_url, store):
    job_id, attempt = claimed(store)
    impatient = JobStore(redis.Redis.from_url(redis_url, socket_timeout=0.2, retry=Retry(NoBackoff(), 0)))
    reporter = JobReporter(impatient, job_id, attempt, Settings())
    lrs = np.arange(300) * 1e-3
    reporter.push(np.arange(0, 100), lrs[:100], lrs[:100] * 2)
    reporter.flush()
    store.redis.execute_command("CLIENT", "PAUSE", 2000, "WRITE")  # Redis stops taking writes for 2 s
    reporter.push(np.arange(100, 200), lrs[100:200], lrs[100:200] * 2)
    failed = False
    try:
        reporter.flush()
    except redis.RedisError:
        failed = True
    assert failed
    time.sleep(2.2)
    reporter.push(np.arange(200, 300), lrs[200:300], lrs[200:300] * 2)
    reporter.flush()  # the points of the failed write go out again, at their own offsets
    curve = store.curve(job_id)
    assert list(curve.iterations) == list(range(300))
    np.testing.assert_allclose(curve.lrs, lrs, rtol=1e-6)
    np.testing.assert_allclose(curve.losses, lrs * 2, rtol=1e-6)
    assert store.get(job_id)["iteration"] == 300


def test_points_a_restarted_redis_lost_are_written_again_and_checkpoints_wait_for_them(store, tmp_path):
    job_id, attempt = claimed(store)
    reporter = JobReporter(store, job_id, attempt, Settings())
    lrs = np.arange(300) * 1e-3
    reporter.push(np.arange(0, 200), lrs[:200], lrs[:200] * 2)
    reporter.flush()
    committed = []
    reporter.once_stored(250, lambda: committed.append(250))
    curve_key = f"clr:curve:{job_id}"  # as after a restart from an append-only file that missed the last second
    store.redis.set(curve_key, store.redis.getrange(curve_key, 0, 150 * 8 - 1))
    reporter.push(np.arange(200, 300), lrs[200:300], lrs[200:300] * 2)
    reporter.flush()  # finds the curve short of iteration 200: writes nothing past the gap, queues 150..199 again
    assert len(store.curve(job_id).losses) == 150 and not committed
    reporter.flush()
    curve = store.curve(job_id)
    assert list(curve.iterations) == list(range(300)) and committed == [250]
    np.testing.assert_allclose(curve.losses, lrs * 2, rtol=1e-6)


def test_a_taken_over_job_stops_its_old_runners_training(store):
    job_id, attempt = claimed(store)
    recorder = Recorder()
    with JobReporter(store, job_id, attempt, Settings(flush_interval_s=0.05)) as reporter:
        reporter.watch(recorder)
        store.claim(job_id, "test:2", 5, 60.0, True)
        wait_until(lambda: reporter.lost.is_set(), "the lost claim seen")
        assert recorder.model.stop_training and reporter.should_stop()
    assert store.get(job_id)["attempts"] == attempt + 1


def test_a_recorder_overrun_ends_reporting_and_training_instead_of_retrying_forever(store):
    job_id, attempt = claimed(store)
    recorder = Recorder(RecorderOverrun("70000 steps ran between two polls; the recorder holds 65536"))
    with JobReporter(store, job_id, attempt, Settings(flush_interval_s=0.05)) as reporter:
        reporter.watch(recorder)
        wait_until(lambda: reporter.fatal is not None, "the overrun seen")
        assert isinstance(reporter.fatal, RecorderOverrun) and recorder.model.stop_training


def test_the_forced_cancel_waits_while_no_training_runs(redis_url, store):
    """Loading data, compiling or evaluating after a cancel is not a hung training: the process lives on."""
    job_id, attempt = claimed(store)
    store.request_cancel(job_id, 60.0)
    code = (
        "import time; from worker.reporting import JobReporter; from worker.settings import Settings;"
        "from worker.store import JobStore;"
        f"store = JobStore.from_url({redis_url!r});"
        f"reporter = JobReporter(store, {job_id!r}, {attempt}, Settings(flush_interval_s=0.05, cancel_grace_s=0.1));"
        "reporter.__enter__(); time.sleep(1.0); assert reporter.cancel_requested.is_set(); print('alive')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and "alive" in result.stdout, result.stderr[-2000:]
    assert store.get(job_id)["state"] == "running"
