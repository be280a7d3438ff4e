import os
import shutil

import pytest

from tests.conftest import service_missing


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        service_missing("needs Debian's chromium for browser tests (apt-get install chromium; .ci/run does)")
    return path


@pytest.fixture
def browser(chromium_path, monkeypatch):
    """A headless Debian chromium driven by Playwright (no browser download). Playwright's
    sync API runs an event loop in this thread, so the test's own ORM calls are allowed
    under it."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
