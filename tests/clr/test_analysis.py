import numpy as np
import pytest

from clr.analysis import (
    ExponentialSmoother,
    block_summaries,
    downsample_blocks,
    downsample_indices,
    finite_prefix_length,
    has_diverged,
    smooth,
)


def test_smoothing_is_the_debiased_ema():
    losses = np.array([3.0, 1.0, 2.0, 5.0])
    beta = 0.9
    raw, expected = 0.0, []
    for i, loss in enumerate(losses):
        raw = beta * raw + (1 - beta) * loss
        expected.append(raw / (1 - beta ** (i + 1)))
    np.testing.assert_allclose(smooth(losses, beta), expected)
    assert smooth([2.0], 0.98)[0] == pytest.approx(2.0)  # debiased: the first value is the first loss


def test_smoother_fed_one_loss_at_a_time_matches_smooth():
    losses = np.random.default_rng(1).random(50)
    smoother = ExponentialSmoother(0.98)
    np.testing.assert_allclose([smoother(loss) for loss in losses], smooth(losses))
    with pytest.raises(ValueError, match="Argument `beta` must be in \\[0, 1\\). Received: beta=1.0"):
        ExponentialSmoother(1.0)


def test_divergence_rule():
    assert has_diverged(4.1, 1.0, 4.0)
    assert not has_diverged(3.9, 1.0, 4.0)
    assert has_diverged(float("nan"), 1.0, 4.0) and has_diverged(float("inf"), 1.0, 4.0)


def test_finite_prefix_ends_at_the_first_nan_or_inf():
    assert finite_prefix_length([1.0, 2.0, np.inf, np.nan]) == 2
    assert finite_prefix_length([np.nan]) == 0 and finite_prefix_length([1.0, 2.0]) == 2


def test_downsampling_keeps_spikes_ends_and_the_divergence_point():
    values = np.sin(np.linspace(0, 20, 100_000))
    values[31_337] = 50.0
    values[77_777] = -50.0
    values[99_000:] = np.nan
    kept = downsample_indices(values, 500, keep=(12_345,))
    assert len(kept) <= 500
    for index in (0, 99_999, 31_337, 77_777, 99_000, 12_345):
        assert index in kept
    assert np.all(np.diff(kept) > 0)
    np.testing.assert_array_equal(downsample_indices(values[:300], 500), np.arange(300))
    with pytest.raises(ValueError, match="Argument `max_points` must be >= 4"):
        downsample_indices(values, 3)


@pytest.mark.parametrize("points", [65_536, 65_536 + 517])  # whole blocks only, and a partial last one
def test_downsampling_from_block_summaries_keeps_each_buckets_extremes_the_ends_and_the_divergence(points):
    rng = np.random.default_rng(3)
    losses = rng.normal(size=points).astype(np.float32)
    losses[[100, 40_000]] = 30.0, -30.0
    losses[50_000] = np.inf
    losses[60_001:] = np.nan
    lrs = np.linspace(0.0, 1.0, points, dtype=np.float32)
    size, max_points = 256, 101
    summaries = block_summaries(0, lrs, losses, size)
    assert len(summaries) == -(-points // size)
    ends = tuple((index, lrs[index], losses[index]) for index in (0, points - 1))
    iterations, kept_lrs, kept_losses = downsample_blocks(summaries, ends, max_points)
    assert len(iterations) <= max_points and list(iterations) == sorted(set(iterations))
    np.testing.assert_array_equal(kept_lrs, lrs[iterations])
    np.testing.assert_array_equal(kept_losses, losses[iterations])
    per_bucket = -(-len(summaries) // ((max_points - 3) // 2))
    for start in range(0, points, per_bucket * size):  # each bucket of whole blocks: its finite min and max kept
        bucket = np.where(np.isfinite(losses[start:start + per_bucket * size]), losses[start:start + per_bucket * size],
                          np.nan)
        if np.isfinite(bucket).any():
            assert {start + np.nanargmin(bucket), start + np.nanargmax(bucket)} <= set(iterations)
    assert {0, points - 1, 50_000} <= set(iterations)  # the ends, and the first non-finite loss
    assert 60_001 not in iterations  # only the first
