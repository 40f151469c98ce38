import numpy as np
import pytest

from bench.bounds_panel import (
    FALL_START_LR,
    SYNTHETIC_DECADES,
    SYNTHETIC_LENGTHS,
    SYNTHETIC_NOISE,
    TAILS,
    TRUE_BOUNDS,
    synthetic_range_test,
    within,
)
from clr.bounds import (
    MIN_BOUND_RATIO,
    MIN_CURVE_LENGTH,
    BoundSuggestion,
    NoSuggestion,
    smooth_in_log_lr,
    suggest_bounds,
    momentum_lag,
    valley_index,
)
from clr.schedules import range_sweep


@pytest.mark.parametrize("tail", TAILS)
@pytest.mark.parametrize("noise", SYNTHETIC_NOISE)
@pytest.mark.parametrize("length", SYNTHETIC_LENGTHS)
@pytest.mark.parametrize("decades", SYNTHETIC_DECADES)
def test_both_bounds_of_synthetic_falls_of_one_to_three_decades_are_within_2x_of_the_truth(decades, length, noise,
                                                                                           tail):
    truth = (FALL_START_LR, FALL_START_LR * 10**decades)
    for seed in range(3):
        lrs, losses = synthetic_range_test(length, noise, seed, TAILS[tail], decades=decades)
        bounds = suggest_bounds(lrs, losses)
        assert within(bounds.min_lr, truth[0]) and within(bounds.max_lr, truth[1]), bounds
        assert bounds.confidence == "high", bounds.reasons
        assert lrs[bounds.min_index] == bounds.min_lr and lrs[bounds.max_index] == bounds.max_lr
        assert truth[0] / 2 <= bounds.steepest_lr <= truth[1] * 2
        assert truth[0] / 2 <= bounds.valley_lr <= truth[1] * 10  # the fall or the flat decade after it
        assert truth[1] / 10 <= bounds.minimum_lr <= truth[1]


def test_the_answer_does_not_depend_on_how_many_iterations_the_test_ran():
    short = suggest_bounds(*synthetic_range_test(150, 0.03, 0))
    long = suggest_bounds(*synthetic_range_test(5000, 0.03, 0))
    assert short.min_lr == pytest.approx(long.min_lr, rel=0.3) and short.max_lr == pytest.approx(long.max_lr, rel=0.3)


def test_a_nan_tail_is_cut_and_gives_the_same_bounds():
    lrs, losses = synthetic_range_test()
    cut = int(np.searchsorted(lrs, 0.5))
    with_nan = losses.copy()
    with_nan[cut:] = np.nan
    with_nan[cut + 3] = np.inf
    assert suggest_bounds(lrs, with_nan) == suggest_bounds(lrs[:cut], losses[:cut])


def test_smoothing_width_is_in_decades_and_widens_only_on_sparse_curves():
    dense = smooth_in_log_lr(*synthetic_range_test(5000, 0.05))
    sparse = smooth_in_log_lr(*synthetic_range_test(100, 0.05))
    assert dense.width == pytest.approx(0.1) and sparse.width > 0.1
    assert dense.noise == pytest.approx(0.05, rel=0.15) and sparse.noise == pytest.approx(0.05, rel=0.4)
    assert np.all(dense.standard_error < sparse.standard_error.max())


@pytest.mark.parametrize(
    "losses",
    [
        np.full(200, 2.3),
        2.3 - 2.8e-14 * np.arange(200),
        2.3 * (1 + 0.05 * np.random.default_rng(0).standard_normal(200)),
    ],
    ids=["constant", "falling by 1e-14", "noise only"],
)
def test_a_curve_without_a_real_fall_gets_no_suggestion_and_is_told_what_to_change(losses):
    with pytest.raises(NoSuggestion, match="never fell by more than its noise.*run more iterations"):
        suggest_bounds(range_sweep(1e-5, 1.0, 200), losses)


def test_a_curve_that_never_falls_but_turns_up_gets_low_confidence_bounds_below_the_turn():
    lrs = range_sweep(1e-5, 1.0, 200)
    bounds = suggest_bounds(lrs, 1.0 + lrs)
    turn = lrs[np.argmax(1.0 + lrs > 1.05)]  # where the rise is far above a 0.1 % noise floor
    assert bounds.confidence == "low" and "never fell by more than its noise" in bounds.reasons[0]
    assert bounds.max_lr < turn and bounds.max_lr / bounds.min_lr == pytest.approx(4, rel=0.1)


