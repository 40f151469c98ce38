"""Chaos: short seeded trainings on two workers of the embedded stack while a random fault hits it every
`--min-gap` to `--max-gap` seconds: SIGKILL of a job's process; SIGKILL of a whole worker (a new one started);
SIGKILL and restart of Redis; SIGKILL and restart of the API; SIGSTOP of a worker that runs a job until the job is
taken over (past `CLR_STALE_AFTER_S`: a network split), then SIGCONT, so the old runner wakes up after the takeover.
Each seed is first trained once, uninterrupted, on the same stack. At the end, every job's state, and every
succeeded job's curve (over HTTP) against the schedule and against its seed's uninterrupted losses. Loopback only;
bounded by `--faults` and `--max-minutes`."""

from __future__ import annotations

import argparse
import collections
import functools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.common import table
from clr import datasets
from clr.config import TrainingSpec
from clr.plan import plan_training
from clr.schedules import cyclical_lr
from clr_service.stack import EmbeddedStack, free_port, start_api, start_worker
from worker.records import TERMINAL_STATES
from worker.store import JobStore

STALE_AFTER_S = 5.0
SERVICE_ENV = {"CLR_STALE_AFTER_S": str(STALE_AFTER_S), "CLR_CHECKPOINT_EVERY_S": "1", "CLR_FLUSH_INTERVAL_S": "0.2"}
CLR = {"base_lr": 0.01, "max_lr": 0.1, "step_size": 180}
LR_RTOL = 1e-6  # float32 as stored
RETRIES = 60  # one a second: a request answered 5xx or not at all is sent again
LEAST_FAULTS = 50  # the target
STUCK_AFTER_S = 120.0  # with two workers and a short queue, a job queued this long since its last sign of life is stuck


def training(seed: int, epochs: int) -> dict:
    """A short seeded training: the MLP on digits."""
    return {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
            "batch_size": 16, "epochs": epochs, "seed": seed, "clr": CLR}


@functools.cache
def digits_train_samples() -> int:
    return len(datasets.digits().x_train)


def total_iterations(body: dict) -> int:
    return plan_training(TrainingSpec.model_validate(body), digits_train_samples()).total_iterations


def runner_pid(job: dict) -> int:
    return int(job["runner"].rpartition(":")[2])


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def poll(condition: Callable[[], object], timeout: float, every: float = 0.2) -> bool:
    """Whether `condition()` came true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


@dataclass
class Chaos:
    """The stack under test (`stack.processes`: Redis, the workers, the API), the jobs it was given, the faults'
    RNG, and every API answer the benchmark got, by status."""

    stack: EmbeddedStack
    client: httpx.Client
    store: JobStore
    rng: random.Random
    seeds: int
    epochs: int
    job_ids: list[str] = field(default_factory=list)
    answers: collections.Counter = field(default_factory=collections.Counter)

    @property
    def workers(self) -> list[subprocess.Popen]:
        return self.stack.processes[1:-1]

    def replace(self, old: subprocess.Popen, new: subprocess.Popen) -> None:
        self.stack.processes[self.stack.processes.index(old)] = new

    def call(self, method: str, path: str, **options) -> httpx.Response:
        """An API request, sent again while the API is away or answers 5xx (Redis restarting)."""
        for _ in range(RETRIES):
            try:
                response = self.client.request(method, path, **options)
            except httpx.TransportError:
                self.answers["no answer"] += 1
            else:
                self.answers[response.status_code] += 1
                if response.status_code < 500:
                    return response.raise_for_status()
            time.sleep(1)
        raise RuntimeError(f"{method} {path}: no answer below 500 in {RETRIES} tries")

    def submit(self, seed: int) -> str:
        return self.call("POST", "/trainings", json=training(seed, self.epochs)).json()["id"]

    def submit_next(self) -> None:
        """One more chaos job, its seed the next in turn."""
        self.job_ids.append(self.submit(len(self.job_ids) % self.seeds))

    def unfinished(self, job_ids: list[str]) -> list[str]:
        return [job_id for job_id, job in zip(job_ids, self.store.get_many(job_ids), strict=True)
                if job is not None and job["state"] not in TERMINAL_STATES]

    def backlog(self) -> int:
        """The chaos jobs running, or queued and not stuck (a stuck job would hold its place in the backlog
        forever, and leave nothing to act on)."""
        now = time.time()
        return sum(1 for job in self.store.get_many(self.job_ids) if job is not None and (
            job["state"] == "running"
            or job["state"] == "queued" and now - max(job["created_at"], job["heartbeat_at"] or 0) < STUCK_AFTER_S))

    def running(self) -> dict[int, str]:
        """The live processes running the jobs: pid -> job id."""
        jobs = [job for job in self.store.get_many(self.job_ids) if job is not None and job["state"] == "running"]
        return {runner_pid(job): job["id"] for job in jobs if job["runner"] and is_alive(runner_pid(job))}

    def busy_workers(self) -> list[tuple[subprocess.Popen, str]]:
        """The workers running a job, with the job's id (a job's process is in its worker's process group)."""
        groups = {}
        for pid, job_id in self.running().items():
            try:
                groups[os.getpgid(pid)] = job_id
            except ProcessLookupError:
                pass
        return [(worker, groups[worker.pid]) for worker in self.workers if worker.pid in groups]


