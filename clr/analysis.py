"""Range-test analysis: smoothing, bound suggestion and curve downsampling (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MIN_CURVE_LENGTH = 20
STEEP_FRACTION = 0.25  # a stretch counts as steep while its slope is >= this fraction of the steepest slope


class ExponentialSmoother:
    """Debiased exponential moving average fed one loss at a time: `s_i = beta*s_{i-1} + (1-beta)*l_i`,
    reported as `s_i / (1 - beta**(i+1))`."""

    def __init__(self, beta: float = 0.98) -> None:
        if not 0 <= beta < 1:
            raise ValueError(f"Argument `beta` must be in [0, 1). Received: beta={beta!r}")
        self.beta = beta
        self._average = 0.0
        self._count = 0

    def __call__(self, loss: float) -> float:
        """Add `loss`; return the smoothed value so far."""
        self._count += 1
        self._average = self.beta * self._average + (1 - self.beta) * loss
        return self._average / (1 - self.beta**self._count)


def smooth(losses: npt.ArrayLike, beta: float = 0.98) -> npt.NDArray[np.float64]:
    """The debiased exponential moving average of `losses` (see `ExponentialSmoother`)."""
    smoother = ExponentialSmoother(beta)
    return np.array([smoother(loss) for loss in np.asarray(losses, dtype=np.float64)], dtype=np.float64)


def has_diverged(smoothed_loss: float, best_smoothed_loss: float, stop_factor: float) -> bool:
    """The range test's stop rule: the smoothed loss is non-finite or above `stop_factor` times the best so far."""
    return not np.isfinite(smoothed_loss) or smoothed_loss > stop_factor * best_smoothed_loss


def finite_prefix_length(losses: npt.ArrayLike) -> int:
    """The number of leading finite values: the curve is cut at the first NaN or inf."""
    finite = np.isfinite(np.asarray(losses, dtype=np.float64))
    return int(len(finite) if finite.all() else np.argmin(finite))


@dataclass(frozen=True)
class BoundSuggestion:
    """Suggested CLR bounds from a range test, with the well-known single-LR suggestions to compare."""

    min_lr: float
    max_lr: float
    min_index: int
    max_index: int
    steepest_lr: float
    minimum_lr: float
    valley_lr: float
    explanation: str

    def as_dict(self) -> dict[str, float | int | str]:
        """JSON-ready fields."""
        return dict(self.__dict__)


def _zero_phase_smooth(losses: np.ndarray, beta: float) -> np.ndarray:
    """Forward then backward debiased EMA: smooth without the lag a one-sided average adds."""
    return smooth(smooth(losses, beta)[::-1], beta)[::-1]


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """Start and end (inclusive) of the longest run of True in `mask`."""
    best, start = (0, -1), None
    for i, flag in enumerate(np.append(mask, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start > best[1] - best[0] + 1:
                best = (start, i - 1)
            start = None
    return best


def _run_around(mask: np.ndarray, index: int) -> tuple[int, int]:
    """Start and end (inclusive) of the run of True in `mask` that contains `index`."""
    start, end = index, index
    while start > 0 and mask[start - 1]:
        start -= 1
    while end < len(mask) - 1 and mask[end + 1]:
        end += 1
    return start, end


def suggest_bounds(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    beta: float = 0.98,
    skip_start: float = 0.1,
    stop_factor: float = 4.0,
) -> BoundSuggestion:
    """Suggest `min_lr`/`max_lr` from a range test: the stretch over which the loss falls fast against log LR.

    The curve is cut at its first non-finite loss and where the smoothed loss exceeds `stop_factor` times its
    best, its first `skip_start` fraction is trimmed, and it is smoothed without lag. `min_lr` is where the slope
    first reaches a quarter of the steepest slope (the loss starts to fall quickly), `max_lr` where it falls back
    below that (the improvement flattens), both on the descent that holds the steepest point.
    """
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(losses, dtype=np.float64)
    if lr.shape != loss.shape or lr.ndim != 1:
        raise ValueError(f"`lrs` and `losses` must be 1-D and of one length. Received: {lr.shape} and {loss.shape}")
    end = finite_prefix_length(loss)
    running = smooth(loss[:end], beta)
    best = np.minimum.accumulate(running)
    end = next((i for i in range(end) if has_diverged(running[i], best[i], stop_factor)), end)
    start = int(skip_start * end)
    if end - start < MIN_CURVE_LENGTH:
        raise ValueError(
            f"A range test needs at least {MIN_CURVE_LENGTH} finite points after trimming the first "
            f"{skip_start:.0%}. Received: {end - start} usable of {len(loss)}"
        )
    lr, smoothed = lr[start:end], _zero_phase_smooth(loss[start:end], beta)
    slope = np.gradient(smoothed, np.log10(lr))
    steepest = int(np.argmin(slope))
    if slope[steepest] >= 0:
        raise ValueError("The loss never decreases in this range test: no bounds to suggest; lower `start_lr`.")
    low, high = _run_around(slope <= STEEP_FRACTION * slope[steepest], steepest)
    valley_start, valley_end = _longest_run(slope < 0)
    valley = (valley_start + valley_end) // 2
    return BoundSuggestion(
        min_lr=float(lr[low]),
        max_lr=float(lr[high]),
        min_index=start + low,
        max_index=start + high,
        steepest_lr=float(lr[steepest]),
        minimum_lr=float(lr[int(np.argmin(smoothed))] / 10),
        valley_lr=float(lr[valley]),
        explanation=(
            f"The smoothed loss falls fast (slope >= {STEEP_FRACTION:.0%} of the steepest) from lr={lr[low]:.3g} "
            f"to lr={lr[high]:.3g}; below it barely moves, above it the improvement flattens."
        ),
    )


def downsample_indices(values: npt.ArrayLike, max_points: int, keep: tuple[int, ...] = ()) -> npt.NDArray[np.int64]:
    """Indices of at most `max_points` points that keep each bucket's min and max, the ends, `keep` and the first
    non-finite value: the spikes and the divergence are what a range-test plot is about."""
    data = np.asarray(values)
    n = len(data)
    if max_points < 4 + len(keep):
        raise ValueError(f"Argument `max_points` must be >= {4 + len(keep)}. Received: max_points={max_points!r}")
    if n <= max_points:
        return np.arange(n)
    buckets = (max_points - 3 - len(keep)) // 2
    size = -(-n // buckets)
    finite = np.isfinite(data)
    padding = buckets * size - n
    lows = np.pad(np.where(finite, data, np.inf), (0, padding), constant_values=np.inf).reshape(buckets, size)
    highs = np.pad(np.where(finite, data, -np.inf), (0, padding), constant_values=-np.inf).reshape(buckets, size)
    starts = np.arange(buckets) * size
    lowest, highest = starts + lows.argmin(axis=1), starts + highs.argmax(axis=1)
    has_finite = np.isfinite(lows.min(axis=1))
    chosen = [np.array([0, n - 1, *keep]), np.flatnonzero(~finite)[:1], lowest[has_finite], highest[has_finite]]
    return np.unique(np.concatenate(chosen).astype(np.int64))
