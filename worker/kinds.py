"""The kinds of job, each declared once: its spec (pure pydantic), the worker function that runs it (imported only in
the job's process, as it imports Keras), the curves it keeps beside its own, and what it leaves. The API's submit
route (`POST /<kind>s`), views, curves and metrics and the worker's runner read this registry instead of matching a
kind's name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from clr.config import ComparisonSpec, RangeTestSpec, TrainingSpec
from clr.plan import plan_training
from worker.records import JobRecord
from worker.store import CANDIDATE_PHASES, TRAINING_PHASES

if TYPE_CHECKING:
    from worker.reporting import JobReporter
    from worker.settings import Settings


@dataclass(frozen=True)
class JobKind:
    """One kind of job. `runs` names the worker function (`module:function`) called with the job's spec, its
    reporter and the settings, and with `bounds` where the API resolved a range test's for it (a spec's
    `range_test_id`); None for a kind that runs as other jobs (a comparison: `worker.comparisons`), whose submit
    route is its own. `advice` gives the warnings a spec is queued with, from its data's number of training samples
    (a ValueError: the spec cannot run on that data)."""

    name: str
    spec: type[BaseModel]
    runs: str | None
    summary: str  # what `POST /<kind>s` does, for its documentation
    phases: tuple[str, ...]  # the curves it keeps beside its own (`curves?phase=`)
    sweeps_lr: bool  # its own curve is a range test's, with the bounds it suggests
    trains_model: bool  # it keeps `.keras` models (`/jobs/{id}/model`)
    advice: Callable[[Any, int], tuple[str, ...]] = lambda spec, samples: ()

    @property
    def path(self) -> str:
        """Its submit route: `/range-tests` for `range_test`."""
        return f"/{self.name.replace('_', '-')}s"

    def runner(self) -> Callable[..., dict[str, Any]]:
        """The worker function, imported (with Keras and TensorFlow) on first use."""
        module, _, function = self.runs.partition(":")
        return getattr(importlib.import_module(module), function)

    def run(self, job: JobRecord, reporter: JobReporter, settings: Settings) -> dict[str, Any]:
        """Run `job` (a record of this kind) in this process; return its result."""
        given = {"bounds": tuple(job["bounds"])} if job.get("bounds") else {}
        return self.runner()(self.spec.model_validate(job["spec"]), reporter, settings, **given)


def training_advice(spec: TrainingSpec, samples: int) -> tuple[str, ...]:
    """Smith's advice on a training's step size and length (`clr.plan.plan_training`), and on its whole network's
    stage where it `unfreeze`s."""
    return plan_training(spec, samples).warnings + (tuple(f"unfreeze: {warning}" for warning in plan_training(
        spec.unfrozen(), samples).warnings) if spec.unfreeze else ())


KINDS = {kind.name: kind for kind in (
    JobKind("range_test", RangeTestSpec, "worker.engine.range_test:run_range_test",
            "Queue a learning-rate range test.", CANDIDATE_PHASES, sweeps_lr=True, trains_model=False),
    JobKind("training", TrainingSpec, "worker.engine.training:run_training",
            "Queue a training with a cyclical learning rate; `warnings` give Smith's advice on its step size and "
            "length.", TRAINING_PHASES, sweeps_lr=False, trains_model=True, advice=training_advice),
    JobKind("comparison", ComparisonSpec, None, "Queue the same training under each arm's schedule and seed, and "
            "compare them.", (), sweeps_lr=False, trains_model=False),
)}
KindName = Literal[tuple(KINDS)]
PHASES = tuple(dict.fromkeys(phase for kind in KINDS.values() for phase in kind.phases))  # every kind's, once