def kill_job_process(chaos: Chaos) -> str | None:
    running = chaos.running()
    if not running:
        return None
    pid, job_id = chaos.rng.choice(sorted(running.items()))
    os.kill(pid, signal.SIGKILL)
    return f"job {job_id[:8]}"


def kill_worker(chaos: Chaos) -> str:
    """SIGKILL a worker's process group (one running a job, when there is one) and start a new worker."""
    busy = chaos.busy_workers()
    worker, job_id = chaos.rng.choice(busy) if busy else (chaos.rng.choice(chaos.workers), None)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    chaos.replace(worker, start_worker(chaos.stack.env, "WARNING"))
    return f"worker {worker.pid}" + (f", job {job_id[:8]}" if job_id else ", running no job")


def restart_redis(chaos: Chaos) -> str:
    server = chaos.stack.processes[0]
    server.kill()
    server.wait()
    chaos.stack.processes[0] = chaos.stack.start_redis()
    return "Redis"


def restart_api(chaos: Chaos) -> str:
    api = chaos.stack.processes[-1]
    api.kill()
    api.wait()
    chaos.stack.processes[-1] = start_api(chaos.stack.host, chaos.stack.port, chaos.stack.env)
    return "API"


def taken_over(store: JobStore, job_id: str, attempt: int) -> bool:
    """Whether the job left `attempt`'s hands for another's: queued again, or claimed by a later attempt."""
    job = store.get(job_id)
    return job["state"] == "queued" or job["attempts"] != attempt


def stop_worker_until_taken_over(chaos: Chaos) -> str | None:
    """SIGSTOP a worker running a job until the job is taken over (at most 4 stale times), then SIGCONT."""
    busy = chaos.busy_workers()
    if not busy:
        return None
    worker, job_id = chaos.rng.choice(busy)
    attempt = chaos.store.get(job_id)["attempts"]
    stopped = time.monotonic()
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        taken = poll(lambda: taken_over(chaos.store, job_id, attempt), 4 * STALE_AFTER_S)
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    outcome = "taken over" if taken else "NOT taken over"
    return f"worker {worker.pid}, job {job_id[:8]}: stopped {time.monotonic() - stopped:.1f} s, {outcome}"


FAULTS: dict[str, Callable[[Chaos], str | None]] = {
    "SIGKILL of a job's process": kill_job_process,
    "SIGKILL of a whole worker, a new one started": kill_worker,
    "SIGKILL and restart of Redis": restart_redis,
    "SIGKILL and restart of the API": restart_api,
    "SIGSTOP of a worker past the stale time, then SIGCONT": stop_worker_until_taken_over,
}


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str
    target: str


def one_fault(chaos: Chaos, owed: list[str], started: float, skipped: collections.Counter) -> Fault | None:
    """A fault of the first kind that has something to act on: of the kinds still `owed` (then no longer owed), or
    else of all kinds in random order; None when none has."""
    for kind in list(owed) or chaos.rng.sample(list(FAULTS), len(FAULTS)):
        target = FAULTS[kind](chaos)
        if target is not None:
            if kind in owed:
                owed.remove(kind)
            return Fault(time.monotonic() - started, kind, target)
        skipped[kind] += 1
    return None


def keep_fed(chaos: Chaos, seconds: float, keep: int) -> None:
    """Wait `seconds`, submitting another training whenever the backlog is under `keep`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if chaos.backlog() < keep:
            chaos.submit_next()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def run_faults(chaos: Chaos, arguments: argparse.Namespace) -> tuple[list[Fault], collections.Counter]:
    """Faults until `--faults` of them or `--max-minutes`: each kind once first with `--each-once`, then at
    random. Returns them and how often each kind was skipped, having nothing to act on."""
    faults, skipped, owed = [], collections.Counter(), list(FAULTS) if arguments.each_once else []
    chaos.rng.shuffle(owed)
    started = time.monotonic()
    while len(faults) < arguments.faults and time.monotonic() - started < arguments.max_minutes * 60:
        keep_fed(chaos, chaos.rng.uniform(arguments.min_gap, arguments.max_gap), arguments.keep)
        if fault := one_fault(chaos, owed, started, skipped):
            faults.append(fault)
            print(f"[{fault.at_s:7.1f} s] {fault.kind}: {fault.target}", file=sys.stderr, flush=True)
    return faults, skipped


@dataclass(frozen=True)
class CurveCheck:
    """What a curve of `total` iterations gets wrong: iterations without a point, points past the first of their
    iteration (or outside the training), points whose LR is not the schedule's at their iteration."""

    missing: int
    repeated: int
    lr_mismatches: int


