import pytest

from bench.bounds_panel import synthetic_range_test
from clr.bounds import MIN_BOUND_RATIO, suggest_bounds
from clr.verification import MAX_CANDIDATES, candidates, chosen, verified


@pytest.fixture(scope="module")
def suggestion():
    return suggest_bounds(*synthetic_range_test(1000, 0.03))


def test_candidates_start_with_the_suggestion_and_the_valley_then_move_max_lr(suggestion):
    offered = candidates(suggestion, MAX_CANDIDATES)  # no accuracy recorded: one fewer
    assert [candidate.name for candidate in offered] == [
        "suggested", "valley", "half max_lr", "twice max_lr", "quarter max_lr", "four times max_lr"]
    assert (offered[0].min_lr, offered[0].max_lr) == (suggestion.min_lr, suggestion.max_lr)
    assert offered[1].max_lr == suggestion.valley_lr and offered[1].min_lr <= suggestion.valley_lr / 4
    assert [candidate.max_lr / suggestion.max_lr for candidate in offered[2:]] == pytest.approx([0.5, 2, 0.25, 4])
    assert all(candidate.max_lr / candidate.min_lr >= MIN_BOUND_RATIO * (1 - 1e-12) for candidate in offered)
    assert len(candidates(suggestion, 2)) == 2


def test_smiths_reading_of_the_accuracy_is_the_third_candidate(suggestion):
    from dataclasses import replace

    with_accuracy = replace(suggestion, accuracy_bounds=(suggestion.min_lr / 2, suggestion.max_lr * 1.5))
    offered = candidates(with_accuracy, MAX_CANDIDATES)
    assert len(offered) == MAX_CANDIDATES and offered[2].name == "accuracy"
    assert (offered[2].min_lr, offered[2].max_lr) == with_accuracy.accuracy_bounds


def test_a_candidate_close_to_an_earlier_one_is_dropped(suggestion):
    from dataclasses import replace

    near_valley = replace(suggestion, valley_lr=suggestion.max_lr * 1.1, min_lr=suggestion.max_lr * 1.1 / 4)
    names = [candidate.name for candidate in candidates(near_valley, MAX_CANDIDATES)]
    assert "valley" not in names and names[0] == "suggested" and len(names) == 5


def measured(name, min_lr, max_lr, val_accuracy, val_loss, val_loss_se=0.01):
    return {"name": name, "min_lr": min_lr, "max_lr": max_lr, "val_accuracy": val_accuracy, "val_loss": val_loss,
            "val_loss_se": val_loss_se, "epochs": 2, "iterations": 90, "phase": "candidate_0"}


def test_the_lowest_validation_loss_wins_by_more_than_its_error_and_a_diverged_candidate_never_does(suggestion):
    rows = [measured("suggested", 0.01, 0.05, 0.97, 0.2), measured("twice max_lr", 0.01, 0.1, 0.95, 0.15),
            measured("four times max_lr", 0.01, 0.2, None, None, None)]
    assert chosen(rows)["name"] == "twice max_lr"
    best = verified(suggestion, rows)
    assert (best.min_lr, best.max_lr, best.verified) == (0.01, 0.1, True)
    assert "'twice max_lr'" in best.explanation and "validation loss 0.15, accuracy 0.9500" in best.explanation
    assert best.explanation.startswith(suggestion.explanation)
    regression = verified(suggestion, [measured("half max_lr", 0.01, 0.03, None, 0.1)])
    assert regression.max_lr == 0.03 and regression.explanation.endswith("(validation loss 0.1).")


def test_within_one_standard_error_the_suggestion_stays_else_the_lowest_max_lr_is_chosen(suggestion):
    rows = [measured("suggested", 0.01, 0.05, 0.96, 0.20), measured("twice max_lr", 0.01, 0.1, 0.97, 0.19, 0.02)]
    assert chosen(rows)["name"] == "suggested"
    kept = verified(suggestion, rows)
    assert kept.max_lr == 0.05 and "by less than one standard error" in kept.explanation
    rows = [measured("suggested", 0.01, 0.05, 0.9, 0.5), measured("half max_lr", 0.01, 0.025, 0.96, 0.21),
            measured("twice max_lr", 0.01, 0.1, 0.97, 0.19, 0.03)]
    assert chosen(rows)["name"] == "half max_lr"
    assert chosen([measured("suggested", 0.01, 0.05, None, None, None)])["name"] == "suggested"