def test_momentum_reads_each_loss_against_the_rate_its_velocity_carries():
    lrs, losses = synthetic_range_test(1000, 0.03)
    lagging = np.concatenate([np.full(9, losses[0]), losses[:-9]])  # the loss answers 9 iterations late
    assert momentum_lag(0.9) == 9
    with_lag, without = suggest_bounds(lrs, lagging, momentum=0.9), suggest_bounds(lrs[:-9], losses[:-9])
    assert (with_lag.min_lr, with_lag.max_lr) == (without.min_lr, without.max_lr)
    assert "9 iterations earlier" in with_lag.explanation
    with pytest.raises(ValueError, match="momentum=1"):
        momentum_lag(1)


def test_a_sweep_still_falling_at_end_lr_is_capped_and_says_so():
    lrs, losses = synthetic_range_test(1000, 0.03)
    end = int(np.searchsorted(lrs, 5e-3))
    bounds = suggest_bounds(lrs[:end], losses[:end])
    assert bounds.max_lr <= lrs[end - 1] / MIN_BOUND_RATIO
    assert "still falling at end_lr" in bounds.explanation and bounds.confidence == "medium"
    assert within(bounds.min_lr, TRUE_BOUNDS[0])


def test_a_steep_narrow_fall_still_gives_bounds_a_factor_3_apart():
    lrs = range_sweep(1e-5, 1.0, 400)
    position = np.log10(lrs)
    blow_up = np.where(position > -1.5, 10 ** (3 * (position + 1.5)) - 1, 0)
    losses = 2.3 - 2.0 * np.clip((position + 2) / 0.2, 0, 1) + blow_up
    losses *= 1 + 0.03 * np.random.default_rng(0).standard_normal(400)
    bounds = suggest_bounds(lrs, losses)
    assert bounds.max_lr / bounds.min_lr >= MIN_BOUND_RATIO
    assert 1e-2 <= bounds.max_lr <= 10**-1.5


def test_a_fall_that_starts_at_the_first_point_asks_for_a_lower_start_lr():
    lrs = range_sweep(1e-3, 1e-2, 200)
    with pytest.raises(NoSuggestion, match="lower `start_lr`"):
        suggest_bounds(lrs, 2.3 - np.log10(lrs / 1e-3))


def test_a_linear_sweep_keeps_the_whole_descent():
    lrs = range_sweep(1e-3, 0.2, 1000, "linear")
    position = np.log10(lrs)
    losses = 2.3 - 2.0 * np.clip((position + 2.3) / 1.1, 0, 1)
    losses *= 1 + 0.02 * np.random.default_rng(0).standard_normal(1000)
    bounds = suggest_bounds(lrs, losses)
    assert within(bounds.min_lr, 10**-2.3) and within(bounds.max_lr, 10**-1.2), bounds


def test_short_sparse_noisy_curves_get_low_confidence():
    bounds = suggest_bounds(*synthetic_range_test(50, 0.1, 1))
    assert bounds.confidence == "low" and any("points per decade" in reason for reason in bounds.reasons)


def test_too_short_repeated_lrs_and_mismatched_lengths_are_refused():
    lrs, losses = synthetic_range_test(MIN_CURVE_LENGTH - 1)
    with pytest.raises(NoSuggestion, match=f"at least {MIN_CURVE_LENGTH} points"):
        suggest_bounds(lrs, losses)
    with pytest.raises(ValueError, match="strictly increasing"):
        suggest_bounds(np.repeat(range_sweep(1e-4, 1.0, 100), 2), np.linspace(2, 1, 200))
    with pytest.raises(ValueError, match="of one length"):
        suggest_bounds(np.ones(30), np.ones(31))


def test_valley_is_fastais_rule():
    """fastai's `valley`, written out as fastai's loop, against ours on random and structured curves."""

    def fastai_valley(losses):
        n = len(losses)
        max_start, max_end = 0, 0
        lds = [1] * n
        for i in range(1, n):
            for j in range(0, i):
                if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                    lds[i] = lds[j] + 1
                if lds[max_end] < lds[i]:
                    max_end = i
                    max_start = max_end - lds[max_end]
        sections = (max_end - max_start) / 3
        return max_start + int(sections) + int(sections / 2)

    rng = np.random.default_rng(0)
    for values in (rng.random(60), np.cumsum(rng.standard_normal(80)), synthetic_range_test(120)[1]):
        assert valley_index(values) == fastai_valley(list(values))


def test_suggestion_round_trips_through_json_fields():
    bounds = suggest_bounds(*synthetic_range_test())
    assert BoundSuggestion.from_dict(bounds.as_dict()) == bounds
    assert isinstance(bounds.as_dict()["reasons"], list)