def check_curve(curves: dict, total: int, clr: dict) -> CurveCheck:
    iterations = np.asarray(curves["iteration"])
    kept = np.unique(iterations[(iterations >= 0) & (iterations < total)])
    scheduled = cyclical_lr(**clr)(iterations)
    lr_mismatches = np.count_nonzero(~np.isclose(np.asarray(curves["lr"], float), scheduled, rtol=LR_RTOL, atol=0))
    return CurveCheck(total - len(kept), len(iterations) - len(kept), int(lr_mismatches))


def loss_difference(losses: np.ndarray, reference: np.ndarray) -> tuple[bool, float]:
    """Whether the losses equal the reference's bit for bit, and their largest absolute difference."""
    common = min(len(losses), len(reference))
    equal = len(losses) == len(reference) and np.array_equal(losses, reference)
    return equal, float(np.nanmax(np.abs(losses[:common] - reference[:common]), initial=0.0))


@dataclass(frozen=True)
class Outcome:
    """A job's end (`lost`: it never ended, or vanished) and, if it succeeded, what its curve gets wrong."""

    state: str
    attempts: int = 0
    resumed_from: tuple[int, ...] = ()  # the iteration each attempt that reached training started at
    curve: CurveCheck | None = None
    losses_equal: bool = False
    loss_difference: float = 0.0
    error: str | None = None

    @property
    def resumed_mid_training(self) -> bool:
        """Whether an attempt started from a checkpoint past iteration 0."""
        return any(self.resumed_from)


def losses_of(chaos: Chaos, job_id: str) -> tuple[dict, np.ndarray]:
    curves = chaos.call("GET", f"/jobs/{job_id}/curves").json()
    return curves, np.asarray(curves["loss"], float)


def outcome(chaos: Chaos, job_id: str, references: dict[int, np.ndarray]) -> Outcome:
    job = chaos.store.get(job_id)
    if job is None:
        return Outcome("lost", error="vanished")
    started = {"attempts": job["attempts"],
               "resumed_from": tuple(resume["resumed_from"] for resume in job["resumes"] or [])}
    if job["state"] not in TERMINAL_STATES:
        return Outcome("lost", **started, error=f"still {job['state']}")
    if job["state"] != "succeeded":
        return Outcome(job["state"], **started, error=job["error"])
    curves, losses = losses_of(chaos, job_id)
    equal, difference = loss_difference(losses, references[job["spec"]["seed"]])
    return Outcome("succeeded", **started, curve=check_curve(curves, total_iterations(job["spec"]), CLR),
                   losses_equal=equal, loss_difference=difference)


def uninterrupted_references(chaos: Chaos, timeout: float) -> dict[int, np.ndarray]:
    """Each seed's losses, trained once on the stack before any fault."""
    ids = {seed: chaos.submit(seed) for seed in range(chaos.seeds)}
    poll(lambda: not chaos.unfinished(list(ids.values())), timeout, every=1)
    for job in chaos.store.get_many(list(ids.values())):
        if job["state"] != "succeeded" or job["attempts"] != 1:
            raise RuntimeError(f"The reference {job['id']} ended {job['state']} after {job['attempts']} attempts")
    return {seed: losses_of(chaos, job_id)[1] for seed, job_id in ids.items()}


def fault_table(faults: list[Fault], skipped: collections.Counter) -> str:
    counts = collections.Counter(fault.kind for fault in faults)
    rows = [[kind, counts[kind], skipped[kind]] for kind in FAULTS]
    return table(["fault", "count", "skipped: nothing to act on"], rows + [["total", len(faults), skipped.total()]])


def totals(outcomes: list[Outcome]) -> dict[str, int]:
    """The jobs by how they ended; over the succeeded ones, what their curves get wrong and how many have their
    seed's uninterrupted losses."""
    states = collections.Counter(outcome.state for outcome in outcomes)
    checked = [outcome for outcome in outcomes if outcome.curve is not None]
    return {state: states[state] for state in ("succeeded", "failed", "cancelled", "lost")} | {
        "points missing": sum(outcome.curve.missing for outcome in checked),
        "points repeated": sum(outcome.curve.repeated for outcome in checked),
        "LR mismatches": sum(outcome.curve.lr_mismatches for outcome in checked),
        "losses equal": sum(outcome.losses_equal for outcome in checked)}


