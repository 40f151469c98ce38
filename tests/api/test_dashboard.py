"""The dashboard in a real browser (Debian's chromium, headless, reaching no host but the service's): a range test
from the form (its fields' defaults, a bad value refused by the API's 422 beside its field), its plot growing live, its
y axis clipped as the PNG figure's, both bounds, a training from them, its curve, the model downloaded, both jobs'
bounds and final metric in the filtered job list, a comparison of the range test's bounds against a fixed rate and
1cycle (every run drawn, its table, a run linked to it and to the range test, the range test listing it); and from a
stubbed service, a range test's chart and verified candidates, the training form and its JSON in sync, and the job
list's columns and filters."""

import json
import math
import shutil
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import ValidationError

from clr.config import TrainingSpec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed (`make test` installs it with apt), so "
                             "the dashboard was not checked in a browser")]


STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
STUB = "http://dashboard.test"  # served by page.route: no network, no service
# The range-test form's fields as it opens: the dashboard's RANGE_TEST example, each default also in its hint
RANGE_TEST_FIELDS = {"model.architecture": "mlp", "dataset.name": "digits", "optimizer.name": "sgd", "batch_size": "32",
                     "start_lr": "0.0001", "end_lr": "10", "epochs": "6", "seed": "0", "verify": "off"}


def points(page) -> int:
    return int(page.get_attribute("#status", "data-points") or 0)


def field(path: str) -> str:
    """The selector of a form's field for a setting, by its path in the request."""
    return f"[data-path='{path}']"


def field_values(page) -> dict[str, str]:
    """The form's fields by path: a box as "on" or "off", any other field as its text."""
    return page.eval_on_selector_all("[data-path]", """inputs => Object.fromEntries(inputs.map((input) => [
        input.dataset.path, input.type === "checkbox" ? (input.checked ? "on" : "off") : input.value]))""")


def field_errors(page) -> dict[str, str]:
    """The errors shown beside fields, by the field's path."""
    return page.eval_on_selector_all(".field-error", """errors => Object.fromEntries(errors.map((error) => [
        error.parentNode.querySelector("[data-path]").dataset.path, error.textContent]))""")


def job_row(page, job_id: str) -> dict[str, str]:
    """The job list's cells of a job, by column."""
    row = page.locator(f"#jobs tr[data-id='{job_id}']")
    row.wait_for()
    return dict(zip(page.locator("#jobs th").all_inner_texts(), row.locator("td").all_inner_texts(), strict=True))


def listed_bounds(row: dict[str, str]) -> list[float]:
    return [float(lr) for lr in row["bounds"].split(" – ")]


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-sandbox"])


def png_y_range(loss: list, smoothed: list) -> tuple[float, float]:
    """clr/plots.py's y limits of the range-test figure, from the curve as JSON (non-finite values are null)."""
    smooth = [value for value in smoothed if value is not None]
    high = 1.25 * max(smooth[: smooth.index(min(smooth)) + 1])
    low = min(min(smooth), min(value for value in loss if value is not None))
    return low - 0.05 * (high - low), high


def assert_range_test_chart(page, loss: list, smoothed: list, lrs: list, stopped_early: bool) -> None:
    """The y axis clipped as the PNG's, the log-LR ticks readable, the divergence marked where the curve says."""
    y_min, y_max = (float(page.get_attribute("#chart", name)) for name in ("data-y-min", "data-y-max"))
    expected_min, expected_max = png_y_range(loss, smoothed)
    assert math.isfinite(y_min) and math.isfinite(y_max)
    assert y_max == pytest.approx(expected_max, rel=1e-9) and y_min == pytest.approx(expected_min, rel=1e-9, abs=1e-12)
    finite = [value for value in loss if value is not None]
    if max(finite) > expected_max:  # a blow-up: cut off, not autoscaled to
        assert y_max < max(finite)
    ticks = json.loads(page.get_attribute("#chart", "data-x-ticks"))
    assert ticks and "0" not in ticks and all(float(tick) > 0 for tick in ticks), ticks
    diverged = next((i for i, value in enumerate(loss) if value is None), len(loss) - 1 if stopped_early else None)
    marked = page.get_attribute("#chart", "data-diverged-lr")
    if diverged is None:
        assert marked is None
    else:
        assert marked is not None and float(marked) == pytest.approx(lrs[diverged], rel=1e-12)


