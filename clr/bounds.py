"""CLR bounds from a range test, measured in units of log-LR and against the curve's own noise (pure numpy).

The curve is cut at its first non-finite loss and where the range test's stop rule fires, then smoothed with a
Gaussian kernel whose width is in decades of LR (widened only where the points are too sparse), so the answer does
not depend on how many iterations the test ran. The noise of the per-batch loss around that curve gives each
smoothed value a standard error; a fall counts only when it is large against it. `min_lr` is where the loss has
made the first `FALL_START` of its fall, `max_lr` where it has made `FALL_END` of it (the improvement flattens),
and never past the point where the loss turns back up. The single-LR rules (fastai's valley, the steepest slope,
the minimum / 10) are computed on the same curve as cross-checks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from clr.analysis import finite_prefix_length, has_diverged, smooth

MIN_CURVE_LENGTH = 20
KERNEL_WIDTH_DECADES = 0.1  # standard deviation of the smoothing kernel, in decades of LR
MIN_POINTS_PER_WIDTH = 2.5  # the kernel is widened on sparse curves until one width holds this many points
BINS_PER_WIDTH = 8
FALL_START, FALL_END = 0.1, 0.95  # fractions of the fall from the plateau to the lowest loss
ACCURACY_RISE_END = 0.9  # of the accuracy's rise: where it slows (Smith 2017, 3.3)
NOISE_FLOOR = 1e-3  # relative noise assumed at least, so a curve without noise has finite standard errors
MIN_RELATIVE_FALL = 0.02  # a fall smaller than this fraction of the loss does not count either
MIN_FALL_Z = 5.0  # a fall smaller than this many standard errors is noise: no suggestion
HIGH_FALL_Z = 12.0  # below this the fall is real but weak: low confidence
MIN_BOUND_RATIO = 3.0  # max_lr / min_lr at least
SMITH_BOUND_RATIO = 4.0  # min_lr = max_lr / 4 where the curve gives only max_lr (Smith 2018, 4.1)
MIN_POINTS_IN_FALL = 6  # fewer points between the bounds: low confidence
MIN_POINTS_PER_DECADE = 10  # a sparser sweep blurs where the fall starts and ends
RAGGED_FACTOR = 3.0  # the loss turns ragged where its roughness exceeds this multiple of the plateau's
CROSS_CHECK_FACTOR = 10.0  # valley further than this outside [min_lr, max_lr]: the rules disagree

Confidence = Literal["high", "medium", "low"]


class NoSuggestion(ValueError):
    """The curve does not support a suggestion; the message says what to change in the range test."""


@dataclass(frozen=True)
class BoundSuggestion:
    """Suggested CLR bounds, how far to trust them and why, and the single-LR rules on the same curve."""

    min_lr: float
    max_lr: float
    min_index: int
    max_index: int
    confidence: Confidence
    reasons: tuple[str, ...]
    steepest_lr: float
    minimum_lr: float
    valley_lr: float
    explanation: str
    verified: bool = False  # the bounds of the best candidate trained (`clr.verification`), not the curve's own
    accuracy_bounds: tuple[float, float] | None = None  # Smith's reading of the per-batch accuracy, where recorded

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return asdict(self) | {"reasons": list(self.reasons),
                               "accuracy_bounds": list(self.accuracy_bounds) if self.accuracy_bounds else None}

    @classmethod
    def from_dict(cls, fields: dict[str, object]) -> BoundSuggestion:
        """The inverse of `as_dict`."""
        accuracy = fields.get("accuracy_bounds")
        return cls(**fields | {"reasons": tuple(fields["reasons"]), "accuracy_bounds": tuple(accuracy) if accuracy
                               else None})


@dataclass(frozen=True)
class LogLRCurve:
    """A range-test curve smoothed in log-LR: value and standard error at each point, and the kernel width."""

    log_lr: np.ndarray
    smoothed: np.ndarray
    standard_error: np.ndarray
    roughness: np.ndarray  # local scatter of the per-batch loss: mean |step| of its residual, over sqrt(2)
    width: float
    noise: float  # relative noise of the per-batch loss around the smoothed curve (robust standard deviation)


def _kernel_average(log_lr: np.ndarray, width: float):
    """A function giving the Gaussian-kernel average (in log-LR, `width` decades) of values at these points, and
    the standard-error factor sqrt(sum w^2) / sum w of each average; binned, so it costs O(points + bins)."""
    bins = np.floor((log_lr - log_lr[0]) * BINS_PER_WIDTH / width).astype(np.int64)
    kernel = np.exp(-0.5 * (np.arange(-4 * BINS_PER_WIDTH, 4 * BINS_PER_WIDTH + 1) / BINS_PER_WIDTH) ** 2)
    centre = slice(4 * BINS_PER_WIDTH, 4 * BINS_PER_WIDTH + bins[-1] + 1)

    def convolve(per_bin: np.ndarray, weights: np.ndarray = kernel) -> np.ndarray:
        return np.convolve(per_bin, weights)[centre][bins]

    counts = np.bincount(bins)
    total_weight = convolve(counts)
    error_factor = np.sqrt(convolve(counts, kernel**2)) / total_weight
    return lambda values: convolve(np.bincount(bins, weights=values)) / total_weight, error_factor


def smooth_in_log_lr(lrs: npt.ArrayLike, losses: npt.ArrayLike, width: float = KERNEL_WIDTH_DECADES) -> LogLRCurve:
    """Gaussian kernel regression of `losses` on log10(`lrs`), `width` decades wide (wider on sparse curves),
    with spikes clipped at 3 robust standard deviations (measured up to the lowest loss) before the final pass."""
    log_lr = np.log10(np.asarray(lrs, dtype=np.float64))
    loss = np.asarray(losses, dtype=np.float64)
    width = max(width, MIN_POINTS_PER_WIDTH * float(np.median(np.diff(log_lr))))
    average, error_factor = _kernel_average(log_lr, width)
    smoothed = average(loss)
    relative = loss / smoothed - 1
    before_lowest = relative[: int(np.argmin(smoothed)) + 1]  # a blow-up after it is trend, not noise
    noise = max(NOISE_FLOOR, 1.4826 * float(np.median(np.abs(before_lowest - np.median(before_lowest)))))
    smoothed = average(smoothed * (1 + np.clip(relative, -3 * noise, 3 * noise)))
    residual_steps = np.abs(np.diff(loss - smoothed, prepend=2 * loss[0] - loss[1] - smoothed[0] + smoothed[1]))
    return LogLRCurve(log_lr, smoothed, noise * np.abs(smoothed) * error_factor, average(residual_steps) / np.sqrt(2),
                      width, noise)


def valley_index(values: npt.ArrayLike) -> int:
    """fastai's `valley` rule: half-way along the longest decreasing subsequence of `values`."""
    values = np.asarray(values, dtype=np.float64)
    longest = np.ones(len(values), dtype=np.int64)
    for i in range(1, len(values)):
        higher = values[:i] > values[i]
        if higher.any():
            longest[i] = longest[:i][higher].max() + 1
    end = int(np.argmax(longest))
    start = end - int(longest[end])
    section = (end - start) / 3
    return max(0, start + int(section) + int(section / 2))


