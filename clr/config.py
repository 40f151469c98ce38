"""Pydantic models of CLR configs and job specs: one vocabulary from the HTTP body to the worker."""

from __future__ import annotations

import json
import math
import re
import reprlib
from typing import Annotated, Any, ClassVar, Literal, Self, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from clr.architectures import Architecture
from clr.datasets import BUILTIN_DATASETS
from clr.policies import SCHEDULE_POLICIES
from clr.requests import MOMENTUM_FIELDS, MOMENTUM_SCHEDULES, LearningRate, MomentumCycling, Strict
from clr.schedules import Mode, Schedule, Shape, Sweep, check_clr_arguments, check_lr_range, cyclical_momentum
from clr.tasks import Loss
from clr.verification import MAX_CANDIDATES

MAX_MODEL_JSON_CHARS = 1_000_000
BuiltinDataset = Literal[BUILTIN_DATASETS]
Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]  # Keras's dtype policies

# Layers whose config carries Python code or calls arbitrary functions: refused before any worker sees them.
# Layers that carry code, and Keras's form of a serialized `lambda` (bytecode)
CODE_CARRYING_CLASSES = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda", "TorchModuleWrapper", "JaxLayer",
                                   "__lambda__"})


def one_given(spec: Strict, *fields: str) -> bool:
    """Whether exactly one of `fields` is set on `spec`."""
    return sum(getattr(spec, field) is not None for field in fields) == 1


class OneOf(Strict):
    """A spec that takes exactly one of the fields `one_of`; `one_of_error` is the error when it does not."""

    one_of: ClassVar[tuple[str, ...]]
    one_of_error: ClassVar[str]

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if not one_given(self, *self.one_of):
            raise ValueError(self.one_of_error)
        return self


class CLRConfig(MomentumCycling):
    """A fully resolved cyclical schedule: the arguments of `clr.schedules.cyclical_lr`, and the cyclical momentum
    that may go with it."""

    momentum_follows = ("clr", cyclical_momentum, ("step_size", "mode", "gamma", "shape"))
    base_lr: LearningRate
    max_lr: LearningRate
    step_size: int = Field(ge=1)
    mode: Mode = "triangular"
    shape: Shape = "linear"
    gamma: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_clr_arguments(self.base_lr, self.max_lr, self.step_size, self.mode, self.gamma, self.shape)
        return self


class CLRRequest(MomentumCycling):
    """A cyclical schedule as submitted: bounds may come from a range test, the step size may be in epochs."""

    base_lr: LearningRate | None = None
    max_lr: LearningRate | None = None
    step_size: int | None = Field(None, ge=1)
    step_size_epochs: float | None = Field(None, gt=0, le=1000, allow_inf_nan=False)
    mode: Mode = "triangular"
    shape: Shape = "linear"
    gamma: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not one_given(self, "step_size", "step_size_epochs"):
            raise ValueError("Give exactly one of `step_size` (iterations) and `step_size_epochs`")
        if (self.base_lr is None) != (self.max_lr is None):
            raise ValueError("Give both `base_lr` and `max_lr`, or neither (with `range_test_id`)")
        if self.base_lr is not None:
            check_clr_arguments(self.base_lr, self.max_lr, self.step_size or 1, self.mode, self.gamma, self.shape)
        return self

    def step_size_for(self, iterations_per_epoch: int) -> int:
        """`step_size` in iterations, for data with `iterations_per_epoch`."""
        return self.step_size or max(1, round(self.step_size_epochs * iterations_per_epoch))

    def resolve(self, iterations_per_epoch: int, bounds: tuple[float, float] | None = None) -> CLRConfig:
        """The concrete schedule for data with `iterations_per_epoch`, taking `bounds` where none were given."""
        base_lr, max_lr = bounds if self.base_lr is None else (self.base_lr, self.max_lr)
        return CLRConfig(base_lr=base_lr, max_lr=max_lr, step_size=self.step_size_for(iterations_per_epoch),
                         mode=self.mode, shape=self.shape, gamma=self.gamma, **self.model_dump(include=MOMENTUM_FIELDS))


