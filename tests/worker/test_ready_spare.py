"""A worker runs one job at a time, and the next job starts in a pool process that was forked, with TensorFlow
imported (by the worker's parent), while the previous job ran: a ready spare (real worker, real jobs)."""

import subprocess
import time
from pathlib import Path

import pytest

from api.examples import TRAINING_EXAMPLES
from clr_service.stack import EmbeddedStack, free_port
from tests.conftest import SERVICE_ENV
from tests.helpers import wait_for_state, wait_until
from worker.store import JobStore

pytestmark = pytest.mark.slow

TINY = TRAINING_EXAMPLES["one_cycle"]["value"] | {"epochs": 2}


def celery_worker(stack) -> subprocess.Popen:
    """The stack's Celery worker process (its pool's parent)."""
    return next(process for process in stack.processes if "celery" in " ".join(process.args))


def pool_children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_one_job_at_a_time_and_the_next_starts_in_the_spare_that_waited_beside_it(service, client):
    worker = celery_worker(service)
    store = JobStore.from_url(service.redis_url)
    first, second = (client.post("/trainings", json=TINY).json()["id"] for _ in range(2))
    children_while_first_ran, states = set(), []
    while (jobs := [store.get(first), store.get(second)])[1]["state"] in ("queued", "running"):
        states.append(tuple(job["state"] for job in jobs))
        if jobs[0]["state"] == "running":
            children_while_first_ran |= pool_children(worker.pid)
        time.sleep(0.05)
    assert ("running", "running") not in states and ("running", "queued") in states
    assert len(children_while_first_ran) >= 2  # the job's process and the spare
    done = [wait_for_state(client, job_id, {"succeeded", "failed"}) for job_id in (first, second)]
    assert [job["state"] for job in done] == ["succeeded", "succeeded"]
    second_process = int(store.get(second)["runner"].rpartition(":")[2])
    assert second_process in children_while_first_ran  # forked, and warm, before the first job ended



def test_the_workers_parent_imports_tensorflow_for_its_children_and_never_starts_it(service, client):
    worker = celery_worker(service)
    done = wait_for_state(client, client.post("/trainings", json=TINY).json()["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["error"]  # trained in a child forked from it
    maps = Path(f"/proc/{worker.pid}/maps")
    wait_until(lambda: "_pywrap_tensorflow_internal" in maps.read_text(), "the import")  # children are forked with it
    threads = [Path(task, "comm").read_text().strip() for task in Path(f"/proc/{worker.pid}/task").iterdir()]
    assert not [name for name in threads if name.startswith("tf_")]  # TensorFlow's runtime never ran there


def jobs_in_a_row(stack, client, jobs: int) -> list[tuple[int, list[str]]]:
    """`jobs` tiny trainings of a built-in model with its first layer frozen, back to back: each one's process and
    the names of its frozen layers."""
    store = JobStore.from_url(stack.redis_url)
    body = TINY | {"epochs": 1, "model": {"architecture": "mlp", "freeze": {"count": 1}}}
    ran = []
    for _ in range(jobs):
        done = wait_for_state(client, client.post("/trainings", json=body).json()["id"], {"succeeded", "failed"})
        assert done["state"] == "succeeded", done["error"]
        ran.append((int(store.get(done["id"])["runner"].rpartition(":")[2]), done["result"]["frozen_layers"]))
    return ran


def test_a_pool_process_may_run_several_jobs_each_from_a_clear_keras_session(service, client):
    ran = jobs_in_a_row(service, client, 3)  # the tests' workers reuse their processes (tests/conftest.py)
    assert len({process for process, _ in ran}) < 3  # two pool processes, three jobs
    assert [frozen for _, frozen in ran] == [["flatten"]] * 3  # named as in a fresh process: no `flatten_1`


def test_by_default_each_job_runs_in_a_process_of_its_own(tmp_path):
    with EmbeddedStack(port=free_port(), data_dir=tmp_path, extra_env=SERVICE_ENV | {
            "CLR_JOBS_PER_CHILD": "1", "CLR_WARM_SPARES": "0"}) as stack, stack.client() as client:
        ran = jobs_in_a_row(stack, client, 2)  # one pool process at a time
    assert len({process for process, _ in ran}) == 2
