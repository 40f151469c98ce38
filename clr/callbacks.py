"""Keras callbacks with the names and arguments of the ones the seed article installs by hand.

Both record the LR each batch used and its true loss (not Keras's running mean) through `IterationRecorder`.
"""

from __future__ import annotations

import math

import numpy as np

from clr.analysis import ExponentialSmoother, has_diverged
from clr.bounds import BoundSuggestion, suggest_bounds
from clr.recording import IterationRecorder, sync_fit_state
from clr.schedules import check_positive_lr, cyclical_lr, range_sweep


def _set_float_lr(model, lr: float) -> None:
    """Set the rate of the model's next step (on JAX, in the state `fit` holds: `sync_fit_state`)."""
    optimizer = model.optimizer
    sync_fit_state(model)
    try:
        optimizer.learning_rate = lr
    except TypeError as error:
        raise TypeError(
            "This callback sets the learning rate each batch; build the optimizer with a float learning rate, "
            "not a LearningRateSchedule"
        ) from error


class SetsLearningRatePerBatch(IterationRecorder):
    """Base of the callbacks that set the LR before each batch: with `steps_per_execution = k` Keras calls them once
    per k steps, so they refuse such a model instead of recording LRs no step used."""

    def on_train_begin(self, logs=None):
        steps_per_execution = getattr(self.model, "steps_per_execution", 1) or 1
        if steps_per_execution != 1:
            raise ValueError(
                f"{type(self).__name__} sets the learning rate before each batch, but Keras calls it once every "
                f"{steps_per_execution} steps with steps_per_execution={steps_per_execution}: compile with "
                "steps_per_execution=1, or train with `clr.keras_schedule.CyclicalSchedule` (in-graph)"
            )
        super().on_train_begin(logs)


class CyclicLR(SetsLearningRatePerBatch):
    """Sets a cyclical LR before each batch; `history` holds per-iteration `lr`, `iterations` and true `loss`.

    Iterations continue across repeated `fit()` calls until `reset()`.
    """

    def __init__(
        self,
        base_lr=0.001,
        max_lr=0.006,
        step_size=2000.0,
        mode="triangular",
        gamma=1.0,
        scale_fn=None,
        scale_mode="cycle",
        shape="linear",
    ):
        super().__init__()
        self.schedule = cyclical_lr(base_lr, max_lr, step_size, mode, gamma, shape, scale_fn=scale_fn,
                                    scale_mode=scale_mode)
        self.reset()

    def reset(self) -> None:
        """Start again from iteration 0 with an empty history."""
        self.clr_iterations = 0
        self.history: dict[str, list[float]] = {"lr": [], "iterations": [], "loss": []}

    def on_train_batch_begin(self, batch, logs=None):
        _set_float_lr(self.model, self.schedule(self.clr_iterations))

    def on_train_batch_end(self, batch, logs=None):
        self.poll()

    def on_iterations(self, iterations, lrs, losses, accuracies):
        ours = np.arange(self.clr_iterations, self.clr_iterations + len(iterations))
        self.history["iterations"].extend(ours.tolist())
        self.history["lr"].extend(self.schedule(ours).tolist())
        self.history["loss"].extend(losses.tolist())
        self.clr_iterations += len(iterations)


