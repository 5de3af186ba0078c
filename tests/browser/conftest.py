"""Playwright driving Debian's chromium (``apt-get install chromium``; Playwright cannot download
its own browser here)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run",
        "--disable-component-update", "--disable-sync",
        # Keep cross-site iframes in their parent's renderer: under load, Playwright sometimes lost an
        # iframe at its cross-site process swap (the frame kept the platform's URL for ever). The
        # same-origin policy, cookie partitioning and third-party-cookie blocking the tests rely on
        # do not depend on process isolation.
        "--disable-site-isolation-trials", "--disable-features=IsolateOrigins,site-per-process"]


def pytest_collection_modifyitems(config, items):
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: `apt-get install chromium` (make test does it as root)")
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(20000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def blocked_cookies_page(playwright):
    """A browser profile that blocks third-party cookies, as Safari and Chrome's incognito do."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-3pc-"))
    (profile / "Default").mkdir()
    (profile / "Default" / "Preferences").write_text(json.dumps({
        "profile": {"block_third_party_cookies": True, "cookie_controls_mode": 1},
    }))
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True,
        args=ARGS + ["--test-third-party-cookie-phaseout"])
    context.set_default_timeout(20000)
    page = context.pages[0] if context.pages else context.new_page()
    yield page
    context.close()
    shutil.rmtree(profile, ignore_errors=True)