Policy = Annotated[Union[SCHEDULE_POLICIES], Field(discriminator="policy")]  # noqa: UP007 (a union of the registry)
POLICY_NAMES = ", ".join(f"`{model.name()}`" for model in SCHEDULE_POLICIES)


def momentum_schedule(cycle: dict) -> Schedule:
    """The momentum schedule `clr.plan.momentum_cycle` describes (`clr` and every policy that cycles momentum are
    defined by now)."""
    return MOMENTUM_SCHEDULES[cycle["policy"]](**cycle["arguments"])


class SGD(Strict):
    name: Literal["sgd"]
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False


class Adam(Strict):
    name: Literal["adam"]
    beta_1: float = Field(0.9, gt=0, lt=1)
    beta_2: float = Field(0.999, gt=0, lt=1)
    epsilon: float = Field(1e-7, gt=0, allow_inf_nan=False)


class RMSprop(Strict):
    name: Literal["rmsprop"]
    rho: float = Field(0.9, gt=0, lt=1)
    momentum: float = Field(0.0, ge=0, lt=1)
    epsilon: float = Field(1e-7, gt=0, allow_inf_nan=False)


Optimizer = Annotated[SGD | Adam | RMSprop, Field(discriminator="name")]


def serialized_lambda(config: dict) -> bool:
    """Whether `config` is a `lambda` as a layer's argument saves it: `{"value": [bytecode, defaults, closure]}`."""
    value = config.get("value")
    return config.keys() == {"value"} and isinstance(value, list) and bool(value) and isinstance(value[0], str)


def code_carrying_objects(config: Any) -> set[str]:
    """The classes in a Keras config that carry code or come from outside Keras (custom objects), and any whose
    `module` or `class_name` is no string (`module=None`: Keras's mark of a class of `__main__`). A model's own
    functions are custom objects too: Keras saves them as `builtins.function` by name (its own activations it saves
    as strings); the `compile_config`, which a job does not load, is not looked into."""
    found: set[str] = set()
    if isinstance(config, dict):
        module, class_name = config.get("module", "keras"), config.get("class_name", "")
        if not (isinstance(module, str) and isinstance(class_name, str)):
            found.add(f"module={reprlib.repr(module)} class_name={reprlib.repr(class_name)}")
        else:
            if class_name in CODE_CARRYING_CLASSES:
                found.add(class_name)
            if module.split(".")[0] not in {"keras", "builtins"}:
                found.add(f"{module}.{class_name}")
            if (module, class_name) == ("builtins", "function"):
                found.add(f"function {reprlib.repr(config.get('config'))}")
        if serialized_lambda(config):
            found.add("__lambda__")
        config = {key: value for key, value in config.items() if key != "compile_config"}
        for value in config.values():
            found |= code_carrying_objects(value)
    elif isinstance(config, list):
        for value in config:
            found |= code_carrying_objects(value)
    return found


JSON_STRING = re.compile(rb'"(?:\\.|[^"\\])*"')
MAX_JSON_DEPTH = 64


def json_depth(text: bytes) -> int:
    """How deep arrays and objects nest in JSON `text` (strings skipped), without parsing it."""
    depth = deepest = 0
    for bracket in re.findall(rb"[\[\]{}]", JSON_STRING.sub(b"", text)):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest



def safe_keras_config(text: bytes, name: str) -> dict[str, Any]:
    """A Keras object's config (a model's JSON) parsed once it is safe to: not nested too deep, JSON, a Keras
    object, without custom objects or code-carrying layers; `ValueError` starting with `name` otherwise."""
    if (depth := json_depth(text)) > MAX_JSON_DEPTH:
        raise ValueError(f"{name} nests {depth} levels deep; a Keras model's JSON needs far fewer "
                         f"(at most {MAX_JSON_DEPTH})")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name} is not JSON: {error}") from error
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"{name} must be what `model.to_json()` returns")
    if refused := code_carrying_objects(config):
        raise ValueError(f"{name} holds custom objects, layers that carry code or a `module` or `class_name` that is "
                         f"no string, refused in safe mode: {sorted(refused)}")
    return config


