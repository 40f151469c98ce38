"""A job's model, optimizer and in-graph schedules, built and compiled from its spec."""

from __future__ import annotations

import keras

from clr import datasets, layer_rates, models
from clr.config import SGD, Adam, JobSpec, ModelSpec, RMSprop, TrainingSpec
from clr.keras_momentum import (
    ScheduledMomentumAdam,
    ScheduledMomentumRMSprop,
    ScheduledMomentumSGD,
    in_graph_momentum,
)
from clr.keras_schedule import CyclicalSchedule, in_graph_schedule
from clr.mixed_precision import BatchCountingLossScaleOptimizer
from clr.plan import TrainingPlan, momentum_cycle
from clr.tasks import Task
from worker.engine.data import Split, split
from worker.engine.devices import job_strategy
from worker.errors import JobError
from worker.settings import Settings


def build_model(spec: JobSpec, data: datasets.Dataset, settings: Settings) -> keras.Model:
    """The job's model, computing in the spec's precision, its labels checked against its loss and the model against
    the data's sample shape and the outputs the labels need."""
    task = Task(spec.loss)
    try:
        outputs = task.required_outputs(data.labels())
        built = None if spec.model.architecture is None else models.build(
            spec.model.architecture, data.input_shape, outputs, task.activation)
    except ValueError as error:
        raise JobError(str(error)) from error
    model = given_model(spec, data, outputs, settings) if built is None else built
    if (frozen := spec.model.freeze) is not None:
        fine_tuning_step(layer_rates.freeze, model, frozen.count, frozen.until)
    return model


def given_model(spec: JobSpec, data: datasets.Dataset, outputs: int, settings: Settings) -> keras.Model:
    """The model the spec gives (JSON or an upload), in the spec's precision, checked against the data."""
    given = models.from_json(spec.model.keras_json) if spec.model.keras_json else uploaded_model(spec.model, settings)
    model = models.in_precision(given, spec.precision)
    expected = tuple(model.input_shape[1:])
    if expected != data.input_shape:
        raise JobError(f"The model expects samples of shape {expected}; the dataset's are {data.input_shape}")
    sparse = spec.loss == "sparse_categorical_crossentropy"  # classes past the labels' highest are allowed
    if not (model.output_shape[-1] >= outputs if sparse else model.output_shape[-1] == outputs):
        raise JobError(f"The model has {model.output_shape[-1]} outputs; the labels need "
                       f"{'at least ' if sparse else ''}{outputs} for loss {spec.loss!r}")
    return model


def fine_tuning_step(step, *arguments):
    """`step(*arguments)` (a `clr.layer_rates` function), its `ValueError` the job's error."""
    try:
        return step(*arguments)
    except ValueError as error:
        raise JobError(f"Fine-tuning: {error}") from error


def layer_groups(model: keras.Model, spec: ModelSpec) -> list[dict] | None:
    """The spec's layer groups on `model`, with their factors (None: one rate for all)."""
    groups = spec.layer_groups
    return None if groups is None else fine_tuning_step(layer_rates.layer_groups, model, groups.starts,
                                                        groups.resolved_factors())


def fine_tuning(model: keras.Model, spec: ModelSpec) -> dict:
    """What a result says of the fine-tuning: the frozen layers and the layer groups (nothing when none)."""
    return ({"frozen_layers": [layer.name for layer in model.layers if not layer.trainable]} if spec.freeze else {}
            ) | ({"layer_groups": layer_groups(model, spec)} if spec.layer_groups else {})


def uploaded_model(spec: ModelSpec, settings: Settings) -> keras.Model:
    """An uploaded `.keras` model, loaded in safe mode."""
    path = settings.models_dir / f"{spec.id}.keras"
    if not settings.storage().fetch(path):
        raise JobError(f"Uploaded model {spec.id} is not on this worker's data volume ({path})")
    try:
        return models.from_file(path)
    except (TypeError, ValueError) as error:
        raise JobError(f"The uploaded model {spec.id} does not load in safe mode: {error}") from error


