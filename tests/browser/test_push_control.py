"""The bell's "Turn on desktop notifications" control in Chromium, on the demo page against a real
server: shown only when the server has a push key, reachable by keyboard, and what the user sees
when turning push on fails (this machine's Chromium has no push service to subscribe with) or
when notifications are blocked.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.helpers import (
    TIMEOUT_MS,
    expect_accessible,
    has_focus,
    new_page,
    open_bell,
    open_demo,
    require_axe,
)
from tests.conftest import ServerFactory
from tests.push.helpers import PUSH_ENV
from tests.support import Server

CONTROL = "Turn on desktop notifications"


@pytest.fixture
def push_server(make_server: ServerFactory) -> Server:
    return make_server("--demo", **PUSH_ENV)


def context_for(browser: Browser, server: Server, permission: str | None) -> BrowserContext:
    """A context where notifications are granted, denied (as the user's "Block" in the
    browser's prompt or site settings), or never asked (None)."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    if permission == "granted":
        context.grant_permissions(["notifications"], origin=server.url)
    elif permission == "denied":
        # Playwright grants only; the DevTools protocol sets any state.
        cdp = browser.new_browser_cdp_session()
        cdp.send(
            "Browser.setPermission",
            {
                "permission": {"name": "notifications"},
                "setting": "denied",
                "origin": server.url,
                "browserContextId": browser_context_id(context),
            },
        )
    return context


def browser_context_id(context: BrowserContext) -> str:
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    info = cdp.send("Target.getTargetInfo")
    page.close()
    return str(info["targetInfo"]["browserContextId"])


def decided(page: Page) -> None:
    """The sentinel for "no control": the bell's own check (pushState, then the key route) has
    run to the end, so a control it would show is drawn."""
    page.evaluate("document.querySelector('tidings-bell')._core._checkPush()")


def tab_to(page: Page, target: str) -> None:
    """Press Tab from the bell button until the focus is on the button named `target`."""
    button = page.locator("tidings-bell").get_by_role("button", name=target)
    for _ in range(30):
        if has_focus(button):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {target!r}")


def test_offline_chromium_shows_why_push_could_not_be_turned_on(
    browser: Browser, push_server: Server
) -> None:
    require_axe()
    context = context_for(browser, push_server, "granted")
    page = new_page(context)
    open_demo(page, push_server, "alice")
    page.locator("tidings-bell .bell").focus()
    page.keyboard.press("Enter")
    expect(page.locator("tidings-bell .panel")).to_be_visible()
    button = page.locator("tidings-bell").get_by_role("button", name=CONTROL)
    expect(button).to_be_visible()
    expect_accessible(page, "open bell with the push control")
    tab_to(page, CONTROL)
    page.keyboard.press("Enter")
    # No push service here: subscribe() rejects, and the bell says so (not the generic
    # "try again": trying again will not help in this browser).
    banner = page.locator("tidings-bell .banner")
    expect(banner).to_have_text(
        "Desktop notifications could not be turned on in this browser.", timeout=TIMEOUT_MS
    )
    # The control stays: another browser profile or a later try (the push service back) may work.
    expect(button).to_be_visible()
    expect_accessible(page, "open bell with the push failure")
    context.close()


# Waits on timers more than it computes: in the lane beside the parallel pass (scripts/test).
@pytest.mark.serial
def test_a_push_service_that_never_answers_is_given_up_on(
    browser: Browser, push_server: Server, tmp_path: Path
) -> None:
    """A regular (not incognito) profile: Chromium asks its push service, and on a machine that
    cannot reach it subscribe() stays pending (for minutes, checked on Chromium 156). The
    client's `timeout` (10 s on the demo page) bounds it: the bell says so, not nothing."""
    context = browser.browser_type.launch_persistent_context(
        tmp_path / "profile", executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.grant_permissions(["notifications"], origin=push_server.url)
    page = context.pages[0] if context.pages else context.new_page()
    open_demo(page, push_server, "alice")
    open_bell(page)
    button = page.locator("tidings-bell").get_by_role("button", name=CONTROL)
    started = time.monotonic()
    # Meanwhile the button says it is working on it (read in the click's own task, so a push
    # service that answers at once cannot race the check).
    said = button.evaluate("(el) => { el.click(); return el.textContent; }")
    assert said == "Turning on desktop notifications…"
    banner = page.locator("tidings-bell .banner")
    failed = "Desktop notifications could not be turned on in this browser."
    # A machine that reaches the push service subscribes: the control goes, no banner.
    expect(
        banner.filter(has_text=failed).or_(button.locator("xpath=self::*[@hidden]"))
    ).to_be_attached(timeout=TIMEOUT_MS)
    if banner.is_visible():
        expect(banner).to_have_text(failed)
        assert time.monotonic() - started < TIMEOUT_MS / 1000
    else:
        assert page.evaluate("document.querySelector('tidings-bell').client.pushState()") == "on"
    context.close()


def test_blocked_notifications_hide_the_control(browser: Browser, push_server: Server) -> None:
    context = context_for(browser, push_server, "denied")
    page = new_page(context)
    open_demo(page, push_server, "alice")
    assert page.evaluate("Notification.permission") == "denied"
    open_bell(page)
    assert page.evaluate("document.querySelector('tidings-bell').client.pushState()") == "denied"
    decided(page)
    expect(page.locator("tidings-bell .push")).to_be_hidden()
    context.close()


def test_blocking_in_the_prompt_says_where_to_unblock(
    browser: Browser, push_server: Server
) -> None:
    """Never asked: the control shows; the user blocks in the browser's prompt (headless Chromium
    answers the prompt with "denied"): the bell says where notifications are blocked, and the
    control goes, since the page cannot ask again."""
    context = context_for(browser, push_server, None)
    page = new_page(context)
    open_demo(page, push_server, "alice")
    open_bell(page)
    button = page.locator("tidings-bell").get_by_role("button", name=CONTROL)
    expect(button).to_be_visible()
    tab_to(page, CONTROL)
    page.keyboard.press("Enter")
    expect(page.locator("tidings-bell .banner")).to_have_text(
        "Desktop notifications are blocked in your browser settings.", timeout=TIMEOUT_MS
    )
    expect(button).to_be_hidden()
    # The keyboard's place is kept: the focus moved to the next control, not to the page.
    assert has_focus(page.locator("tidings-bell").get_by_role("button", name="Archived"))
    context.close()


def test_no_control_without_a_push_key(browser: Browser, make_server: ServerFactory) -> None:
    server = make_server("--demo")
    context = context_for(browser, server, "granted")
    page = new_page(context)
    open_demo(page, server, "alice")
    open_bell(page)
    # The sentinel: the key route answered 404 (what the bell asks before showing the control).
    key = page.evaluate("fetch('/notifications/push/key').then((r) => r.status)")
    assert key == 404
    assert page.evaluate("document.querySelector('tidings-bell').client.pushState()") == "off"
    decided(page)
    expect(page.locator("tidings-bell .push")).to_be_hidden()
    context.close()


@pytest.mark.parametrize("app", ["#vue2-app", "#vue3-app"])
def test_the_vue_bells_say_so_and_keep_the_focus_too(
    browser: Browser, push_server: Server, app: str
) -> None:
    context = context_for(browser, push_server, None)
    page = new_page(context)
    open_demo(page, push_server, "alice")
    page.goto(f"{push_server.url}/demo/vue")
    root = page.locator(f"{app} .tidings-vue")
    expect(root).to_have_attribute("data-status", "ready")
    root.locator(".bell-button").click()
    button = root.get_by_role("button", name=CONTROL)
    button.focus()
    page.keyboard.press("Enter")
    expect(root).to_contain_text("Desktop notifications are blocked in your browser settings.")
    expect(button).to_have_count(0)
    # Still open, the focus on the next control (not lost to the page, which closed the panel).
    expect(root.get_by_role("button", name="Archived")).to_be_focused()
    expect(root.locator(".bell-button")).to_have_attribute("aria-expanded", "true")
    context.close()
