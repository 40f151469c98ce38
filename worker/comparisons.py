"""A comparison's life: no worker runs it; its trainings (ordinary jobs) do, and it ends, with its table, once they
all have. Whoever sees the last of them end settles it: the runner that ended it, or the API reading the comparison
(a training can end where no runner is, cancelled while queued or out of attempts)."""

from __future__ import annotations

from clr.comparison import comparison_table
from clr.config import ComparisonSpec
from worker.records import TERMINAL_STATES, JobRecord
from worker.store import JobStore


def child_ids(comparison: JobRecord) -> list[str]:
    """Its trainings' ids, arm by arm, seed by seed."""
    return [job_id for seeds in (comparison["children"] or {}).values() for job_id in seeds.values()]


def fixed_arms(spec: ComparisonSpec) -> list[str]:
    """The arms with a constant rate: the best of them sets the final accuracy the others race to."""
    return [arm.name for arm in spec.arms if arm.schedule is not None and arm.schedule.policy == "constant"]


def settle(store: JobStore, comparison: JobRecord) -> JobRecord:
    """End `comparison` if all its trainings have: `cancelled` when it was asked to, `succeeded` when every training
    did, `failed` otherwise (naming the trainings that did not); return its record as it stands."""
    if comparison["state"] in TERMINAL_STATES:
        return comparison
    ids = child_ids(comparison)
    children = dict(zip(ids, store.get_many(ids), strict=True))
    if any(child is not None and child["state"] not in TERMINAL_STATES for child in children.values()):
        return comparison
    spec = ComparisonSpec.model_validate(comparison["spec"])
    results = {arm: [children[job_id]["result"] for job_id in seeds.values()
                     if children[job_id] is not None and children[job_id]["state"] == "succeeded"]
               for arm, seeds in comparison["children"].items()}
    missed = [f"{job_id} ({child['state'] if child else 'deleted'})" for job_id, child in children.items()
              if child is None or child["state"] != "succeeded"]
    state = "cancelled" if comparison["cancel_requested"] else "failed" if missed else "succeeded"
    error = f"Not every training succeeded: {', '.join(missed)}" if state == "failed" else None
    store.settle(comparison["id"], state, comparison_table(results, fixed_arms(spec)), error)
    return store.get(comparison["id"])


def current(store: JobStore, job: JobRecord | None) -> JobRecord | None:
    """The job as it stands: a comparison whose trainings have all ended, settled."""
    return settle(store, job) if job is not None and job.get("children") is not None else job


def settle_parent(store: JobStore, job: JobRecord | None) -> None:
    """Settle the comparison that `job` (just ended) belongs to, if any."""
    if job is not None and job.get("comparison") and (parent := store.get(job["comparison"]["id"])) is not None:
        settle(store, parent)
