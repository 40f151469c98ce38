"""Range-test analysis: the stop rule's smoothing and curve downsampling (pure numpy); bounds are in `clr.bounds`."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


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


def downsample_indices(values: npt.ArrayLike, max_points: int, keep: tuple[int, ...] = ()) -> npt.NDArray[np.int64]:
    """Indices of at most `max_points` points that keep each bucket's min and max, the ends, `keep` and the first
    non-finite value: the spikes and the divergence are what a range-test plot is about."""
    data = np.asarray(values)
    n = len(data)
    if max_points < 4 + len(keep):
        raise ValueError(f"Argument `max_points` must be >= {4 + len(keep)}. Received: max_points={max_points!r}")
    if n <= max_points:
        return np.arange(n)
    finite = np.isfinite(data)
    chosen = [np.array([0, n - 1, *keep]), np.flatnonzero(~finite)[:1]]
    buckets = (max_points - 3 - len(keep)) // 2
    if buckets == 0:  # room for the ends, `keep` and the divergence only
        return np.unique(np.concatenate(chosen).astype(np.int64))
    size = -(-n // buckets)
    padding = buckets * size - n
    lows = np.pad(np.where(finite, data, np.inf), (0, padding), constant_values=np.inf).reshape(buckets, size)
    highs = np.pad(np.where(finite, data, -np.inf), (0, padding), constant_values=-np.inf).reshape(buckets, size)
    starts = np.arange(buckets) * size
    lowest, highest = starts + lows.argmin(axis=1), starts + highs.argmax(axis=1)
    has_finite = np.isfinite(lows.min(axis=1))
    return np.unique(np.concatenate([*chosen, lowest[has_finite], highest[has_finite]]).astype(np.int64))


# A block of a curve, summarised: its lowest and highest finite loss and its first non-finite one, each with its
# iteration and LR (iteration -1: none). `downsample_blocks` reads a long curve from these instead of its points.
BLOCK = np.dtype([(f"{which}_{field}", dtype) for which in ("low", "high", "bad")
                  for field, dtype in (("iteration", "<i8"), ("lr", "<f4"), ("loss", "<f4"))])


def block_summaries(first_iteration: int, lrs: npt.ArrayLike, losses: npt.ArrayLike, size: int) -> np.ndarray:
    """The `BLOCK` summary of each run of `size` points (the last may be shorter) of a curve's stretch that starts at
    `first_iteration`."""
    lrs, losses = np.asarray(lrs), np.asarray(losses)
    blocks = -(-len(losses) // size)
    padding = blocks * size - len(losses)
    values = np.pad(losses.astype(np.float64), (0, padding), constant_values=np.nan).reshape(blocks, size)
    real = np.arange(blocks * size).reshape(blocks, size) < len(losses)
    finite = np.isfinite(values)
    summaries = np.empty(blocks, BLOCK)
    for which, scores in (("low", np.where(finite, values, np.inf)), ("high", np.where(finite, -values, np.inf)),
                          ("bad", np.where(real & ~finite, 0.0, np.inf))):
        position = scores.argmin(axis=1)
        index = np.arange(blocks) * size + position
        found = np.isfinite(scores[np.arange(blocks), position])
        summaries[f"{which}_iteration"] = np.where(found, first_iteration + index, -1)
        summaries[f"{which}_lr"] = lrs[np.minimum(index, len(lrs) - 1)]
        summaries[f"{which}_loss"] = losses[np.minimum(index, len(losses) - 1)]
    return summaries


def downsample_blocks(summaries: np.ndarray, ends: tuple[tuple[int, float, float], ...], max_points: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`downsample_indices` read from a curve's block summaries (in order, the last block possibly partial) and its
    first and last points (`ends`: iteration, lr, loss each): buckets of whole blocks, each keeping its lowest and
    highest loss, with the ends and the first non-finite point. Returns the points' iterations, LRs and losses."""
    if max_points < 4:
        raise ValueError(f"Argument `max_points` must be >= 4. Received: max_points={max_points!r}")
    buckets = (max_points - 3) // 2
    per_bucket = -(-len(summaries) // buckets)
    padding = -len(summaries) % per_bucket
    point = np.dtype([("iteration", "<i8"), ("lr", "<f4"), ("loss", "<f4")])

    def points(which: str, rows: np.ndarray) -> np.ndarray:
        return np.array(rows[[f"{which}_{field}" for field in point.names]].tolist(), dtype=point)

    chosen = [np.array(list(ends), dtype=point), points("bad", summaries[summaries["bad_iteration"] >= 0][:1])]
    for which, sign in (("low", 1.0), ("high", -1.0)):
        valid = summaries[f"{which}_iteration"] >= 0
        scores = np.pad(np.where(valid, sign * summaries[f"{which}_loss"], np.inf), (0, padding),
                        constant_values=np.inf).reshape(-1, per_bucket)
        pick = np.arange(len(scores)) * per_bucket + scores.argmin(axis=1)
        chosen.append(points(which, summaries[pick[np.isfinite(scores.min(axis=1))]]))
    merged = np.concatenate(chosen)
    _, first = np.unique(merged["iteration"], return_index=True)
    merged = merged[first]
    return merged["iteration"], merged["lr"], merged["loss"]