def submitted(page, path: str) -> dict:
    """The JSON the form POSTs to `path` when its button is clicked."""
    with page.expect_request(lambda request: request.method == "POST" and urlsplit(request.url).path == path) as post:
        page.click("#submit")
    return post.value.post_data_json


def test_a_range_test_then_a_training_from_its_bounds_in_the_dashboard(service, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        # Playwright's own string predicates are an eval the page's CSP refuses; the pages under that policy are
        # checked in tests/api/test_hostile_inputs.py
        page = browser.new_page(viewport={"width": 1100, "height": 900}, accept_downloads=True, bypass_csp=True)
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(service.url + "/")
        page.fill("#key", service.api_key)
        page.click("#key-form button")
        page.wait_for_selector("#jobs")

        page.goto(service.url + "/#/new/training")
        page.wait_for_selector("#preview[data-x-scale]")
        assert page.get_attribute("#preview", "data-x-scale") == "iterations"  # not uPlot's default clock times

        page.goto(service.url + "/#/new/range-test")
        page.wait_for_selector(field("start_lr"))
        assert field_values(page) == RANGE_TEST_FIELDS
        for path, default in RANGE_TEST_FIELDS.items():
            assert page.inner_text(f"{field(path)} ~ .hint").endswith(f"default {default}")
        request = json.loads(page.input_value("#spec"))
        with service.client() as http:
            jobs_before = http.get("/jobs").raise_for_status().json()["total"]
            refused = http.post("/range-tests", json=request | {"start_lr": -1})
        assert refused.status_code == 422
        [message] = [error["msg"] for error in refused.json()["detail"] if error["loc"] == ["body", "start_lr"]]

        page.fill(field("start_lr"), "-1")  # a field edited: the JSON follows, and is what the form posts
        assert submitted(page, "/range-tests") == json.loads(page.input_value("#spec")) == request | {"start_lr": -1}
        page.wait_for_selector(f"{field('start_lr')} ~ .field-error[role=alert]")
        assert field_errors(page) == {"start_lr": message}  # the API's own message, beside its field
        assert page.get_attribute(field("start_lr"), "aria-invalid") == "true"
        assert page.inner_text("#error") == ""
        page.screenshot(path=str(tmp_path / "dashboard-forms.png"), full_page=True)  # docs/dashboard-forms.png
        with service.client() as http:
            assert http.get("/jobs").raise_for_status().json()["total"] == jobs_before  # nothing was submitted
        assert page.evaluate("location.hash") == "#/new/range-test"
        assert errors == ["Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"]
        errors.clear()  # the browser's own log of the answer the form was to get
        page.fill(field("start_lr"), "0.0001")
        assert field_errors(page) == {} and page.get_attribute(field("start_lr"), "aria-invalid") is None
        assert submitted(page, "/range-tests") == request
        page.wait_for_selector("#status[data-points]")
        page.wait_for_function("Number(document.querySelector('#status').dataset.points) > 0", timeout=120_000)
        seen = points(page)
        page.wait_for_selector("#min-lr", timeout=180_000)  # the range test ended with bounds
        assert points(page) > seen  # the plot gained points while it ran
        low, high = float(page.inner_text("#min-lr-value")), float(page.inner_text("#max-lr-value"))
        assert 0 < low < high
        job_id = page.evaluate("location.hash.slice('#/jobs/'.length)")
        with service.client() as http:
            curve = http.get(f"/jobs/{job_id}/curves").raise_for_status().json()
            result = http.get(f"/jobs/{job_id}").raise_for_status().json()["result"]
        assert len(curve["loss"]) == points(page)
        assert_range_test_chart(page, curve["loss"], curve["smoothed_loss"], curve["lr"], result["stopped_early"])
        page.screenshot(path=str(tmp_path / "dashboard.png"))  # docs/dashboard.png is one of these

        page.click("#train")
        page.wait_for_function("location.hash.startsWith('#/jobs/') && document.querySelector('h2')"
                               ".textContent.startsWith('training')", timeout=30_000)
        page.wait_for_function("document.querySelector('#status')?.dataset.state === 'succeeded'", timeout=240_000)
        assert points(page) > 0 and page.locator("#epochs tr").count() > 1
        cells = page.locator("#epochs td").all_inner_texts()
        assert "1" in cells and "1.000" not in cells  # the epoch as an integer
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "model.keras"
        download.value.save_as(saved)
        assert saved.read_bytes()[:2] == b"PK"

        training_id = page.evaluate("location.hash.slice('#/jobs/'.length)")
        with service.client() as http:
            training = http.get(f"/jobs/{training_id}").raise_for_status().json()
        page.goto(service.url + "/#/")
        range_row, training_row = job_row(page, job_id), job_row(page, training_id)
        suggested, clr = result["suggested_bounds"], training["spec"]["clr"]
        assert listed_bounds(range_row) == pytest.approx([suggested["min_lr"], suggested["max_lr"]], rel=1e-2)
        assert listed_bounds(training_row) == pytest.approx([clr["base_lr"], clr["max_lr"]], rel=1e-2)
        assert range_row["final metric"] == "-"
        name, value = training_row["final metric"].split()
        assert name == "val_accuracy"
        assert float(value) == pytest.approx(training["result"]["final_metrics"]["val_accuracy"], rel=1e-3)

        range_test_listed, training_listed = (page.locator(f"#jobs tr[data-id='{job}']")
                                              for job in (job_id, training_id))
        page.select_option("#kind-filter", "training")
        expect(range_test_listed).to_have_count(0)
        assert training_listed.count() == 1 and set(page.locator("#jobs td.kind").all_inner_texts()) == {"training"}
        page.select_option("#state-filter", "failed")
        expect(training_listed).to_have_count(0)
        assert set(page.locator("#jobs td.state").all_inner_texts()) <= {"failed"}
        page.select_option("#kind-filter", "")
        page.select_option("#state-filter", "succeeded")
        expect(range_test_listed).to_have_count(1)
        expect(training_listed).to_have_count(1)
        assert set(page.locator("#jobs td.state").all_inner_texts()) == {"succeeded"}
        page.screenshot(path=str(tmp_path / "dashboard-jobs.png"), full_page=True)  # docs/dashboard-jobs.png

        page.goto(service.url + f"/#/jobs/{job_id}")  # the range test's bounds against a fixed rate and 1cycle
        page.fill("#compare-epochs", "3")
        page.fill("#compare-seeds", "1")
        page.click("#compare")
        page.wait_for_function("location.hash.startsWith('#/jobs/') && document.querySelector('h2')"
                               ".textContent.startsWith('comparison')", timeout=30_000)
        comparison_id = page.evaluate("location.hash.slice('#/jobs/'.length)")
        page.wait_for_function("document.querySelector('#status')?.dataset.state === 'succeeded'", timeout=400_000)
        with service.client() as http:
            comparison = http.get(f"/jobs/{comparison_id}").raise_for_status().json()
            runs = [run for seeds in comparison["children"].values() for run in seeds.values()]
            lengths = [len(http.get(f"/jobs/{run}/curves", params={"max_points": 400}).json()["iteration"])
                       for run in runs]
        assert [arm.get("range_test_id") for arm in comparison["spec"]["arms"]] == [None, job_id, job_id]
        assert comparison["spec"]["arms"][0]["schedule"]["lr"] == suggested["valley_lr"]
        for arm in comparison["result"]["arms"]:  # the table: each arm's final accuracy as the API's mean
            cell = page.inner_text(f"#comparison-table tr[data-arm='{arm['name']}'] td.final")
            assert float(cell.split(" ± ")[0]) == pytest.approx(arm["final"]["val_accuracy"]["mean"], rel=1e-3)
        assert json.loads(page.get_attribute("#chart", "data-points")) == lengths  # every run drawn, each whole
        assert page.locator("#runs li a").count() == len(runs) == 3  # 3 arms, 1 seed
        assert comparison["spec"]["training"]["epochs"] == 3
        page.screenshot(path=str(tmp_path / "dashboard-comparison.png"), full_page=True)
        page.click("#runs li a >> nth=1")  # the clr arm's run
        assert page.get_attribute("#its-comparison", "href") == f"#/jobs/{comparison_id}"
        assert page.get_attribute("#its-range-test", "href") == f"#/jobs/{job_id}"
        page.goto(service.url + f"/#/jobs/{job_id}")
        page.wait_for_selector(".used-by")
        assert f"comparison {comparison_id[:8]}" in page.locator(".used-by").all_inner_texts()
        assert errors == []
        browser.close()


def stub_curve(n: int = 120) -> dict:
    """A sweep from 1e-4 to 10: a plateau at 2.4, the fall to 0.3, a blow-up to ~140 from an LR of 1, then non-finite
    losses (null, as the service sends them)."""
    lrs = [1e-4 * 1e5 ** (i / (n - 1)) for i in range(n)]
    loss = [2.4 - 2.1 * min(max(math.log10(lr / 1e-3) / 2.5, 0), 1) for lr in lrs]
    start = next(i for i, lr in enumerate(lrs) if lr >= 1)
    loss[start:] = [0.3 * 2.4**k for k in range(8)] + [None] * (n - start - 8)
    smoothed, running = [], 0.0
    for i, value in enumerate(loss, 1):  # the service's: bias-corrected, non-finite from the first non-finite on
        running = None if value is None or running is None else 0.98 * running + 0.02 * value
        smoothed.append(None if running is None else running / (1 - 0.98**i))
    return {"iteration": list(range(n)), "lr": lrs, "loss": loss, "smoothed_loss": smoothed}


def static_file(path: str) -> Path | None:
    """The dashboard's file that the service answers a request for `path` with; None for the API's paths."""
    if path == "/":
        return STATIC / "dashboard" / "index.html"
    file = STATIC / path.removeprefix("/static/")
    return file if path.startswith("/static/") and file.is_file() else None


def stub_page(browser, serve):
    """A page of the dashboard from a stubbed service (`serve` answers every request), its key typed; and the list
    of the errors it raises."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route(f"{STUB}/**", serve)
    page.goto(STUB + "/")
    page.fill("#key", "stub-key")
    page.click("#key-form button")
    return page, errors


def sse(*events: tuple[str, dict]) -> str:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


def test_a_range_test_chart_and_its_verified_candidates_from_a_stubbed_service():
    """Nothing but the browser and the static files: a diverged range test's chart, its verification table (server
    strings as text only), a running verification in the status line, and the chart's pure helpers."""
    from playwright.sync_api import sync_playwright

    curve = stub_curve()
    candidates = [
        {"name": "suggested", "min_lr": 1e-3, "max_lr": 0.1, "val_loss": 0.41, "val_accuracy": 0.88,
         "iterations": 200, "phase": "candidate_0", "chosen": False},
        {"name": "<b>lower</b>", "min_lr": 3e-4, "max_lr": 0.03, "val_loss": 0.35, "val_accuracy": 0.9,
         "iterations": 200, "phase": "candidate_1", "chosen": True},
        {"name": "valley", "min_lr": 2e-3, "max_lr": 0.2, "val_loss": None, "iterations": 200,
         "phase": "candidate_2", "chosen": False},
    ]
    result = {"iterations": 112, "stopped_early": True, "devices": [], "verification": candidates,
              "suggested_bounds": {"min_lr": 3e-4, "max_lr": 0.03, "confidence": "high", "explanation": "stub",
                                   "verified": True}}
    progress = {"iteration": 112, "total_iterations": 120, "epoch": 1, "epochs": 1}
    jobs = {name: {"id": name, "kind": "range_test", "state": state, "attempts": 1, "progress": progress,
                   "spec": {"start_lr": 1e-4, "end_lr": 10}, "result": result if state == "succeeded" else None,
                   "created_at": "2024-01-01T00:00:00Z"}
            for name, state in (("stub-done", "succeeded"), ("stub-verifying", "running"))}
    streams = {
        "stub-done": sse(("progress", progress), ("points", curve),
                         ("state", {"state": "succeeded", "attempts": 1, "error": None, "result": result})),
        "stub-verifying": sse(("state", {"state": "running", "attempts": 1}), ("points", curve),
                              ("progress", progress | {"verifying": {"candidate": 2, "of": 3}})),
    }
    served = []

    def serve(route):
        path = urlsplit(route.request.url).path
        served.append(path)
        if file := static_file(path):
            return route.fulfill(path=file)
        name = path.split("/")[2] if path.startswith("/jobs/") else None
        if path == "/jobs":
            return route.fulfill(json={"jobs": []})
        if path == f"/jobs/{name}" and name in jobs:
            return route.fulfill(json=jobs[name])
        if path == f"/jobs/{name}/events" and name in streams:
            if served.count(path) > 1:
                return None  # a running job's stream reconnects: left pending, as a quiet live stream
            return route.fulfill(body=streams[name], content_type="text/event-stream")
        return route.fulfill(status=404, json={"detail": f"not stubbed: {path}"})

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page, errors = stub_page(browser, serve)
        page.goto(STUB + "/#/jobs/stub-done")
        page.wait_for_selector("#min-lr")
        page.wait_for_function("document.querySelector('#status')?.dataset.state === 'succeeded'")
        assert_range_test_chart(page, curve["loss"], curve["smoothed_loss"], curve["lr"], True)
        assert float(page.get_attribute("#chart", "data-y-max")) < 140  # the blow-up is off the chart

        assert page.inner_text("#verified h3") == "Verified bounds"
        rows = page.locator("#verification tr")
        assert rows.count() == 1 + len(candidates)
        assert rows.nth(0).locator("th").all_inner_texts() == [
            "name", "min_lr", "max_lr", "val_accuracy", "val_loss", "iterations"]
        assert [rows.nth(i + 1).locator("td").first.inner_text() for i in range(len(candidates))] == [
            "suggested", "<b>lower</b>", "valley"]  # text, never markup
        assert page.locator("#verification b").count() == 0
        assert page.locator("#verification tr.chosen").count() == 1
        chosen = page.locator("#verification tr.chosen td").all_inner_texts()
        assert chosen == ["<b>lower</b>", "0.000300", "0.0300", "0.9000", "0.3500", "200"]
        assert page.locator("#verification tr").nth(3).locator("td").all_inner_texts()[3:5] == ["-", "-"]
        weight = page.eval_on_selector("#verification tr.chosen td", "td => getComputedStyle(td).fontWeight")
        assert int(weight) >= 600
        assert "verified" in page.inner_text("#extra")

        helpers = page.evaluate("""() => ({
            labels: [1e-4, 3e-3, 0.01, 0.1, 1, 10].map(lrLabel),
            diverged: [divergedAt([1, null, 2], false), divergedAt([1, 2, 3], true), divergedAt([1, 2, 3], false)],
            range: lossRange([2.5, 2.4, 1, 0.3, 5, 140, null], [2.4, 2.42, 2, 1, 1.5, 10, null]),
            empty: lossRange([null], [null]),
        })""")
        assert helpers["labels"] == ["1e-4", "3e-3", "0.01", "0.1", "1", "10"]
        assert helpers["diverged"] == [1, 2, -1]
        assert helpers["range"] == pytest.approx([0.3 - 0.05 * (1.25 * 2.42 - 0.3), 1.25 * 2.42])
        assert helpers["empty"] is None

        page.goto(STUB + "/#/jobs/stub-verifying")
        page.wait_for_function("document.querySelector('#status')?.textContent.includes('verifying candidate 2/3')")
        assert page.locator("#verification").count() == 0
        assert errors == []
        browser.close()


