"""Real Chromium (Debian's /usr/bin/chromium) driven by Playwright, against a real tidings server.

Skipped when Chromium is missing, unless TIDINGS_REQUIRE_SERVICES=1 (then failed).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.conftest import ServerFactory, require_services

CHROMIUM = os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skip the test when Chromium is missing (fail it under TIDINGS_REQUIRE_SERVICES=1)."""
    if not Path(CHROMIUM).is_file():
        reason = f"{CHROMIUM} is missing: apt-get install chromium (scripts/install-system)"
        if require_services():
            pytest.fail(reason)
        pytest.skip(reason)


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it is active, and the async tests of the other packages could not run theirs.
@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Playwright]:
    require_chromium()
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture
def make_server(make_server: ServerFactory) -> ServerFactory:
    """Here a server is uvicorn in a thread (tests.support.ThreadServer): a page test starts one
    in a tenth of a second instead of a process's seconds. A test that kills the server, or
    needs a process's arguments, asks for one: make_server(..., thread=False)."""
    return functools.partial(make_server, thread=True)