def outcome_row(name: str, outcomes: list[Outcome]) -> list[object]:
    counts = totals(outcomes)
    largest = max((outcome.loss_difference for outcome in outcomes if outcome.curve is not None), default=0.0)
    return [name, len(outcomes), counts["succeeded"], counts["failed"], counts["cancelled"], counts["lost"],
            counts["points missing"], counts["points repeated"], counts["LR mismatches"],
            f"{counts['losses equal']} / {counts['succeeded']}", f"{largest:.3g}"]


def outcome_table(outcomes: list[Outcome]) -> str:
    groups = {"all": outcomes,
              "run by more than one attempt": [job for job in outcomes if job.attempts > 1],
              "of which resumed from a checkpoint": [job for job in outcomes if job.resumed_mid_training],
              "run by one attempt": [job for job in outcomes if job.attempts <= 1]}
    return table(["jobs", "count", "succeeded", "failed", "cancelled", "lost", "points missing", "points repeated",
                  "LR mismatches", "losses equal to the uninterrupted run's", "max abs loss difference"],
                 [outcome_row(name, group) for name, group in groups.items()])


def targets(faults: list[Fault], outcomes: list[Outcome]) -> str:
    """Each target, met or missed, with its figure."""
    counts = totals(outcomes)
    figures = [(f"at least {LEAST_FAULTS} faults", len(faults), len(faults) >= LEAST_FAULTS)]
    zeros = {"jobs lost": counts["lost"]} | {name: counts[name] for name in ("points missing", "points repeated",
                                                                          "LR mismatches")}
    figures += [(f"0 {name}", count, count == 0) for name, count in zeros.items()]
    equal, succeeded = counts["losses equal"], counts["succeeded"]
    figures.append(("every succeeded job's losses equal its seed's uninterrupted run's", f"{equal} of {succeeded}",
                    equal == succeeded))
    return "\n".join(f"- {name}: {'met' if met else 'missed'} ({figure})" for name, figure, met in figures)


def parsed_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=12, help="trainings submitted before the first fault")
    parser.add_argument("--keep", type=int, default=4,
                        help="while faults go on, keep this many running or queued (and not stuck)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--each-once", action="store_true", help="one fault of each kind first, in random order")
    parser.add_argument("--min-gap", type=float, default=10.0)
    parser.add_argument("--max-gap", type=float, default=40.0)
    parser.add_argument("--max-minutes", type=float, default=40.0, help="bound on the faults' phase")
    parser.add_argument("--wait-minutes", type=float, default=5.0, help="bound on waiting for the jobs' ends")
    parser.add_argument("--max-attempts", type=int, default=100, help="CLR_MAX_ATTEMPTS of the stack")
    parser.add_argument("--rng-seed", type=int, default=0)
    return parser.parse_args()


def run(chaos: Chaos, arguments: argparse.Namespace) -> tuple[list[Fault], collections.Counter, dict[str, Outcome]]:
    """References, then the chaos jobs under faults, then each job's outcome once all ended (or the wait ran out)."""
    chaos.stack.processes.insert(-1, start_worker(chaos.stack.env, "WARNING"))
    started = time.monotonic()
    references = uninterrupted_references(chaos, arguments.wait_minutes * 60)
    print(f"{arguments.seeds} references trained in {time.monotonic() - started:.0f} s", file=sys.stderr)
    for _ in range(arguments.jobs):
        chaos.submit_next()
    faults, skipped = run_faults(chaos, arguments)
    poll(lambda: not chaos.unfinished(chaos.job_ids), arguments.wait_minutes * 60, every=1)
    return faults, skipped, {job_id: outcome(chaos, job_id, references) for job_id in chaos.job_ids}


def main() -> None:
    arguments = parsed_arguments()
    env = SERVICE_ENV | {"CLR_MAX_ATTEMPTS": str(arguments.max_attempts)}
    with tempfile.TemporaryDirectory() as folder, EmbeddedStack(
            port=free_port(), data_dir=Path(folder), extra_env=env, worker_loglevel="WARNING") as stack, \
            stack.client() as client:
        chaos = Chaos(stack, client, JobStore.from_url(stack.redis_url), random.Random(arguments.rng_seed),
                      arguments.seeds, arguments.epochs)
        faults, skipped, outcomes = run(chaos, arguments)
    print(fault_table(faults, skipped))
    print()
    print(outcome_table(list(outcomes.values())))
    print()
    print(targets(faults, list(outcomes.values())))
    for job_id, ended in outcomes.items():
        print(f"{job_id}: {ended}", file=sys.stderr)
        if ended.state != "succeeded":
            print(f"\n{job_id} {ended.state}: {ended.error}")
    print(f"\nAPI answers to the benchmark: {dict(sorted(chaos.answers.items(), key=str))}")


if __name__ == "__main__":
    main()
