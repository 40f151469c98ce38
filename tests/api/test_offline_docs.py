"""`/docs` and `/redoc` render in a real browser that can reach no host but the service's (air-gapped clusters)."""

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed (`make test` installs it with apt), so "
                             "the offline docs were not checked in a browser")


@pytest.fixture(scope="module")
def offline_browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-sandbox"])
        yield browser
        browser.close()


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "redoc h1")])
def test_the_api_docs_render_with_every_file_from_the_service(service, offline_browser, path, rendered):
    page = offline_browser.new_page()
    requested, failed, errors = [], [], []
    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfailed", lambda request: failed.append(f"{request.url}: {request.failure}"))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(service.url + path)
    page.wait_for_selector(rendered, timeout=30_000)
    assert "clr-service" in page.inner_text(rendered)
    assert failed == [] and errors == []
    own = [url.removeprefix("blob:").startswith(service.url) for url in requested]  # ReDoc's worker is a blob
    assert requested and all(own), requested
    page.close()
