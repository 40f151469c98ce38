"""matplotlib figures rendered to PNG bytes with the Agg backend (never a window)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clr.analysis import finite_prefix_length, smooth
from clr.bounds import MIN_CURVE_LENGTH, BoundSuggestion, smooth_in_log_lr


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def range_test_png(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    smoothed_losses: npt.ArrayLike,
    suggestion: BoundSuggestion | None = None,
    no_suggestion: str | None = None,
    verification: Sequence[Mapping] = (),
    accuracies: npt.ArrayLike | None = None,
) -> bytes:
    """Loss and smoothed loss against the LR on a log axis, with the suggested bounds shaded, the single-LR rules
    marked as cross-checks, the confidence (or why there is no suggestion) in the title, each batch's accuracy on a
    second axis where recorded, and the verification's candidates as bars below the curve with their table under
    the figure."""
    figure = Figure(figsize=(8, 5 + 0.25 * len(verification)))
    axes = figure.add_subplot()
    axes.plot(lrs, losses, color="0.75", linewidth=0.8, label="loss per batch")
    axes.plot(lrs, smoothed_losses, color="C0", alpha=0.5, label="smoothed loss (running)")
    finite = finite_prefix_length(losses)
    if finite >= MIN_CURVE_LENGTH:
        curve = smooth_in_log_lr(np.asarray(lrs)[:finite], np.asarray(losses)[:finite])
        axes.plot(10**curve.log_lr, curve.smoothed, color="C1", label="smoothed in log-LR (what the suggestion reads)")
    title = "Learning-rate range test"
    if suggestion is not None:
        axes.axvspan(suggestion.min_lr, suggestion.max_lr, color="C2", alpha=0.15,
                     label=f"suggested bounds {suggestion.min_lr:.3g} to {suggestion.max_lr:.3g}")
        for lr, name, style in ((suggestion.valley_lr, "valley", ":"), (suggestion.steepest_lr, "steepest", "-."),
                                (suggestion.minimum_lr, "minimum / 10", "--")):
            axes.axvline(lr, color="0.4", linestyle=style, linewidth=1, label=f"{name} = {lr:.3g}")
        title += f" (confidence: {suggestion.confidence})"
        if suggestion.reasons:
            title += "\n" + "; ".join(suggestion.reasons)
    elif no_suggestion:
        title += "\nno suggestion: " + no_suggestion
    smoothed = np.asarray(smoothed_losses, dtype=np.float64)
    smoothed = smoothed[np.isfinite(smoothed)]
    if len(smoothed):  # from the lowest per-batch loss to a little above the plateau before the fall
        per_batch = np.asarray(losses, dtype=np.float64)
        low = min(smoothed.min(), np.nanmin(np.where(np.isfinite(per_batch), per_batch, np.nan)))
        high = 1.25 * smoothed[: int(np.argmin(smoothed)) + 1].max()
        axes.set_ylim(low - 0.05 * (high - low), high)
    axes.set(xscale="log", xlabel="learning rate", ylabel="loss")
    axes.set_title(title, fontsize=10, wrap=True)
    axes.legend(fontsize=8)
    if accuracies is not None:
        accuracy_axes = axes.twinx()
        accuracy_axes.plot(lrs, accuracies, color="C4", linewidth=0.6, alpha=0.6)
        accuracy_axes.set_ylabel("accuracy per batch", color="C4")
        accuracy_axes.set_ylim(0, 1.02)
        if suggestion is not None and suggestion.accuracy_bounds:
            for lr in suggestion.accuracy_bounds:
                accuracy_axes.axvline(lr, color="C4", linestyle="--", linewidth=1)
    if verification:
        _draw_candidates(axes, verification)
    return _png(figure)


def _draw_candidates(axes, verification: Sequence[Mapping]) -> None:
    """Each verified candidate's bounds as a bar near the bottom (the chosen one green), and their table below."""
    low, high = axes.get_ylim()
    for index, candidate in enumerate(verification):
        y = low + (0.03 + 0.04 * index) * (high - low)
        axes.plot([candidate["min_lr"], candidate["max_lr"]], [y, y], marker="|",
                  color="C2" if candidate["chosen"] else "0.5", linewidth=3 if candidate["chosen"] else 1.5)

    def number(value, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}g}"

    rows = [[candidate["name"] + (" (chosen)" if candidate["chosen"] else ""), number(candidate["min_lr"], 3),
             number(candidate["max_lr"], 3), number(candidate.get("val_accuracy"), 4),
             number(candidate["val_loss"], 4), str(candidate["iterations"])] for candidate in verification]
    table = axes.table(rows, colLabels=["verified candidate", "min_lr", "max_lr", "val_accuracy", "val_loss",
                                        "iterations"], loc="bottom", bbox=[0, -0.2 - 0.07 * len(rows), 1,
                                                                           0.07 * (len(rows) + 1)])
    table.auto_set_font_size(False)
    table.set_fontsize(8)