SLICE_SPREAD = 100.0  # fastai's `slice(lr / 100, lr)`
LayerName = Annotated[str, Field(min_length=1, max_length=200)]


class Freeze(OneOf):
    """Layers that do not train (a pretrained body): the first `count` of the model's layers (`model.layers`), or
    those before the layer named `until`."""

    one_of, one_of_error = ("until", "count"), "Give exactly one of `until` (a layer's name) and `count`"

    until: LayerName | None = None
    count: int | None = Field(None, ge=0, le=100_000)


class LayerGroups(Strict):
    """Discriminative rates: the model's layers cut into groups before each layer named in `starts`, each group
    training at its factor times the schedule's rate, in-graph at every step (the curve's `lr` is the last group's,
    the head's, whose factor is 1)."""

    starts: list[LayerName] = Field(min_length=1, max_length=31)
    factors: list[float] | Literal["slice"] = Field("slice", description="One per group, the last 1; `slice`: "
                                                    "fastai's slice(lr / 100, lr), spaced evenly in log from 1/100")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.factors == "slice":
            return self
        if len(self.factors) != len(self.starts) + 1:
            raise ValueError(f"`factors` needs one factor per group: {len(self.starts) + 1} for "
                             f"{len(self.starts)} `starts`. Received: {len(self.factors)}")
        if not all(0 < factor <= 1 for factor in self.factors) or self.factors[-1] != 1:
            raise ValueError(f"Each factor must be in (0, 1] and the last (the head's) 1. Received: {self.factors}")
        return self

    def resolved_factors(self) -> list[float]:
        """Each group's factor; for `slice`, from 1/SLICE_SPREAD (the first group) to 1 (the head), evenly in log."""
        if self.factors != "slice":
            return list(self.factors)
        last = len(self.starts)
        return [float(SLICE_SPREAD ** -((last - index) / last)) for index in range(last + 1)]


def layer_names(config: dict[str, Any]) -> list[str]:
    """The names of a model config's outer layers but its inputs (`model.to_json()`, a `.keras` file's
    `config.json`)."""
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    return [layer["config"]["name"] for layer in layers if isinstance(layer, dict) and layer.get(
        "class_name") != "InputLayer" and isinstance(layer.get("config"), dict) and isinstance(
        layer["config"].get("name"), str)] if isinstance(layers, list) else []


class ModelSpec(OneOf):
    """A built-in architecture by name, a Keras model JSON (`model.to_json()`) without code-carrying layers, or an
    uploaded `.keras` file by id; for fine-tuning, layers frozen and rates per layer group."""

    one_of = ("architecture", "keras_json", "id")
    one_of_error = "Give exactly one of `architecture`, `keras_json` and `id` (an uploaded model)"

    architecture: Architecture | None = None
    keras_json: str | None = Field(None, max_length=MAX_MODEL_JSON_CHARS)
    id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$", description="An uploaded `.keras` model (POST /models)")
    freeze: Freeze | None = Field(None, description="Layers that do not train; a range test then sweeps the rest")
    layer_groups: LayerGroups | None = Field(None, description="Discriminative rates: a multiple of the rate per "
                                             "group of layers")

    def known_layers(self, uploaded: dict[str, Any] | None) -> list[str] | None:
        """The names of the model's outer layers where they are known before it is built: a JSON model's, an
        upload's (its record, `uploaded`)."""
        if self.keras_json is not None:
            return layer_names(json.loads(self.keras_json))
        return (uploaded or {}).get("layers")

    def layers_named(self) -> list[tuple[str, str]]:
        """The layers the spec names, with the field naming each."""
        return ([("model.freeze.until", self.freeze.until)] if self.freeze and self.freeze.until else []) + [
            ("model.layer_groups.starts", name) for name in (self.layer_groups.starts if self.layer_groups else [])]

    @field_validator("keras_json")
    @classmethod
    def _safe(cls, value: str | None) -> str | None:
        if value is not None:
            safe_keras_config(value.encode(), "`keras_json`")
        return value


