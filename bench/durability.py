"""What durability costs: training time with checkpoints against none (interleaved, the worker's own training loop
and checkpointer), and the resume latency of a real stack (a job's process SIGKILLed after a checkpoint, to the
first new iteration stored by the attempt that resumes it)."""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from bench.common import claimed_job, interleaved_runs, redis_store, table  # noqa: E402
from clr import datasets, models  # noqa: E402
from clr.keras_schedule import CyclicalSchedule  # noqa: E402
from clr_service.stack import EmbeddedStack, free_port  # noqa: E402
from worker.engine import checkpoints  # noqa: E402
from worker.engine.data import split  # noqa: E402
from worker.engine.streams import train_recorded  # noqa: E402
from worker.reporting import JobReporter  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.store import JobStore  # noqa: E402

BATCH = 32


def timed_training(store, every_s: float | None, epochs: int, folder: Path) -> tuple[float, list[int]]:
    """Seconds of the seed CNN's training on digits through the worker's loop, with a checkpointer saving every
    `every_s` seconds and at each epoch boundary (None: no checkpointer); and the sizes of the checkpoints saved."""
    keras.utils.set_random_seed(0)
    data = split(datasets.digits(), 0.0)
    model = models.seed_cnn(data.data.input_shape, data.data.num_classes)
    model.compile(keras.optimizers.SGD(CyclicalSchedule(0.001, 0.01, 200)), "sparse_categorical_crossentropy",
                  steps_per_execution=8)
    job_id, attempt = claimed_job(store)
    saved = []
    with JobReporter(store, job_id, attempt, Settings()) as reporter:
        extra = () if every_s is None else (checkpoints.Checkpointer(
            folder / "checkpoint.npz", every_s, 0, BATCH, len(data.x), lambda: reporter.history,
            commit=lambda iteration, written: saved.append(written.stat().st_size)),)
        started = time.perf_counter()
        train_recorded(model, data, BATCH, epochs, reporter, extra)
        seconds = time.perf_counter() - started
    store.delete(job_id)
    return seconds, saved


def checkpoint_overhead(epochs: int, repetitions: int) -> str:
    with redis_store() as (store, _), tempfile.TemporaryDirectory() as folder:
        timed_training(store, None, 1, Path(folder))  # warm-up: TensorFlow's first tracing
        variants = {name: (lambda every=every: timed_training(store, every, epochs, Path(folder)))
                    for name, every in (("none", None), ("every 60 s", 60.0), ("every 1 s", 1.0))}
        runs = interleaved_runs(variants, repetitions)
    none = statistics.median(seconds for seconds, _ in runs["none"])
    rows = [[name, ", ".join(f"{seconds:.2f}" for seconds, _ in results),
             f"{statistics.median(seconds for seconds, _ in results) / none:.3f}", len(results[0][1]),
             max(results[0][1], default=0)]
            for name, results in runs.items()]
    return table(["checkpoints", "seconds per run", "median over none", "checkpoints per run", "file bytes"], rows)


def resume_latency(repetitions: int) -> str:
    """Kill a training's process after its first checkpoint; time until the resumed attempt stores a new point."""
    body = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
            "batch_size": 16, "epochs": 30, "seed": 0, "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 200}}
    latencies = []
    with tempfile.TemporaryDirectory() as folder, EmbeddedStack(
            port=free_port(), data_dir=Path(folder), extra_env={"CLR_CHECKPOINT_EVERY_S": "1"},
            worker_loglevel="WARNING") as stack, stack.client() as client:
        store = JobStore.from_url(stack.redis_url)
        for _ in range(repetitions):
            job_id = client.post("/trainings", json=body).json()["id"]
            checkpoint = Settings(data_dir=Path(folder)).job_files(job_id).checkpoint
            while not (checkpoint.exists() and client.get(f"/jobs/{job_id}").json()["progress"]["iteration"] > 300):
                time.sleep(0.05)
            os.kill(int(store.get(job_id)["runner"].rpartition(":")[2]), signal.SIGKILL)
            killed = time.perf_counter()
            while True:
                job = store.get(job_id)
                resumed = job["resumes"][-1] if job["resumes"] else {"attempt": 1}
                if resumed["attempt"] == 2 and job["iteration"] > resumed["resumed_from"]:
                    break
                time.sleep(0.02)
            latencies.append(time.perf_counter() - killed)
            client.post(f"/jobs/{job_id}/cancel")
    return (f"kill to first new iteration, {repetitions} jobs: " + ", ".join(f"{s:.2f}" for s in latencies)
            + f" s; median {statistics.median(latencies):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repetitions", type=int, default=5)
    arguments = parser.parse_args()
    print("## Checkpoint overhead (seed CNN, digits, batch 32, steps_per_execution 8)\n")
    print(checkpoint_overhead(arguments.epochs, arguments.repetitions))
    print("\n## Resume latency (MLP, digits, a real stack, CLR_CHECKPOINT_EVERY_S=1)\n")
    print(resume_latency(arguments.repetitions))


if __name__ == "__main__":
    main()
