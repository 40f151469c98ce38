"""A comparison on the real stack, submitted and watched with the CLI: its arms x seeds run as ordinary trainings on
the schedules they name, its table is theirs, and cancelling, deleting and tenancy reach every training."""

import csv
import io
import json
import time

import numpy as np
import pytest
import redis
from typer.testing import CliRunner

from api.examples import RANGE_TEST_EXAMPLE
from api.keys import ApiKey, KeyStore
from clr.comparison import iterations_to_reach
from clr.policies import constant_lr, one_cycle_lr
from clr.schedules import cyclical_lr
from clr_service.cli import app
from tests.helpers import wait_for_state, wait_until

pytestmark = pytest.mark.slow
TERMINAL = {"succeeded", "failed", "cancelled"}
BASE = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
        "batch_size": 50, "epochs": 2, "validation_split": 0.2}


@pytest.fixture(scope="module")
def range_test(client):
    job = client.post("/range-tests", json=RANGE_TEST_EXAMPLE | {"model": {"architecture": "mlp"}, "epochs": 1,
                                                                 "seed": 0}).json()
    return wait_for_state(client, job["id"], {"succeeded", "failed"})


def arms(range_test_id: str) -> list[dict]:
    return [{"name": "fixed", "schedule": {"policy": "constant", "lr": 0.05}},
            {"name": "clr", "clr": {"step_size_epochs": 1}, "range_test_id": range_test_id,
             "accept_low_confidence": True},
            {"name": "one_cycle", "schedule": {"policy": "one_cycle", "max_lr": 0.1}}]


def lr_schedule(result: dict):
    if "clr" in result:
        return cyclical_lr(**result["clr"])
    arguments = {name: value for name, value in result["schedule"].items() if name != "policy"}
    return {"constant": constant_lr, "one_cycle": one_cycle_lr}[result["schedule"]["policy"]](**arguments)


