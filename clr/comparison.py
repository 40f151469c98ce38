"""A comparison's table (Smith 2017, Table 1): per arm, the mean and spread over seeds of its trainings' final and
best metrics, and the iterations each took to reach the best fixed-rate arm's final accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# The metric the target is read on, by preference: validation accuracy, then training accuracy, then the losses.
TARGET_METRICS = ("val_accuracy", "accuracy", "val_loss", "loss")


def lower_is_better(metric: str) -> bool:
    return metric.endswith("loss") or metric.endswith(("mae", "rmse"))


def spread(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """The mean and sample standard deviation of the finite `values`, and how many there were."""
    finite = [value for value in values if value is not None and math.isfinite(value)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((value - mean) ** 2 for value in finite) / (len(finite) - 1)) if len(finite) > 1 else None
    return {"mean": mean, "std": std, "n": len(finite)}


def best_of(metric: str, values: Sequence[float | None]) -> float | None:
    finite = [value for value in values if value is not None and math.isfinite(value)]
    return (min if lower_is_better(metric) else max)(finite) if finite else None


def iterations_to_reach(result: dict[str, Any], metric: str, target: float) -> int | None:
    """The iterations a training took to reach `target` on `metric` at the end of an epoch (None: never)."""
    history, epochs = result.get("history", {}).get(metric, []), result.get("epochs")
    if not epochs or not result.get("iterations"):
        return None
    per_epoch = result["iterations"] // epochs
    for epoch, value in enumerate(history, start=1):
        if value is not None and (value <= target if lower_is_better(metric) else value >= target):
            return epoch * per_epoch
    return None


def target_of(arms: dict[str, list[dict[str, Any]]], fixed_arms: Sequence[str]) -> dict[str, Any] | None:
    """The best fixed-rate arm's mean final value of the first metric their trainings recorded (`TARGET_METRICS`):
    Table 1's fixed LR is the best of a grid of them."""
    for metric in TARGET_METRICS:
        finals = {name: spread([result.get("final_metrics", {}).get(metric) for result in arms.get(name, [])])
                  for name in fixed_arms}
        reached = {name: figures["mean"] for name, figures in finals.items() if figures["n"]}
        if reached:
            best = (min if lower_is_better(metric) else max)(reached, key=reached.get)
            return {"arm": best, "metric": metric, "value": reached[best]}
    return None


def comparison_table(arms: dict[str, list[dict[str, Any]]], fixed_arms: Sequence[str]) -> dict[str, Any]:
    """The table of `arms` (each arm's succeeded trainings' results, one per seed): its rows and the target that the
    best of `fixed_arms` (the constant-rate arms) set."""
    target = target_of(arms, fixed_arms)
    rows = []
    for name, results in arms.items():
        metrics = sorted({metric for result in results for metric in result.get("final_metrics", {})}
                         | {key for result in results for key in result if key.startswith("test_")})
        row: dict[str, Any] = {
            "name": name,
            "runs": len(results),
            "schedules": [result.get("clr") or result.get("schedule") for result in results],  # each run's, resolved
            "final": {metric: spread([result.get("final_metrics", {}).get(metric, result.get(metric))
                                      for result in results]) for metric in metrics},
            "best": {metric: spread([best_of(metric, result["history"][metric]) for result in results])
                     for metric in metrics if all(metric in result.get("history", {}) for result in results)},
        }
        if target is not None:
            reached = [iterations_to_reach(result, target["metric"], target["value"]) for result in results]
            row["iterations_to_target"] = {"per_run": reached, **spread(reached)} if any(
                value is not None for value in reached) else "never"
        rows.append(row)
    return {"target": target, "arms": rows}