def metrics(task: Task) -> list:
    """Accuracy for classification, MAE and RMSE for regression."""
    if task.classification:
        return ["accuracy"]
    return [keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse")]


def make_optimizer(spec: SGD | Adam | RMSprop, learning_rate, cycle: dict | None = None,
                   factors: dict[str, float] | None = None) -> keras.optimizers.Optimizer:
    """The Keras optimizer the spec names, its momentum (Adam's `beta_1`) on the schedule `cycle` describes (a
    `clr.plan.momentum_cycle`) when there is one, and a multiple of the rate per variable where `factors` has one
    (`clr.layer_rates.variable_factors`)."""
    options = spec.model_dump(exclude={"name"})
    if cycle is None:
        classes = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    else:
        classes = {"sgd": ScheduledMomentumSGD, "adam": ScheduledMomentumAdam, "rmsprop": ScheduledMomentumRMSprop}
        options["momentum_schedule"] = in_graph_momentum(cycle)
    if factors:
        return layer_rates.LAYER_RATE_OPTIMIZERS[classes[spec.name]](learning_rate=learning_rate, factors=factors,
                                                                     **options)
    return classes[spec.name](learning_rate=learning_rate, **options)


def prepare_model(spec: JobSpec, data: datasets.Dataset, learning_rate, settings: Settings,
                  steps_per_execution: int, devices: list[str], cycle: dict | None = None) -> tuple[keras.Model, Split]:
    """The compiled model, on `devices` (several GPUs: one step per execution, as Keras's `fit` under
    MirroredStrategy fails with more; PyTorch runs one too), in the spec's precision, and the data split. Under
    `mixed_float16` the loss is scaled by an optimizer that counts a skipped step as a batch (`clr.mixed_precision`).
    Keras's session is cleared first: the layers are named as in a fresh process whatever this process built before
    (an earlier job's models, where a pool process runs several, or a training's own range test's), so a name a spec
    gives (`freeze`, `layer_groups`) means the same layer in each; a model built before must not be used after."""
    keras.backend.clear_session()
    if spec.seed is not None:
        keras.utils.set_random_seed(spec.seed)
    prepared = split(data, spec.validation_split)
    strategy = job_strategy(devices)
    keras.config.set_dtype_policy(spec.precision)  # for the models built next
    with strategy.scope():
        model = build_model(spec, data, settings)
        groups = layer_groups(model, spec.model)
        optimizer = make_optimizer(spec.optimizer, learning_rate, cycle,
                                   groups and layer_rates.variable_factors(model, groups))
        model.compile(
            optimizer=BatchCountingLossScaleOptimizer(optimizer) if spec.precision == "mixed_float16" else optimizer,
            loss=spec.loss,
            metrics=metrics(Task(spec.loss)),
            steps_per_execution=1 if strategy.num_replicas_in_sync > 1 or keras.backend.backend() == "torch"
            else steps_per_execution,
        )
    return model, prepared


def schedules(spec: TrainingSpec, plan: TrainingPlan, bounds: tuple[float, float] | None
              ) -> tuple[keras.optimizers.schedules.LearningRateSchedule, dict | None]:
    """The training's in-graph LR schedule, its rates taken from `bounds` (a range test's) where the spec has none
    (1cycle and SGDR peak at the suggested `max_lr`), and the momentum cycle that goes with it (None: fixed)."""
    if spec.clr is not None:
        config = spec.clr.resolve(plan.iterations_per_epoch, bounds)
        arguments = config.lr_arguments()
        return CyclicalSchedule(**arguments), momentum_cycle(config, arguments)
    policy = spec.schedule
    arguments = policy.schedule_arguments(policy.given_lr or bounds[1], plan.total_iterations,
                                          plan.iterations_per_epoch)
    return in_graph_schedule(policy.oracle, arguments), momentum_cycle(policy, arguments)
