"""A comparison's table from its trainings' results, and the spec a comparison is submitted with."""

import math

import pytest
from pydantic import ValidationError

from clr.comparison import comparison_table, iterations_to_reach
from clr.config import ComparisonSpec

BASE = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
        "batch_size": 32, "epochs": 4, "validation_split": 0.2}
FIXED = {"name": "fixed", "schedule": {"policy": "constant", "lr": 0.05}}


def result(val_accuracy: list[float], iterations: int = 40, test_accuracy: float = 0.9) -> dict:
    history = {"val_accuracy": val_accuracy, "val_loss": [1 - value for value in val_accuracy]}
    return {"iterations": iterations, "epochs": len(val_accuracy), "history": history, "test_accuracy": test_accuracy,
            "final_metrics": {name: values[-1] for name, values in history.items()}, "schedule": {"lr": 0.05}}


def test_the_table_gives_each_arms_spread_and_the_iterations_to_reach_the_fixed_rates_final_accuracy():
    arms = {"fixed": [result([0.5, 0.7, 0.8, 0.8]), result([0.4, 0.6, 0.8, 0.9])],
            "clr": [result([0.6, 0.86, 0.9, 0.95]), result([0.5, 0.7, 0.9, 0.9], test_accuracy=0.8)],
            "slow": [result([0.1, 0.2, 0.3, 0.4])]}
    table = comparison_table(arms, ["fixed"])
    assert table["target"] == {"arm": "fixed", "metric": "val_accuracy", "value": pytest.approx(0.85)}
    fixed, clr, slow = table["arms"]
    assert clr["runs"] == 2 and clr["final"]["val_accuracy"]["mean"] == pytest.approx(0.925)
    assert clr["final"]["val_accuracy"]["std"] == pytest.approx(math.sqrt(2 * 0.025**2))
    assert clr["final"]["test_accuracy"] == {"mean": pytest.approx(0.85), "std": pytest.approx(math.sqrt(0.005)),
                                             "n": 2}
    assert clr["best"]["val_loss"]["mean"] == pytest.approx(1 - 0.925)  # a loss is best at its lowest
    assert clr["iterations_to_target"]["per_run"] == [20, 30]  # 10 iterations an epoch: epochs 2 and 3
    assert fixed["iterations_to_target"]["per_run"] == [None, 40]  # one seed ends below the arm's mean
    assert slow["iterations_to_target"] == "never" and slow["final"]["val_accuracy"]["std"] is None


def test_without_a_constant_rate_arm_there_is_no_target():
    table = comparison_table({"clr": [result([0.5, 0.9])]}, [])
    assert table["target"] is None and "iterations_to_target" not in table["arms"][0]


def test_the_best_of_several_fixed_rates_sets_the_target():
    arms = {"slow": [result([0.5, 0.6])], "fast": [result([0.6, 0.8])], "clr": [result([0.9, 0.9])]}
    assert comparison_table(arms, ["slow", "fast"])["target"] == {"arm": "fast", "metric": "val_accuracy",
                                                                  "value": 0.8}


def test_a_loss_target_is_reached_from_above():
    assert iterations_to_reach(result([0.5, 0.7, 0.8, 0.9]), "val_loss", 0.25) == 30


def test_each_arm_and_seed_is_a_training_of_its_own():
    spec = ComparisonSpec.model_validate({"training": BASE, "seeds": [3, 4], "arms": [
        FIXED, {"name": "clr", "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size_epochs": 2}}]})
    runs = [(arm.name, seed, training.seed, training.epochs) for arm, seed, training in spec.runs()]
    assert runs == [("fixed", 3, 3, 4), ("fixed", 4, 4, 4), ("clr", 3, 3, 4), ("clr", 4, 4, 4)]
    assert spec.runs()[0][2].schedule.lr == 0.05 and spec.runs()[2][2].clr.max_lr == 0.1


@pytest.mark.parametrize(("changes", "text"), [
    ({"arms": [FIXED, FIXED]}, "`arms` must be distinct"),
    ({"seeds": [1, 1]}, "`seeds` must be distinct"),
    ({"arms": [FIXED, {"name": "clr", "clr": {"step_size": 5}}]}, "`arms[1]` (clr) is no training: body: Value error, "
                                                                   "Give exactly one of `clr.base_lr`"),
    ({"arms": [{"name": "x" * 41, "clr": {}}]}, "String should match pattern"),
    ({"training": BASE | {"seed": 1}}, "training.seed"),
])
def test_a_comparison_that_cannot_run_is_refused_naming_the_arm(changes, text):
    with pytest.raises(ValidationError, match=text.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        ComparisonSpec.model_validate({"training": BASE, "arms": [FIXED]} | changes)
