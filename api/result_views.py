"""Job results as the API reports them: what the worker writes (`worker.engine`: `run_range_test`, `run_training`),
typed, and any other key kept as it is. A result's keys are optional (`MISSING`): a record an older worker wrote lacks
some, and the answer leaves out what the record lacks instead of inventing it; the fields of a dataclass the worker
writes whole are required."""

from __future__ import annotations

from typing import Any

from pydantic import MISSING, BaseModel, ConfigDict

from clr.bounds import Confidence


class Reported(BaseModel):
    """A part of a result: its typed keys, and any others kept."""

    model_config = ConfigDict(extra="allow")


class StepSizeAdviceView(Reported):
    """`clr.schedules.StepSizeAdvice`: Smith's `step_size` range, 2 to 10 epochs of iterations."""

    iterations_per_epoch: int
    min_step_size: int
    max_step_size: int


class BoundSuggestionView(Reported):
    """`clr.bounds.BoundSuggestion`: suggested CLR bounds, how far to trust them and why, and the single-LR rules."""

    min_lr: float
    max_lr: float
    min_index: int
    max_index: int
    confidence: Confidence
    reasons: list[str]
    steepest_lr: float
    minimum_lr: float
    valley_lr: float
    explanation: str
    verified: bool | MISSING = MISSING
    accuracy_bounds: list[float] | None | MISSING = MISSING


class LayerGroupView(Reported):
    """A group of `model.layer_groups`: its layers train at `factor` times the schedule's rate."""

    layers: list[str]
    factor: float


class VerifiedCandidate(Reported):
    """A bound pair a verified range test trained one cycle (`worker.engine.verification.train_candidate`), and how
    it did on the validation split (None: diverged)."""

    name: str
    min_lr: float
    max_lr: float
    epochs: int | MISSING = MISSING
    iterations: int | MISSING = MISSING
    val_loss: float | None | MISSING = MISSING
    val_loss_se: float | None | MISSING = MISSING
    val_accuracy: float | None | MISSING = MISSING
    phase: str | MISSING = MISSING
    chosen: bool | MISSING = MISSING
    skipped_steps: int | MISSING = MISSING  # under `mixed_float16`: steps its loss scaling skipped


class RangeTestResult(Reported):
    """A range test's outcome: `suggested_bounds` (None with a `warning` when the curve supports none); a verified
    one's `verification` and the curve's own `unverified_bounds`."""

    iterations: int | MISSING = MISSING
    stopped_early: bool | MISSING = MISSING
    step_size_advice: StepSizeAdviceView | MISSING = MISSING
    suggested_bounds: BoundSuggestionView | None | MISSING = MISSING
    devices: list[str] | MISSING = MISSING
    warning: str | MISSING = MISSING
    verification: list[VerifiedCandidate] | MISSING = MISSING
    unverified_bounds: BoundSuggestionView | MISSING = MISSING
    skipped_iterations: list[int] | MISSING = MISSING  # the sweep's points that `mixed_float16` skipped: not read
    frozen_layers: list[str] | MISSING = MISSING  # `model.freeze`'s: the sweep trained the others
    layer_groups: list[LayerGroupView] | MISSING = MISSING


class TrainingResult(Reported):
    """A training's outcome: its `clr` or `schedule`, per-epoch `history`, the saved files' sizes, and a
    `test_<metric>` key per metric where the dataset has a test set."""

    resumed_from: int | MISSING = MISSING
    bounds: list[float] | None | MISSING = MISSING
    iterations: int | MISSING = MISSING
    epochs: int | MISSING = MISSING
    devices: list[str] | MISSING = MISSING
    momentum_cycle: dict[str, Any] | None | MISSING = MISSING
    final_metrics: dict[str, float | None] | MISSING = MISSING
    history: dict[str, list[float | None]] | MISSING = MISSING
    clr: dict[str, Any] | MISSING = MISSING
    schedule: dict[str, Any] | MISSING = MISSING
    model_bytes: int | MISSING = MISSING
    best_model_bytes: int | MISSING = MISSING
    training_state_bytes: int | MISSING = MISSING  # both models' files with the optimizer (`include_optimizer=true`)
    class_names: list[str] | MISSING = MISSING  # an image folder's classes, by output index
    frozen_layers: list[str] | MISSING = MISSING  # `model.freeze`'s
    layer_groups: list[LayerGroupView] | MISSING = MISSING
    head: TrainingResult | MISSING = MISSING  # a training that `unfreeze`s: its head's stage (this is the whole's)


class Spread(Reported):
    """A figure over a comparison arm's runs (seeds): its mean and sample standard deviation (None below two runs)
    over the `n` runs that have it."""

    mean: float | None
    std: float | None
    n: int


class ComparedArm(Reported):
    """`clr.comparison.comparison_table`'s row of an arm: its succeeded `runs`, each run's resolved schedule, the
    spread of each final and best metric, and the iterations to reach the best fixed-rate arm's final accuracy
    (`never` when no run reached it; absent without a constant-rate arm)."""

    name: str
    runs: int
    schedules: list[dict[str, Any] | None]
    final: dict[str, Spread]
    best: dict[str, Spread]
    iterations_to_target: Any = MISSING  # {"per_run": [...], "mean", "std", "n"} or "never"


class ComparisonResult(Reported):
    """A comparison's table (Smith 2017, Table 1): a row per arm, and the target the best fixed-rate arm set (`arm`,
    `metric`, `value`; None without a constant-rate arm)."""

    target: dict[str, Any] | None
    arms: list[ComparedArm]


# The typed result of each kind that has one; another's result is `Reported` (its keys passed through).
RESULT_VIEWS = {"range_test": RangeTestResult, "training": TrainingResult, "comparison": ComparisonResult}