class DatasetSpec(OneOf):
    """A built-in dataset by name, or an uploaded one by id."""

    one_of, one_of_error = ("name", "id"), "Give exactly one of `name` (built-in) and `id` (uploaded)"

    name: BuiltinDataset | None = None
    id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")


class JobSpec(Strict):
    """What every job trains: a model on a dataset with an optimizer."""

    model: ModelSpec
    dataset: DatasetSpec
    optimizer: Optimizer
    loss: Loss = Field("sparse_categorical_crossentropy", description="Classification losses are measured with "
                       "accuracy, regression ones with MAE and RMSE")
    batch_size: int = Field(ge=1, le=65536)
    validation_split: float = Field(0.0, ge=0, lt=1)
    seed: int | None = Field(None, ge=0, lt=2**32)
    precision: Precision = Field("float32", description="Keras's dtype policy. `mixed_float16` scales the loss and "
                                 "skips a step whose gradients overflow (listed in the job's `skipped_iterations`); "
                                 "the schedule stays on the batch index and a range test's suggestion ignores them")

    def layers_named(self) -> list[tuple[str, str]]:
        """The layers the spec names, with the field naming each."""
        return self.model.layers_named()


class VerifyRequest(Strict):
    """Train `candidates` bound pairs from the curve, one whole triangular cycle of `epochs` each, from the same
    initial weights, and suggest the one that does best on the validation split."""

    candidates: int = Field(5, ge=2, le=MAX_CANDIDATES, description="Bound pairs to train, the first distinct ones "
                            "of: the curve's suggestion, fastai's valley (max_lr = valley, base_lr = valley / 4), "
                            "Smith's reading of the per-batch accuracy (classification), half and twice the "
                            "suggested max_lr, a quarter and four times it")
    epochs: int = Field(4, ge=2, le=100, description="Epochs of each candidate's one cycle (step_size: half of it)")


VERIFY_VALIDATION_SPLIT = 0.1  # held out to judge the candidates when the job holds out nothing


class RangeSweep(Strict):
    """How a range test sweeps the LR: from `start_lr` to `end_lr` over `epochs` or `iterations`."""

    start_lr: LearningRate = 1e-5
    end_lr: LearningRate = 1.0
    sweep: Sweep = "exponential"
    epochs: int | None = Field(None, ge=1, le=1000)
    iterations: int | None = Field(None, ge=2, le=10_000_000)
    stop_factor: float = Field(4.0, gt=1, allow_inf_nan=False)
    beta: float = Field(0.98, ge=0, lt=1)
    verify: VerifyRequest | None = Field(None, description="Train a few bound pairs from the curve for one cycle "
                                         "each and suggest the best on the validation split (`true`: the defaults)")

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_defaults(cls, value: Any) -> Any:
        return {} if value is True else None if value is False else value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_lr_range("start_lr", self.start_lr, "end_lr", self.end_lr)
        if self.epochs is not None and self.iterations is not None:
            raise ValueError("Give at most one of `epochs` and `iterations`")
        if self.epochs is None and self.iterations is None:
            self.epochs = 3
        return self

    def on(self, job: JobSpec) -> RangeTestSpec:
        """The range test of this sweep on `job`'s model, data, optimizer and batch size."""
        return RangeTestSpec.model_validate(job.model_dump(include=set(JobSpec.model_fields)) | self.model_dump())

    def total_iterations(self, iterations_per_epoch: int) -> int:
        """The sweep's length in iterations."""
        return self.iterations or self.epochs * iterations_per_epoch

    def fit_epochs(self, iterations_per_epoch: int) -> int:
        """Epochs of `fit` that hold the sweep."""
        return math.ceil(self.total_iterations(iterations_per_epoch) / iterations_per_epoch)


