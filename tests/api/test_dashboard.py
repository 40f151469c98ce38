"""The dashboard in a real browser (Debian's chromium, headless, reaching no host but the service's): a range test
from the form, its plot growing live, both bounds, a training from them, its curve, the model downloaded."""

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed (`make test` installs it with apt), so "
                             "the dashboard was not checked in a browser")]


def points(page) -> int:
    return int(page.get_attribute("#status", "data-points") or 0)


def test_a_range_test_then_a_training_from_its_bounds_in_the_dashboard(service, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900}, accept_downloads=True)
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(service.url + "/")
        page.fill("#key", service.api_key)
        page.click("#key-form button")
        page.wait_for_selector("#jobs")

        page.goto(service.url + "/#/new/range-test")
        page.click("#submit")
        page.wait_for_selector("#status[data-points]")
        page.wait_for_function("Number(document.querySelector('#status').dataset.points) > 0", timeout=120_000)
        seen = points(page)
        page.wait_for_selector("#min-lr", timeout=180_000)  # the range test ended with bounds
        assert points(page) > seen  # the plot gained points while it ran
        low, high = float(page.inner_text("#min-lr-value")), float(page.inner_text("#max-lr-value"))
        assert 0 < low < high
        page.screenshot(path=str(tmp_path / "dashboard.png"))  # docs/dashboard.png is one of these

        page.click("#train")
        page.wait_for_function("location.hash.startsWith('#/jobs/') && document.querySelector('h2')"
                               ".textContent.startsWith('training')", timeout=30_000)
        page.wait_for_function("document.querySelector('#status')?.dataset.state === 'succeeded'", timeout=240_000)
        assert points(page) > 0 and page.locator("#epochs tr").count() > 1
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "model.keras"
        download.value.save_as(saved)
        assert saved.read_bytes()[:2] == b"PK"
        assert errors == []
        browser.close()