class LRFinder(SetsLearningRatePerBatch):
    """Runs a learning-rate range test inside `model.fit`, then puts the model back as it was.

    With `steps=None` the sweep spans all of fit's epochs x steps per epoch. Training stops when the smoothed loss
    exceeds `stop_factor` times its best or the loss is not finite. Weights and optimizer state are restored at
    the end; `lrs`, `losses` (true per batch), `smoothed_losses` and, for a classification loss, `accuracies` (of
    each batch, from the same forward pass: Smith's signal) hold the curve.
    """

    records_accuracy = True

    def __init__(self, min_lr=1e-5, max_lr=1e-2, steps=None, sweep="exponential", beta=0.98, stop_factor=4.0):
        super().__init__()
        range_sweep(min_lr, max_lr, 2, sweep)  # validates the arguments
        check_positive_lr("stop_factor", stop_factor)
        if steps is not None and not (isinstance(steps, int) and steps >= 2):
            raise ValueError(f"Argument `steps` must be an int >= 2 or None. Received: steps={steps!r}")
        self.min_lr, self.max_lr, self.steps, self.sweep = min_lr, max_lr, steps, sweep
        self.beta, self.stop_factor = beta, stop_factor
        ExponentialSmoother(beta)  # validates beta

    def on_train_begin(self, logs=None):
        steps = self.steps or self._steps_of_fit()
        self.sweep_lrs = range_sweep(self.min_lr, self.max_lr, steps, self.sweep)
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed_losses: list[float] = []
        self.accuracies: list[float] = []  # each batch's, where the loss is a classification one
        self.skipped: list[int] = []  # the points whose step mixed precision's loss scaling skipped
        self._skipped_iterations: set[int] = set()
        self._smoother, self._best = ExponentialSmoother(self.beta), math.inf
        optimizer = self.model.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)  # a loss scaler's
        self.momentum = float(getattr(inner, "momentum", 0.0) or 0.0)  # SGD's and RMSprop's; Adam has none
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self._initial_weights = self.model.get_weights()
        self._initial_optimizer_state = [variable.numpy() for variable in optimizer.variables]
        super().on_train_begin(logs)

    def _steps_of_fit(self) -> int:
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        if not steps:
            raise ValueError("Cannot infer the range test's length: pass `steps` to LRFinder or `steps_per_epoch`")
        return int(epochs * steps)

    def on_train_batch_begin(self, batch, logs=None):
        _set_float_lr(self.model, float(self.sweep_lrs[len(self.losses)]))

    def on_train_batch_end(self, batch, logs=None):
        self.poll()

    def on_skipped(self, iterations):
        self._skipped_iterations.update(iterations)

    def on_iterations(self, iterations, lrs, losses, accuracies):
        if accuracies is not None:
            self.accuracies.extend(accuracies.tolist())
        for iteration, loss in zip(iterations.tolist(), losses.tolist(), strict=True):
            skipped = iteration in self._skipped_iterations  # its loss neither smoothed nor read for divergence
            if skipped:
                self.skipped.append(len(self.losses))
            smoothed = (self.smoothed_losses[-1] if self.smoothed_losses else math.nan) if skipped else \
                self._smoother(loss)
            self.lrs.append(float(self.sweep_lrs[len(self.losses)]))
            self.losses.append(loss)
            self.smoothed_losses.append(smoothed)
            if not skipped:
                self._best = min(self._best, smoothed)
            if (not skipped and has_diverged(smoothed, self._best, self.stop_factor)) or \
                    len(self.losses) >= len(self.sweep_lrs):
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        self.model.set_weights(self._initial_weights)
        for variable, value in zip(self.model.optimizer.variables, self._initial_optimizer_state, strict=True):
            variable.assign(value)

    def suggestion(self) -> BoundSuggestion:
        """Suggested CLR bounds for the recorded curve without its skipped steps (`clr.bounds.suggest_bounds`,
        reading it against the optimizer's momentum, with Smith's reading of the accuracy beside it); raises
        `NoSuggestion`."""
        kept = np.setdiff1d(np.arange(len(self.losses)), self.skipped)
        return suggest_bounds(np.take(self.lrs, kept), np.take(self.losses, kept), beta=self.beta,
                              stop_factor=self.stop_factor, momentum=self.momentum,
                              accuracies=np.take(self.accuracies, kept) if self.accuracies else None)

    def plot(self) -> bytes:
        """The range-test figure as PNG bytes, with the suggested bounds marked."""
        from clr.plots import range_test_png

        return range_test_png(self.lrs, self.losses, self.smoothed_losses, self.suggestion(),
                              accuracies=self.accuracies or None)