class RangeTestSpec(JobSpec, RangeSweep):
    """A learning-rate range test: the LR sweeps from `start_lr` to `end_lr` over `epochs` or `iterations`."""

    @model_validator(mode="after")
    def _held_out_for_verify(self) -> Self:
        if self.verify is not None and self.validation_split == 0:
            self.validation_split = VERIFY_VALIDATION_SPLIT
        return self


class TrainingLength(Strict):
    """How long a training runs and at which rates: `epochs` or whole `cycles` of `clr` (or another policy's
    `schedule`), its rates given or found by a `range_test` it runs first."""

    epochs: int | None = Field(None, ge=1, le=10_000)
    cycles: int | None = Field(None, ge=1, le=10_000, description="Train this many whole cycles, ending at base_lr")
    clr: CLRRequest | None = None
    schedule: Policy | None = Field(None, description=f"Another policy than `clr`: {POLICY_NAMES}")
    range_test: RangeSweep | None = Field(None, description="Run this range test first, on the job's own model "
                                                            "and data, and train with the bounds it suggests")
    accept_low_confidence: bool = Field(False, description="Use a range test's bounds even at low confidence")

    def rate_sources(self) -> list[tuple[str, str, Any]]:
        """Where else the rates may come from: each field, as an error names it, and its value."""
        return [("`range_test`", "a `range_test` to run first", self.range_test)]

    @model_validator(mode="after")
    def _consistent_training(self) -> Self:
        if not one_given(self, "clr", "schedule"):
            raise ValueError("Give exactly one of `clr` and `schedule`")
        if not one_given(self, "epochs", "cycles"):
            raise ValueError("Give exactly one of `epochs` and `cycles`")
        if self.schedule is not None and self.cycles is not None:
            raise ValueError(f"`cycles` is for `clr`; a `{self.schedule.policy}` schedule runs for `epochs`")
        rates = "`clr.base_lr` and `clr.max_lr`" if self.clr else f"`schedule.{self.schedule.rate}`"
        given = self.clr.base_lr if self.clr else self.schedule.given_lr
        choices = [(rates, rates, given), *self.rate_sources()]
        sources = [field for field, _, value in choices if value is not None]
        if len(sources) != 1:
            phrases = [phrase for _, phrase, _ in choices]
            raise ValueError(f"Give exactly one of {', '.join(phrases[:-1])}{',' if len(phrases) > 2 else ''} or "
                             f"{phrases[-1]}" + (f"; received {' and '.join(sources)}" if sources else ""))
        return self


class Unfreeze(TrainingLength):
    """A fine-tuning's second stage: once the head has trained with the body frozen (`model.freeze`), the whole
    network trains from the head's weights, at its own rates (given, or found by its own `range_test` on the
    unfrozen network), with discriminative `layer_groups` where given."""

    layer_groups: LayerGroups | None = Field(None, description="Rates per group of layers in this stage (fastai's "
                                             "`slice(lr / 100, lr)`: `{\"starts\": [...]}`)")