def stub_job(job_id: str, kind: str, state: str, spec: dict, result: dict | None) -> dict:
    return {"id": job_id, "kind": kind, "state": state, "spec": spec, "result": result,
            "progress": {"iteration": 10, "total_iterations": 10, "epoch": 1, "epochs": 1},
            "created_at": "2024-01-01T00:00:00Z"}


def answer_as_the_service(route, spec_model) -> None:
    """A submission answered as the service would before queueing it: 422 naming each bad field (FastAPI's detail,
    from the service's own request model), else 429 (this stub queues nothing)."""
    try:
        spec_model.model_validate(route.request.post_data_json)
    except ValidationError as error:
        detail = [{"loc": ["body", *item["loc"]], "msg": item["msg"], "type": item["type"]} for item in error.errors()]
        return route.fulfill(status=422, json={"detail": detail})
    return route.fulfill(status=429, json={"detail": "stub: the key has as many active jobs as it may"})


def test_the_training_form_and_the_filtered_job_list_from_a_stubbed_service():
    """The training form's fields and its JSON kept in sync both ways, a 422's errors beside their fields (the
    others on the error line), other errors on the error line; the job list's bounds and final metrics, its filters
    sent as the API's query parameters, also by the live refresh."""
    from playwright.sync_api import expect, sync_playwright

    jobs = [
        stub_job("range-done", "range_test", "succeeded", {}, {"suggested_bounds": {"min_lr": 0.002, "max_lr": 0.2}}),
        stub_job("range-failed", "range_test", "failed", {}, None),
        stub_job("train-given", "training", "succeeded", {"clr": {"base_lr": 1e-4, "max_lr": 0.01}},
                 {"bounds": None, "final_metrics": {"loss": 0.3, "accuracy": 0.9, "val_accuracy": 0.91234}}),
        stub_job("train-found", "training", "succeeded", {"clr": {"base_lr": None, "max_lr": None}},
                 {"bounds": [0.003, 0.3], "final_metrics": {"loss": 0.123456, "mae": 0.2}}),
        stub_job("train-queued", "training", "queued", {"clr": {"base_lr": 0.001, "max_lr": 0.1}}, None),
    ]
    posted, queries = [], []

    def serve(route):
        url = urlsplit(route.request.url)
        if file := static_file(url.path):
            return route.fulfill(path=file)
        if url.path == "/jobs":
            query = dict(parse_qsl(url.query))
            queries.append(query)
            return route.fulfill(json={"jobs": [job for job in jobs if all(
                job[name] == query[name] for name in ("kind", "state") if name in query)]})
        if url.path == "/trainings":
            posted.append(route.request.post_data_json)
            return answer_as_the_service(route, TrainingSpec)
        return route.fulfill(status=404, json={"detail": f"not stubbed: {url.path}"})

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page, errors = stub_page(browser, serve)
        page.goto(STUB + "/#/new/training")
        page.wait_for_selector(field("clr.max_lr"))
        assert field_values(page) == {
            "model.architecture": "mlp", "dataset.name": "digits", "optimizer.name": "sgd", "batch_size": "32",
            "cycles": "1", "epochs": "", "seed": "0", "clr.base_lr": "0.001", "clr.max_lr": "0.1",
            "clr.step_size_epochs": "2", "validation_split": ""}
        assert page.get_attribute(field("validation_split"), "placeholder") == "0"  # the API's, when left out
        assert page.inner_text(f"{field('validation_split')} ~ .hint").endswith("default 0")

        request = json.loads(page.input_value("#spec"))
        edited = request | {"batch_size": 64, "clr": request["clr"] | {"max_lr": 0.05, "mode": "zigzag"}}
        page.fill("#spec", json.dumps(edited))  # the JSON edited: the fields it covers follow
        assert page.input_value(field("batch_size")) == "64" and page.input_value(field("clr.max_lr")) == "0.05"
        page.fill("#spec", "{")
        assert page.is_disabled(field("batch_size"))  # nothing to write into until it parses again
        page.fill("#spec", json.dumps(edited))
        assert page.is_enabled(field("batch_size"))

        page.fill(field("epochs"), "3")  # fields edited: the JSON follows, what they do not cover kept
        page.fill(field("clr.max_lr"), "-1")
        assert page.input_value(field("cycles")) == ""  # epochs or cycles, not both
        sent = {key: value for key, value in edited.items() if key != "cycles"} | {
            "epochs": 3, "clr": edited["clr"] | {"max_lr": -1}}
        assert json.loads(page.input_value("#spec")) == sent
        page.click("#submit")
        page.wait_for_selector(".field-error")
        assert posted == [sent]
        assert field_errors(page) == {"clr.max_lr": "Input should be greater than 0"}
        assert page.get_attribute(field("clr.max_lr"), "aria-invalid") == "true"
        assert page.inner_text("#error") == "422: clr.mode: Input should be 'triangular', 'triangular2' or 'exp_range'"

        page.fill("#spec", json.dumps(sent | {"clr": sent["clr"] | {"max_lr": 0.05, "mode": "triangular"}}))
        page.click("#submit")
        page.wait_for_function("document.querySelector('#error').textContent.startsWith('429: ')")
        assert len(posted) == 2 and field_errors(page) == {}
        assert page.locator("[aria-invalid]").count() == 0

        page.goto(STUB + "/#/")
        rows = {job["id"]: job_row(page, job["id"]) for job in jobs}
        assert {job: (row["bounds"], row["final metric"]) for job, row in rows.items()} == {
            "range-done": ("0.00200 – 0.200", "-"), "range-failed": ("-", "-"),
            "train-given": ("0.000100 – 0.0100", "val_accuracy 0.9123"),
            "train-found": ("0.00300 – 0.300", "loss 0.1235"), "train-queued": ("0.00100 – 0.100", "-")}
        page.select_option("#kind-filter", "training")
        expect(page.locator("#jobs tr[data-id]")).to_have_count(3)
        page.select_option("#state-filter", "succeeded")
        expect(page.locator("#jobs tr[data-id]")).to_have_count(2)
        assert queries[-1] == {"kind": "training", "state": "succeeded", "limit": "50"}
        with page.expect_request(lambda request: urlsplit(request.url).path == "/jobs") as refreshed:
            pass  # the next live refresh
        assert dict(parse_qsl(urlsplit(refreshed.value.url).query)) == {"kind": "training", "state": "succeeded",
                                                                         "limit": "50"}
        assert page.locator("#jobs tr[data-id]").count() == 2
        assert errors == []
        browser.close()