def test_a_comparison_trains_every_arm_and_seed_and_tables_their_results(client, service, range_test, tmp_path):
    spec = tmp_path / "comparison.json"  # submitted and watched to its end by the CLI, which prints its table
    spec.write_text(json.dumps({"training": BASE, "arms": arms(range_test["id"]), "seeds": [0, 1]}))
    watched = CliRunner().invoke(app, ["submit", "comparison", str(spec), "--watch", "--url", service.url,
                                       "--key", service.api_key])
    assert watched.exit_code == 0, watched.output
    comparison = client.get(f"/jobs/{watched.output.split()[0]}").json()
    assert f"{comparison['id']}: succeeded" in watched.output
    assert "arm,runs,figure,metric,mean,std,n,iterations_to_target" in watched.output
    assert comparison["kind"] == "comparison" and comparison["state"] == "succeeded", comparison["error"]
    assert {arm: sorted(seeds) for arm, seeds in comparison["children"].items()} == {
        "fixed": ["0", "1"], "clr": ["0", "1"], "one_cycle": ["0", "1"]}

    children = {(arm, int(seed)): client.get(f"/jobs/{job_id}").json()
                for arm, seeds in comparison["children"].items() for seed, job_id in seeds.items()}
    for (arm, seed), child in children.items():
        assert child["state"] == "succeeded" and child["kind"] == "training"
        assert child["comparison"] == {"id": comparison["id"], "arm": arm, "seed": seed}
        assert child["spec"]["seed"] == seed
        curves = client.get(f"/jobs/{child['id']}/curves").json()
        total = child["result"]["iterations"]
        assert curves["iteration"] == list(range(total))  # one point per iteration
        np.testing.assert_allclose(curves["lr"], lr_schedule(child["result"])(np.arange(total)), rtol=1e-6)
        assert client.get(f"/jobs/{comparison['id']}/curves", params={"arm": arm, "seed": seed}).json() == curves
    bounds = range_test["result"]["suggested_bounds"]
    assert children["clr", 0]["result"]["clr"]["base_lr"] == bounds["min_lr"]

    table = comparison["result"]
    target = np.mean([children["fixed", seed]["result"]["final_metrics"]["val_accuracy"] for seed in (0, 1)])
    assert table["target"] == {"arm": "fixed", "metric": "val_accuracy", "value": pytest.approx(target)}
    for row in table["arms"]:
        runs = [children[row["name"], seed] for seed in (0, 1)]
        finals = [run["result"]["final_metrics"]["val_accuracy"] for run in runs]
        assert row["runs"] == 2
        assert row["final"]["val_accuracy"]["mean"] == pytest.approx(np.mean(finals))
        assert row["final"]["val_accuracy"]["std"] == pytest.approx(np.std(finals, ddof=1), abs=1e-12)
        tests = [run["result"]["test_accuracy"] for run in runs]
        assert row["final"]["test_accuracy"]["mean"] == pytest.approx(np.mean(tests))
        reached = [iterations_to_reach(run["result"], "val_accuracy", target) for run in runs]
        for run, iterations in zip(runs, reached, strict=True):  # against the curves' own epochs
            epochs = client.get(f"/jobs/{run['id']}/curves").json()["epochs"]
            first = next((index for index, epoch in enumerate(epochs, 1) if epoch["val_accuracy"] >= target), None)
            assert iterations == (None if first is None else first * run["result"]["iterations"] // 2)
        assert row["iterations_to_target"] == ("never" if reached == [None, None] else {
            "per_run": reached, "mean": pytest.approx(np.mean([value for value in reached if value is not None])),
            "std": row["iterations_to_target"]["std"], "n": sum(value is not None for value in reached)})

    rows = list(csv.DictReader(io.StringIO(client.get(f"/jobs/{comparison['id']}/table.csv").text)))
    assert {row["arm"] for row in rows} == {"fixed", "clr", "one_cycle"}
    assert float(next(row for row in rows if (row["arm"], row["figure"], row["metric"]) == (
        "clr", "final", "val_accuracy"))["mean"]) == pytest.approx(table["arms"][1]["final"]["val_accuracy"]["mean"])
    png = client.get(f"/jobs/{comparison['id']}/plot.png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")

    a_child = children["fixed", 0]["id"]
    refused = client.delete(f"/jobs/{a_child}")
    assert refused.status_code == 409 and comparison["id"] in refused.text
    assert client.delete(f"/jobs/{comparison['id']}").status_code == 204
    assert all(client.get(f"/jobs/{child['id']}").status_code == 404 for child in children.values())


def test_cancelling_a_comparison_cancels_its_trainings(client):
    body = {"training": BASE | {"epochs": 40}, "seeds": [0, 1],
            "arms": [{"name": "fixed", "schedule": {"policy": "constant", "lr": 0.05}},
                     {"name": "one_cycle", "schedule": {"policy": "one_cycle", "max_lr": 0.1}}]}
    comparison = client.post("/comparisons", json=body).json()
    ids = [job_id for seeds in comparison["children"].values() for job_id in seeds.values()]
    wait_until(lambda: client.get(f"/jobs/{ids[0]}").json()["progress"]["iteration"] > 0, "the first training runs")
    assert client.post(f"/jobs/{comparison['id']}/cancel").status_code == 202
    comparison = wait_for_state(client, comparison["id"], TERMINAL)
    assert comparison["state"] == "cancelled"
    assert [client.get(f"/jobs/{job_id}").json()["state"] for job_id in ids] == ["cancelled"] * 4
    assert client.delete(f"/jobs/{comparison['id']}").status_code == 204


def test_a_comparisons_trainings_count_against_its_tenants_limits_and_are_its_own(client, service):
    keys = KeyStore(redis.Redis.from_url(service.redis_url))
    body = {"training": BASE, "seeds": [0, 1], "arms": [{"name": "fixed", "schedule": {"policy": "constant",
                                                                                        "lr": 0.05}}]}
    with service.client(keys.create(ApiKey(f"three-{time.monotonic_ns()}", max_active_jobs=3))) as limited:
        assert limited.post("/comparisons", json=body | {"seeds": [0, 1, 2, 3]}).status_code == 429
        comparison = limited.post("/comparisons", json=body).json()
        assert comparison["kind"] == "comparison" and comparison["state"] == "running"  # from the start, no queue
        assert limited.get("/jobs", params={"kind": "training"}).json()["total"] == 2
        with service.client(keys.create(ApiKey(f"other-{time.monotonic_ns()}"))) as other:
            assert other.get(f"/jobs/{comparison['id']}").status_code == 404
            assert other.get(f"/jobs/{comparison['children']['fixed']['0']}").status_code == 404
        limited.post(f"/jobs/{comparison['id']}/cancel")
        wait_for_state(limited, comparison["id"], TERMINAL)

