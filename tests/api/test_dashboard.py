"""The dashboard in a real browser (Debian's chromium, headless, reaching no host but the service's): a range test
from the form, its plot growing live, its y axis clipped as the PNG figure's, both bounds, a training from them, its
curve, the model downloaded; and a range test's chart and verified candidates from a stubbed service."""

import json
import math
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed (`make test` installs it with apt), so "
                             "the dashboard was not checked in a browser")]


STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
STUB = "http://dashboard.test"  # served by page.route: no network, no service


def points(page) -> int:
    return int(page.get_attribute("#status", "data-points") or 0)


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


def test_a_range_test_then_a_training_from_its_bounds_in_the_dashboard(service, tmp_path):
    from playwright.sync_api import sync_playwright

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
        page.click("#submit")
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
        if path == "/":
            return route.fulfill(path=STATIC / "dashboard" / "index.html")
        if path.startswith("/static/") and (STATIC / path.removeprefix("/static/")).is_file():
            return route.fulfill(path=STATIC / path.removeprefix("/static/"))
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
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route(f"{STUB}/**", serve)
        page.goto(STUB + "/")
        page.fill("#key", "stub-key")
        page.click("#key-form button")
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
