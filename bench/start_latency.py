"""Job start latency on the embedded stack (Redis, one Celery worker, the API): tiny trainings (the MLP on digits,
one epoch) submitted one after another; from `POST /trainings` to the first recorded iteration (the job's
`progress.iteration` above 0, polled) and to `succeeded`, p50 and p90. Each job runs in a fresh process (the
worker's prefork child serves one task, `worker_max_tasks_per_child=1`), or with `--jobs-per-child N` (a CPU host's
`CLR_JOBS_PER_CHILD`) in a process that may have run others. The job records' times split each start
into queueing and claiming, then the job process's own start; a fresh process timing the same phases one by one
(`bench.job_phases`) shows what that start is made of. Two cases, after one job that is not counted (the
worker's start is not measured): jobs POSTed back to back (each goes to the spare, if one is ready, while a new one
is forked) and POSTed to a worker idle for `--idle` seconds (its next process, forked when the last job ended, has
TensorFlow imported already)."""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from bench.common import ratio_of_medians, table
from clr_service.client import Client
from clr_service.stack import EmbeddedStack, free_port

TRAINING = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
            "batch_size": 32, "epochs": 1, "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 20}}
POLL_S = 0.02
TARGET_S = 5.0  # p50 from POST to the first iteration
BACK_TO_BACK_TARGET = 1.5  # back-to-back p50 over idle p50, POST to first iteration (the ready spare's target)


def one_job(client: Client) -> dict[str, float]:
    """Submit a training and poll it to its end: seconds from the POST to each milestone."""
    posted_wall, posted = time.time(), time.perf_counter()
    job_id = client.submit_training(TRAINING)["id"]
    first = None
    while (job := client.job(job_id))["state"] not in ("succeeded", "failed", "cancelled"):
        if first is None and job["progress"]["iteration"] > 0:
            first = time.perf_counter() - posted
        time.sleep(POLL_S)
    ended = time.perf_counter() - posted
    if job["state"] != "succeeded":
        raise RuntimeError(f"Job {job_id} ended {job['state']}: {job['error']}")
    started = datetime.fromisoformat(job["started_at"]).timestamp() - posted_wall
    first = ended if first is None else first
    return {"POST to first iteration": first, "POST to succeeded": ended, "of which POST to claimed": started,
            "of which claimed to first iteration": first - started}


def job_phases() -> dict[str, float]:
    """Seconds per phase of a job's start, in a fresh process (interpreter start included)."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bench.job_phases"], capture_output=True, text=True, check=True)
    phases = json.loads(out.stdout.strip().splitlines()[-1])
    return {"interpreter start and exit": time.perf_counter() - started - sum(phases.values())} | phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds the worker idles before each POST")
    parser.add_argument("--phase-runs", type=int, default=3)
    parser.add_argument("--spares", type=int, nargs="+", default=[1, 2], help="CLR_WARM_SPARES of each run")
    parser.add_argument("--jobs-per-child", type=int, nargs="+", default=[1],
                        help="CLR_JOBS_PER_CHILD of each run (more than 1: a CPU host's setting)")
    parser.add_argument("--backends", nargs="+", default=["tensorflow"], choices=["tensorflow", "jax", "torch"],
                        help="CLR_KERAS_BACKEND of each run")
    args = parser.parse_args()
    cases = {"back to back": 0.0, f"worker idle {args.idle:g} s": args.idle}
    runs, ratios = {}, []
    for backend, spares, per_child in itertools.product(args.backends, args.spares, args.jobs_per_child):
        per_process = f", {per_child} jobs per process" if per_child > 1 else ""
        on = f", on {backend}" if backend != "tensorflow" else ""
        worker = f"{spares} spare{'s' * (spares != 1)}{per_process}{on}"
        with tempfile.TemporaryDirectory() as folder, \
                EmbeddedStack(port=free_port(), data_dir=Path(folder), worker_loglevel="WARNING",
                              extra_env={"CLR_WARM_SPARES": str(spares), "CLR_JOBS_PER_CHILD": str(per_child),
                                         "CLR_KERAS_BACKEND": backend}) as stack, \
                Client(stack.url, stack.api_key) as client:
            one_job(client)  # not counted: the cases measure a running worker, not its start
            worker_runs = {f"{case}, {worker}": [
                time.sleep(idle) or one_job(client) for _ in range(args.jobs)] for case, idle in cases.items()}
        runs |= worker_runs
        firsts = ([run["POST to first iteration"] for run in case_runs] for case_runs in worker_runs.values())
        ratios.append((f"{spares} warm spare(s){per_process}{on}", ratio_of_medians(*firsts)))
    phases = [job_phases() for _ in range(args.phase_runs)]
    rows = []
    for case, case_runs in runs.items():
        for milestone in case_runs[0]:
            seconds = [run[milestone] for run in case_runs]
            p50, p90 = np.percentile(seconds, [50, 90])
            met = "met" if p50 <= TARGET_S else f"missed by {p50 - TARGET_S:.2f} s"
            target = f"p50 <= {TARGET_S} s: {met}" if milestone == "POST to first iteration" else ""
            rows.append([case, milestone, f"{p50:.2f}", f"{p90:.2f}", f"{min(seconds):.2f}-{max(seconds):.2f}",
                         target])
    print(table([f"seconds, from the POST of a tiny training ({args.jobs} jobs each)", "", "p50", "p90", "range",
                 "target"], rows))
    print()
    for worker, ratio in ratios:
        met = "met" if ratio.high <= BACK_TO_BACK_TARGET else (
            f"missed: its interval reaches {ratio.high:.2f}" if ratio.median <= BACK_TO_BACK_TARGET
            else f"missed by {ratio.median - BACK_TO_BACK_TARGET:.2f}")
        print(f"{worker}: back to back / idle, p50 of POST to first iteration: {ratio} (bootstrap 95 % "
              f"interval; target <= {BACK_TO_BACK_TARGET}: {met})")
    print()
    print(table([f"a job's start, phase by phase (fresh process, median of {len(phases)})", "seconds"],
                [[name, f"{statistics.median(run[name] for run in phases):.2f}"] for name in phases[0]]))


if __name__ == "__main__":
    main()
