"""What the browser tests share: Debian's Chromium driven by Playwright, once per module."""
import pytest
from playwright.sync_api import sync_playwright

# `make test` installs Debian's chromium (Playwright's own browser download does not work here).
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's tests."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()
