"""matplotlib figures rendered to PNG bytes with the Agg backend (never a window)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clr.analysis import BoundSuggestion


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
) -> bytes:
    """Loss and smoothed loss against the LR on a log axis, with the suggested bounds marked."""
    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    axes.plot(lrs, losses, color="0.75", linewidth=0.8, label="loss per batch")
    axes.plot(lrs, smoothed_losses, color="C0", label="smoothed loss")
    if suggestion is not None:
        for lr, name, color in ((suggestion.min_lr, "min_lr", "C2"), (suggestion.max_lr, "max_lr", "C3")):
            axes.axvline(lr, color=color, linestyle="--", label=f"{name} = {lr:.3g}")
    finite = np.asarray(smoothed_losses, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite):
        axes.set_ylim(finite.min() - 0.05 * np.ptp(finite), min(finite.max(), 4 * finite.min()) * 1.05)
    axes.set(xscale="log", xlabel="learning rate", ylabel="loss", title="Learning-rate range test")
    axes.legend()
    return _png(figure)


def training_png(
    iterations: npt.ArrayLike,
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    epoch_metrics: Mapping[str, Sequence[float]] | None = None,
) -> bytes:
    """LR and loss per iteration, and the per-epoch metrics (validation included) below them."""
    metrics = dict(epoch_metrics or {})
    figure = Figure(figsize=(9, 9 if metrics else 6))
    rows = 3 if metrics else 2
    lr_axes = figure.add_subplot(rows, 1, 1)
    lr_axes.plot(iterations, lrs, color="C1")
    lr_axes.set(ylabel="learning rate", title="Training with a cyclical learning rate")
    loss_axes = figure.add_subplot(rows, 1, 2, sharex=lr_axes)
    loss_axes.plot(iterations, losses, color="C0", linewidth=0.8)
    loss_axes.set(xlabel="iteration", ylabel="loss per batch")
    if metrics:
        epoch_axes = figure.add_subplot(rows, 1, 3)
        for name, values in metrics.items():
            epoch_axes.plot(np.arange(1, len(values) + 1), values, marker="o", label=name)
        epoch_axes.set(xlabel="epoch", ylabel="metric")
        epoch_axes.legend()
    figure.tight_layout()
    return _png(figure)