def _usable_length(loss: np.ndarray, beta: float, stop_factor: float) -> int:
    """Points before the first non-finite loss and before the range test's stop rule fires."""
    end = finite_prefix_length(loss)
    running = smooth(loss[:end], beta)
    best = np.minimum.accumulate(running)
    return next((i for i in range(end) if has_diverged(running[i], best[i], stop_factor)), end)


def _checked(lrs: npt.ArrayLike, losses: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(losses, dtype=np.float64)
    if lr.shape != loss.shape or lr.ndim != 1:
        raise ValueError(f"`lrs` and `losses` must be 1-D and of one length. Received: {lr.shape} and {loss.shape}")
    if not (np.all(np.isfinite(lr)) and np.all(lr > 0) and np.all(np.diff(lr) > 0)):
        raise ValueError("`lrs` must be finite, positive and strictly increasing, as a range test sweeps them")
    return lr, loss


@dataclass(frozen=True)
class _Fall:
    """The fall of the smoothed loss: from its highest point before the lowest one, to the lowest one."""

    top: int
    lowest: int
    size: float
    z: float  # size in standard errors

    def level(self, smoothed: np.ndarray, fraction: float) -> float:
        """The loss once `fraction` of the fall is made."""
        return smoothed[self.top] - fraction * self.size

    def between(self, smoothed: np.ndarray, first: float, last: float) -> tuple[int, int]:
        """The last point before the fall has made `first` of itself, and the first where it has made `last`."""
        start = self.top + int(np.flatnonzero(smoothed[self.top: self.lowest + 1] >= self.level(smoothed, first))[-1])
        return start, start + int(np.argmax(smoothed[start: self.lowest + 1] <= self.level(smoothed, last)))


def _find_fall(curve: LogLRCurve) -> _Fall:
    smoothed, error = curve.smoothed, curve.standard_error
    lowest = int(np.argmin(smoothed))
    top = int(np.argmax(smoothed[: lowest + 1]))
    size = float(smoothed[top] - smoothed[lowest])
    return _Fall(top, lowest, size, size / float(np.hypot(error[top], error[lowest])))


def _is_real(fall: _Fall, curve: LogLRCurve) -> bool:
    return fall.z >= MIN_FALL_Z and fall.size >= MIN_RELATIVE_FALL * curve.smoothed[fall.top]


def _turns_up(curve: LogLRCurve, after: int) -> int | None:
    """The first point past `after` where the smoothed loss has risen above its value there by `MIN_FALL_Z`
    standard errors, or None."""
    rise = curve.smoothed[after:] - curve.smoothed[after]
    noise = np.hypot(curve.standard_error[after:], curve.standard_error[after])
    risen = np.flatnonzero(rise > MIN_FALL_Z * noise)
    return after + int(risen[0]) if len(risen) else None


def _no_fall(fall: _Fall) -> NoSuggestion:
    return NoSuggestion(
        f"The loss never fell by more than its noise (a fall of {fall.size:.3g}, {fall.z:.1f} standard errors; "
        f"{MIN_FALL_Z:g} and {MIN_RELATIVE_FALL:.0%} of the loss needed) and never turned up: run more iterations, "
        "use a larger batch, or sweep to a higher `end_lr`"
    )


def _index_below(curve: LogLRCurve, index: int, factor: float) -> int:
    """The last point at least `factor` times below the LR of point `index` (-1 if none)."""
    return int(np.searchsorted(curve.log_lr, curve.log_lr[index] - np.log10(factor), side="right")) - 1


def _first_ragged(curve: LogLRCurve, start: int, lowest: int) -> int | None:
    """The first point from `start` on where the per-batch loss scatters (relative to its level) `RAGGED_FACTOR`
    times more than it does while the model learns (the median over the fall from `start` to the lowest loss), or
    None. The untrained plateau is no baseline: a classifier that predicts uniformly scatters far less than any that
    learns."""
    relative = curve.roughness / np.abs(curve.smoothed)
    threshold = RAGGED_FACTOR * float(np.median(relative[start: lowest + 1]))
    ragged = np.flatnonzero(relative[start:] > threshold)
    return start + int(ragged[0]) if len(ragged) else None


def _still_falling_at_end(curve: LogLRCurve, fall: _Fall, stop: int, diverged: bool) -> bool:
    """The sweep neither diverged nor turned up after its lowest loss, and `stop` lies near its end."""
    turned_up = diverged or _turns_up(curve, fall.lowest) is not None
    return not turned_up and curve.log_lr[-1] - curve.log_lr[stop] < 3 * curve.width


def _largest_converging(lr: np.ndarray, curve: LogLRCurve, fall: _Fall, diverged: bool, reasons: list[str],
                        why: str, refusal: NoSuggestion) -> BoundSuggestion:
    """Smith's other rule, for a curve whose fall does not give the bounds (`why`): `max_lr` half the largest LR at
    which the loss has not yet turned up, `min_lr` a quarter of that (low confidence); `refusal` if it never turns
    up."""
    turn = _turns_up(curve, fall.lowest)
    if turn is None and not diverged:
        raise refusal
    turned = len(lr) - 1 if turn is None else turn  # where the loss turned up, or where the sweep diverged
    stop = _index_below(curve, turned, 2.0)
    start = _index_below(curve, stop, SMITH_BOUND_RATIO)
    if start < 0 or curve.log_lr[start] - curve.log_lr[0] < 2 * curve.width:
        raise refusal
    reasons.insert(0, f"{why}: the bounds come from where it turned up, not from its fall")
    explanation = (f"The loss turns up at lr={lr[turned]:.3g}; "
                   f"max_lr={lr[stop]:.3g} is half that (Smith: within 2x of the largest rate that still converges), "
                   f"min_lr={lr[start]:.3g} a quarter of max_lr.")
    return _suggestion(lr, curve, start, stop, "low", reasons, explanation, fall, valley_index(curve.smoothed))


def accuracy_bounds(lrs: np.ndarray, accuracies: np.ndarray) -> tuple[float, float] | None:
    """Smith's reading of the accuracy: `min_lr` where it starts to rise (`FALL_START` of its rise made), `max_lr`
    where the rise slows (`ACCURACY_RISE_END` made), at least `MIN_BOUND_RATIO` apart; None without a real rise."""
    curve = smooth_in_log_lr(lrs, 2.0 - np.asarray(accuracies, dtype=np.float64))  # a rise as a fall, never near 0
    rise = _find_fall(curve)
    if not _is_real(rise, curve):
        return None
    start, stop = rise.between(curve.smoothed, FALL_START, ACCURACY_RISE_END)
    start = min(start, _index_below(curve, stop, MIN_BOUND_RATIO))
    return None if start < 0 else (float(lrs[start]), float(lrs[stop]))


def momentum_lag(momentum: float) -> int:
    """Iterations by which SGD's velocity lags the rate it is swept at: a step is a sum of past rates times past
    gradients weighted by `momentum**age`, whose mean age is `momentum / (1 - momentum)`."""
    if not 0 <= momentum < 1:
        raise ValueError(f"Argument `momentum` must be in [0, 1). Received: momentum={momentum!r}")
    return round(momentum / (1 - momentum))


def _suggestion(lr: np.ndarray, curve: LogLRCurve, start: int, stop: int, confidence: Confidence,
                reasons: list[str], explanation: str, fall: _Fall, valley: int) -> BoundSuggestion:
    """The suggestion of `lr[start]` to `lr[stop]`, with the single-LR rules on the same curve (`valley`: fastai's
    point on it, `valley_index`)."""
    in_fall = slice(fall.top, fall.lowest + 1)
    steepest = fall.top + int(np.argmin(np.gradient(curve.smoothed, curve.log_lr)[in_fall]))
    return BoundSuggestion(
        min_lr=float(lr[start]),
        max_lr=float(lr[stop]),
        min_index=start,
        max_index=stop,
        confidence=confidence,
        reasons=tuple(reasons),
        steepest_lr=float(lr[steepest]),
        minimum_lr=float(lr[fall.lowest] / 10),
        valley_lr=float(lr[valley]),
        explanation=explanation,
    )


def suggest_bounds(
    lrs: npt.ArrayLike, losses: npt.ArrayLike, beta: float = 0.98, stop_factor: float = 4.0, momentum: float = 0.0,
    accuracies: npt.ArrayLike | None = None,
) -> BoundSuggestion:
    """Suggest `min_lr`/`max_lr` from a range test, with a confidence; raise `NoSuggestion` saying what to change
    when the curve cannot support one (too short, or neither a fall larger than its noise nor a turn up). With
    `momentum` (SGD's or RMSprop's), each loss is read against the rate its velocity carries, `momentum_lag`
    iterations earlier in the sweep. With each batch's `accuracies`, Smith's reading of them is given beside
    (`accuracy_bounds`), on the same cut of the curve."""
    lr, loss = _checked(lrs, losses)
    lag = momentum_lag(momentum)
    end = _usable_length(loss, beta, stop_factor)
    if end - lag < MIN_CURVE_LENGTH:
        raise NoSuggestion(
            f"A range test needs at least {MIN_CURVE_LENGTH} points before the loss diverges. Received: {end} usable "
            f"of {len(loss)}{f' ({lag} of them taken by the momentum lag)' if lag else ''}; lower "
            "`start_lr`/`end_lr` or run more iterations"
        )
    suggestion = _from_loss(lr[: end - lag], loss[lag:end], diverged=end < len(loss), lag=lag)
    if accuracies is None:
        return suggestion
    return replace(suggestion, accuracy_bounds=accuracy_bounds(
        lr[: end - lag], np.asarray(accuracies, dtype=np.float64)[lag:end]))


def _from_loss(lr: np.ndarray, loss: np.ndarray, diverged: bool, lag: int) -> BoundSuggestion:
    """The suggestion of the usable curve, each loss paired with the rate `lag` iterations before it."""
    curve = smooth_in_log_lr(lr, loss)
    smoothed, fall = curve.smoothed, _find_fall(curve)
    low: list[str] = []  # reasons for low confidence
    medium: list[str] = []  # reasons for medium confidence
    notes: list[str] = []
    per_decade = (len(lr) - 1) / (curve.log_lr[-1] - curve.log_lr[0])
    if per_decade < MIN_POINTS_PER_DECADE:
        low.append(f"the sweep has {per_decade:.1f} points per decade of LR ({MIN_POINTS_PER_DECADE} or more "
                   "place the bounds better: run more iterations or a narrower sweep)")
    if not _is_real(fall, curve):
        return _largest_converging(lr, curve, fall, diverged, low, f"the loss never fell by more than its noise "
                                   f"({fall.z:.1f} standard errors; verify the bounds, or run more iterations)",
                                   _no_fall(fall))
    if fall.z < HIGH_FALL_Z:
        low.append(f"the fall is weak against the noise ({fall.z:.1f} standard errors; more iterations help)")

    start, stop = fall.between(smoothed, FALL_START, FALL_END)
    ragged = _first_ragged(curve, start, fall.lowest)
    if ragged is not None and ragged < stop:
        stop = ragged
        notes.append(f"the per-batch loss turns ragged at lr={lr[ragged]:.3g} ({RAGGED_FACTOR:g}x its "
                     "scatter while it learns), so max_lr stops there")
    if _still_falling_at_end(curve, fall, stop, diverged):
        stop = min(stop, _index_below(curve, len(lr) - 1, MIN_BOUND_RATIO))
        notes.append(f"the loss was still falling at end_lr={lr[-1]:.3g}: max_lr is capped at end_lr / "
                     f"{MIN_BOUND_RATIO:g}; sweep to a higher `end_lr` to see where it turns unstable")
        medium.append("the sweep ended before the loss turned up")
    start = min(start, _index_below(curve, stop, MIN_BOUND_RATIO))
    if start < 0 or curve.log_lr[start] - curve.log_lr[0] < 2 * curve.width:
        return _largest_converging(lr, curve, fall, diverged, low, f"the loss was already falling at start_lr="
                                   f"{lr[0]:.3g} (a lower `start_lr` shows where its fall starts)", NoSuggestion(
                                       f"The loss was already falling at start_lr={lr[0]:.3g}: lower `start_lr` so "
                                       "the plateau before the fall shows"))
    if stop - start + 1 < MIN_POINTS_IN_FALL:
        low.append(f"the fall spans only {stop - start + 1} points (more iterations or a narrower sweep help)")
    valley = valley_index(smoothed)
    if not lr[start] / CROSS_CHECK_FACTOR <= lr[valley] <= lr[stop] * CROSS_CHECK_FACTOR:
        medium.append(f"fastai's valley rule gives lr={lr[valley]:.3g}, far outside the suggested range")
    if lag:
        notes.append(f"each loss is read against the rate {lag} iterations earlier, where the momentum's velocity "
                     "carries it")
    made = np.clip((smoothed[fall.top] - smoothed[[start, stop]]) / fall.size, 0, 1)
    explanation = (
        f"The smoothed loss falls from {smoothed[fall.top]:.3g} to {smoothed[fall.lowest]:.3g} ({fall.z:.0f} standard "
        f"errors); min_lr={lr[start]:.3g} is where it has made {made[0]:.0%} of that fall, max_lr={lr[stop]:.3g} "
        f"where it has made {made[1]:.0%}. " + " ".join(f"Note: {note}." for note in notes)
    ).strip()
    return _suggestion(lr, curve, start, stop, "low" if low else "medium" if medium else "high", low + medium,
                       explanation, fall, valley)
