import numpy as np
import pytest

from clr.analysis import (
    MIN_CURVE_LENGTH,
    ExponentialSmoother,
    downsample_indices,
    finite_prefix_length,
    has_diverged,
    smooth,
    suggest_bounds,
)
from clr.schedules import range_sweep


def synthetic_range_test(num_iterations: int = 1000, noise: float = 0.05, seed: int = 0):
    """Plateau to 1e-4, a steep fall (linear in log LR) to 1e-2, a flat stretch, then a blow-up past 1e-1."""
    lrs = range_sweep(1e-6, 10.0, num_iterations)
    position = np.log10(lrs)
    fall = np.clip((position + 4) / 2, 0, 1)  # 0 below 1e-4, 1 above 1e-2
    blow_up = np.where(position > -1, 10 ** (3 * (position + 1)) - 1, 0.0)
    losses = 2.3 - 2.0 * fall + blow_up
    noisy = losses * (1 + noise * np.random.default_rng(seed).standard_normal(num_iterations))
    return lrs, noisy


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


@pytest.mark.parametrize("seed", range(5))
def test_bounds_of_a_noisy_synthetic_curve_are_within_a_factor_3_of_the_truth(seed):
    lrs, losses = synthetic_range_test(seed=seed)
    bounds = suggest_bounds(lrs, losses)
    assert 1e-4 / 3 <= bounds.min_lr <= 1e-4 * 3, bounds
    assert 1e-2 / 3 <= bounds.max_lr <= 1e-2 * 3, bounds
    assert lrs[bounds.min_index] == bounds.min_lr and lrs[bounds.max_index] == bounds.max_lr
    assert 1e-4 <= bounds.steepest_lr <= 1e-2
    assert 1e-4 <= bounds.valley_lr <= 1e-2
    assert 1e-3 <= bounds.minimum_lr <= 1e-2
    assert "lr=" in bounds.explanation and "\n" not in bounds.explanation


def test_a_nan_tail_is_cut_and_gives_the_same_bounds():
    lrs, losses = synthetic_range_test()
    cut = int(np.searchsorted(lrs, 0.5))
    with_nan = losses.copy()
    with_nan[cut:] = np.nan
    with_nan[cut + 3] = np.inf
    assert finite_prefix_length(with_nan) == cut
    assert suggest_bounds(lrs, with_nan) == suggest_bounds(lrs[:cut], losses[:cut])


def test_a_curve_too_short_after_trimming_is_refused_with_its_length():
    lrs, losses = synthetic_range_test(num_iterations=MIN_CURVE_LENGTH)
    with pytest.raises(ValueError, match=f"at least {MIN_CURVE_LENGTH} finite points"):
        suggest_bounds(lrs, losses)
    early_nan = np.array(synthetic_range_test()[1])
    early_nan[15] = np.nan
    with pytest.raises(ValueError, match="Received: 1[0-9] usable of 1000"):
        suggest_bounds(synthetic_range_test()[0], early_nan)


def test_a_curve_that_never_falls_is_refused():
    lrs = range_sweep(1e-5, 1.0, 200)
    with pytest.raises(ValueError, match="never decreases"):
        suggest_bounds(lrs, 1.0 + lrs)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="of one length"):
        suggest_bounds(np.ones(30), np.ones(31))


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
