"""Chromium logs in to the Django site (runserver), a view calls notify(), the badge changes live.

As every guide sets it up: the app on one origin, tidings on another (another port), with
TIDINGS_CORS_ORIGINS naming the app, over plain HTTP on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.support import PUBLISHER_KEY, SECRET, Server, free_port, tidings_env, wait_for_200

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Server]]:
    """tidings and the Django site, each on its own free port; yields the site's URL."""
    folder = tmp_path_factory.mktemp("django-site")
    site_port = free_port()
    site_url = f"http://127.0.0.1:{site_port}"
    tidings = Server(
        env=tidings_env(f"sqlite:///{folder / 'tidings.db'}", {"TIDINGS_CORS_ORIGINS": site_url}),
        log_path=folder / "tidings.log",
    )
    tidings.start()
    env = {
        # The app's side of one shared .env.
        **tidings_env(
            "sqlite:///unused.db",
            {"TIDINGS_URL": tidings.url, "TIDINGS_PUBLISHER_KEY": PUBLISHER_KEY},
        ),
        "DJANGO_SETTINGS_MODULE": "tests.integrations.django_site.settings",
        "DJANGO_SITE_DB": str(folder / "site.db"),
        "PYTHONPATH": str(ROOT),
    }
    assert env["TIDINGS_SECRET"] == SECRET
    manage = [sys.executable, "-m", "django"]
    subprocess.run([*manage, "migrate", "--verbosity=0"], env=env, cwd=ROOT, check=True, timeout=60)
    create = (
        "from django.contrib.auth.models import User; "
        "User.objects.create_user('ada', password='pw-ada-0123')"
    )
    subprocess.run([*manage, "shell", "-c", create], env=env, cwd=ROOT, check=True, timeout=60)
    log = (folder / "site.log").open("wb")
    proc = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{site_port}"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        wait_for_200(
            proc,
            f"{site_url}/login/",
            30,
            lambda: (folder / "site.log").read_text(errors="replace"),
        )
        yield site_url, tidings
    finally:
        proc.terminate()
        proc.wait(10)
        tidings.close()


def log_in(page: Page, site_url: str) -> None:
    page.goto(f"{site_url}/login/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "pw-ada-0123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{site_url}/")


def test_a_view_that_notifies_updates_the_badge_without_a_reload(
    browser: Browser, site: tuple[str, Server]
) -> None:
    site_url, _ = site
    context = browser.new_context()
    refused: list[str] = []
    try:
        page = context.new_page()
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )
        log_in(page, site_url)
        bell = page.locator("tidings-bell")
        expect(bell).to_have_attribute("data-connection", "open", timeout=15000)
        expect(bell).to_have_attribute("data-unread", "0")
        loaded = page.evaluate("performance.timeOrigin")
        status = page.evaluate(
            """async () => {
                const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
                const r = await fetch("/invoices/7/pay",
                                      {method: "POST", headers: {"X-CSRFToken": csrf}});
                return r.status;
            }"""
        )
        assert status == 200
        expect(bell).to_have_attribute("data-unread", "1", timeout=15000)
        assert page.evaluate("performance.timeOrigin") == loaded  # the same page, not reloaded
        bell.locator("button").first.click()
        link = bell.get_by_role("link", name="Invoice #7 was paid")
        expect(link).to_be_visible(timeout=10000)
        # A /path resolves against the page (the app), not against tidings' origin.
        expect(link).to_have_attribute("href", f"{site_url}/invoices/7")
        # Under the site's strict CSP (a nonce, no 'unsafe-inline'): the bell ran, nothing refused.
        header = page.evaluate("fetch('/').then((r) => r.headers.get('content-security-policy'))")
        assert "'nonce-" in header
        assert "unsafe-inline" not in header
        assert "style-src 'self'" in header
        # The bell keeps its look without inline style: its badge is the palette's red.
        expect(bell.locator(".badge")).to_have_css("background-color", "rgb(220, 38, 38)")
        assert refused == []
    finally:
        context.close()
