import pytest

from clr.config import TrainingSpec
from clr.plan import iterations_per_epoch, plan_training

DIGITS_TRAIN = 1437


def spec(**changes) -> TrainingSpec:
    body = {
        "model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
        "batch_size": 32, "validation_split": 0.1, "epochs": 8,
        "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size_epochs": 4},
    }
    return TrainingSpec.model_validate(body | changes)


def test_epochs_follow_the_trainings_own_split():
    assert iterations_per_epoch(DIGITS_TRAIN, 32, 0.1) == 41  # floor(1437 * 0.9) = 1293 samples
    assert iterations_per_epoch(DIGITS_TRAIN, 32) == 45
    with pytest.raises(ValueError, match="`validation_split` leaves no training samples of 1"):
        iterations_per_epoch(1, 32, 0.5)


def test_a_correct_training_gets_no_advice():
    plan = plan_training(spec(), DIGITS_TRAIN)
    assert (plan.iterations_per_epoch, plan.step_size, plan.epochs, plan.total_iterations) == (41, 164, 8, 328)
    assert plan.warnings == ()


def test_a_one_epoch_step_size_is_advised_against():
    plan = plan_training(spec(epochs=2, clr={"base_lr": 0.01, "max_lr": 0.1, "step_size_epochs": 1}), DIGITS_TRAIN)
    assert len(plan.warnings) == 1 and "step_size=41 is 1 epochs of 41 iterations" in plan.warnings[0]
    assert "Smith recommends 2 to 10 epochs (82 to 410 iterations)" in plan.warnings[0]


def test_epochs_ending_mid_cycle_say_where_the_last_cycle_ends_and_how_to_fix_it():
    (warning,) = plan_training(spec(epochs=10), DIGITS_TRAIN).warnings
    assert "ends mid-cycle, at iteration 410 of cycles of 328 iterations" in warning
    assert "the last whole cycle ends at iteration 328" in warning
    assert "`cycles` instead of `epochs` (cycles=1)" in warning and "epochs a multiple of 8" in warning


def test_cycles_give_whole_cycles_of_whole_epochs():
    plan = plan_training(spec(epochs=None, cycles=3), DIGITS_TRAIN)
    assert plan.epochs == 24 and plan.total_iterations == 3 * 2 * plan.step_size and plan.warnings == ()


def test_cycles_that_do_not_fit_whole_epochs_say_what_they_rounded_to():
    body = spec(epochs=None, cycles=2, clr={"base_lr": 0.01, "max_lr": 0.1, "step_size": 100})
    plan = plan_training(body, DIGITS_TRAIN)
    assert plan.epochs == 10  # 400 iterations are 9.76 epochs of 41
    assert any("cycles=2 is 400 iterations, 9.76 epochs of 41: training runs 10 epochs (410 iterations)" in warning
               for warning in plan.warnings)


def test_epochs_and_cycles_are_exclusive():
    with pytest.raises(ValueError, match="exactly one of `epochs` and `cycles`"):
        spec(cycles=2)
    with pytest.raises(ValueError, match="exactly one of `epochs` and `cycles`"):
        spec(epochs=None)


def test_the_digits_size_the_api_plans_with_is_the_datasets_own():
    from clr.datasets import digits
    from clr.volume import DIGITS_TRAIN_SAMPLES

    assert DIGITS_TRAIN_SAMPLES == len(digits().x_train) == DIGITS_TRAIN