class TrainingSpec(JobSpec, TrainingLength):
    """A training with a cyclical learning rate, `epochs` or whole `cycles` long; bounds given, taken from a
    finished range test, or found by a range test the job runs first; for fine-tuning, a second stage that
    `unfreeze`s the whole network."""

    range_test_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    unfreeze: Unfreeze | None = Field(None, description="Then train the whole network (a second stage, after the "
                                      "head's: needs `model.freeze`)")

    def rate_sources(self) -> list[tuple[str, str, Any]]:
        return [("`range_test_id`", "a `range_test_id` to take them from", self.range_test_id), *super().rate_sources()]

    @model_validator(mode="after")
    def _second_stage(self) -> Self:
        if self.unfreeze is not None and self.model.freeze is None:
            raise ValueError("`unfreeze` trains the whole network after its head: give `model.freeze` for the head's "
                             "stage")
        return self

    def layers_named(self) -> list[tuple[str, str]]:
        return super().layers_named() + [("unfreeze.layer_groups.starts", name) for name in (
            self.unfreeze.layer_groups.starts if self.unfreeze and self.unfreeze.layer_groups else [])]

    def unfrozen(self) -> TrainingSpec:
        """The second stage as a training of its own: this job's model, nothing frozen, with the stage's layer
        groups, length and rates."""
        model = self.model.model_dump(exclude={"freeze", "layer_groups"}, exclude_none=True)
        stage = self.unfreeze.model_dump(exclude={"layer_groups"}, exclude_none=True)
        if self.unfreeze.layer_groups is not None:
            model["layer_groups"] = self.unfreeze.layer_groups.model_dump()
        return TrainingSpec.model_validate(self.model_dump(include=set(JobSpec.model_fields)) | {"model": model}
                                           | stage)


ARM_FIELDS = ("clr", "schedule", "range_test_id", "range_test", "accept_low_confidence")


class ComparisonArm(Strict):
    """One schedule to compare, by name, as a training takes it: `clr` (its bounds given, from `range_test_id`, or
    from a `range_test` each of its trainings runs first) or another policy's `schedule`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
    clr: CLRRequest | None = None
    schedule: Policy | None = Field(None, description=f"Another policy than `clr`: {POLICY_NAMES}")
    range_test_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    range_test: RangeSweep | None = None
    accept_low_confidence: bool = False


class ComparisonBase(JobSpec):
    """The training every arm shares: the model, data, optimizer, batch size and epochs (the seed is each run's)."""

    epochs: int = Field(ge=1, le=10_000)
    seed: None = None


MAX_COMPARISON_RUNS = 32


class ComparisonSpec(Strict):
    """The same training under each arm's schedule, once per seed: arms x seeds trainings, compared at the same
    budget."""

    training: ComparisonBase
    arms: list[ComparisonArm] = Field(min_length=1, max_length=12)
    seeds: list[Annotated[int, Field(ge=0, lt=2**32)]] = Field([0], min_length=1, max_length=8)

    @model_validator(mode="after")
    def _runs(self) -> Self:
        for name, values in (("arms", [arm.name for arm in self.arms]), ("seeds", self.seeds)):
            if len(set(values)) != len(values):
                raise ValueError(f"`{name}` must be distinct; received {values}")
        if len(self.arms) * len(self.seeds) > MAX_COMPARISON_RUNS:
            raise ValueError(f"{len(self.arms)} arms x {len(self.seeds)} seeds is more than {MAX_COMPARISON_RUNS} "
                             "trainings")
        for index, arm in enumerate(self.arms):
            try:
                self.training_of(arm, self.seeds[0])
            except ValidationError as error:
                problems = "; ".join(f"{'.'.join(map(str, problem['loc'])) or 'body'}: {problem['msg']}"
                                     for problem in error.errors())
                raise ValueError(f"`arms[{index}]` ({arm.name}) is no training: {problems}") from error
        return self

    def training_of(self, arm: ComparisonArm, seed: int) -> TrainingSpec:
        """The training that runs `arm` with `seed`."""
        return TrainingSpec.model_validate(self.training.model_dump(exclude={"seed"}) | {"seed": seed}
                                           | arm.model_dump(include=set(ARM_FIELDS), exclude_none=True))

    def runs(self) -> list[tuple[ComparisonArm, int, TrainingSpec]]:
        """Every arm x seed with its training, arm by arm."""
        return [(arm, seed, self.training_of(arm, seed)) for arm in self.arms for seed in self.seeds]