def training_png(
    iterations: npt.ArrayLike,
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    epoch_metrics: Mapping[str, Sequence[float]] | None = None,
    cycle_length: int | None = None,
    momenta: npt.ArrayLike | None = None,
) -> bytes:
    """LR (and momentum, where it cycles) and loss per iteration with the cycle boundaries marked, and the per-epoch
    metrics (validation included) below them."""
    metrics = dict(epoch_metrics or {})
    figure = Figure(figsize=(9, 9 if metrics else 6))
    rows = 3 if metrics else 2
    lr_axes = figure.add_subplot(rows, 1, 1)
    lr_axes.plot(iterations, lrs, color="C1")
    lr_axes.set(ylabel="learning rate", title="Training with a cyclical learning rate")
    if momenta is not None:
        momentum_axes = lr_axes.twinx()
        momentum_axes.plot(iterations, momenta, color="C2", linestyle="--")
        momentum_axes.set_ylabel("momentum (dashed)", color="C2")
    loss_axes = figure.add_subplot(rows, 1, 2, sharex=lr_axes)
    loss_axes.plot(iterations, losses, color="C0", linewidth=0.8)
    loss_axes.set(xlabel="iteration", ylabel="loss per batch")
    if cycle_length and len(iterations):
        for boundary in range(cycle_length, int(np.max(iterations)) + 2, cycle_length):
            for axes in (lr_axes, loss_axes):
                axes.axvline(boundary, color="0.5", linestyle=":", linewidth=1)
    if metrics:
        epoch_axes = figure.add_subplot(rows, 1, 3)
        for name, values in metrics.items():
            epoch_axes.plot(np.arange(1, len(values) + 1), values, marker="o", label=name)
        epoch_axes.set(xlabel="epoch", ylabel="metric")
        epoch_axes.legend()
    figure.tight_layout()
    return _png(figure)


def comparison_png(arms: Mapping[str, Sequence[tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]]],
                   beta: float = 0.98) -> bytes:
    """Each arm's loss (smoothed, above) and LR (below) against the iteration, one colour per arm: each run (seed)
    as a thin line, the arm's mean over its runs as a thick one. `arms`: per arm, each run's
    `(iterations, lrs, losses)`."""
    figure = Figure(figsize=(9, 7))
    loss_axes, lr_axes = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    for index, (name, runs) in enumerate(arms.items()):
        colour = f"C{index % 10}"
        losses = [smooth(np.asarray(run[2], dtype=np.float64), beta) for run in runs]
        for (iterations, lrs, _), smoothed in zip(runs, losses, strict=True):
            loss_axes.plot(iterations, smoothed, color=colour, linewidth=0.6, alpha=0.45)
            lr_axes.plot(iterations, lrs, color=colour, linewidth=0.6, alpha=0.45)
        if runs and (length := min(len(run[0]) for run in runs)):
            iterations = np.asarray(runs[0][0])[:length]
            loss_axes.plot(iterations, np.mean([smoothed[:length] for smoothed in losses], axis=0), color=colour,
                           linewidth=2, label=f"{name} ({len(runs)} runs)")
            lr_axes.plot(iterations, np.mean([np.asarray(run[1])[:length] for run in runs], axis=0), color=colour,
                         linewidth=2)
    loss_axes.set(ylabel="loss (smoothed)", title="Arms compared at the same budget")
    lr_axes.set(xlabel="iteration", ylabel="learning rate", yscale="log")
    if loss_axes.get_legend_handles_labels()[0]:  # an arm with runs drawn
        loss_axes.legend(loc="upper right")
    return _png(figure)
