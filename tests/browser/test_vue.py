"""The Vue 2.7 and Vue 3 bells (one component source) on /demo/vue: arrival and keyboard."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import new_page, open_demo, page_now, wait_arrival
from tests.conftest import ServerFactory

APPS = {"2.7": "#vue2-app", "3": "#vue3-app"}


def focus_by_tab(page: Page, selector: str) -> None:
    """Press Tab until `selector` has the focus, as a keyboard user would."""
    target = page.locator(selector)
    for _ in range(12):
        page.keyboard.press("Tab")
        if target.evaluate("el => document.activeElement === el"):
            return
    raise AssertionError(f"Tab never reached {selector}")


@pytest.mark.parametrize("version", list(APPS))
def test_vue_bell_shows_arrivals_and_works_by_keyboard(
    browser: Browser, make_server: ServerFactory, version: str
) -> None:
    app = APPS[version]
    server = make_server("--demo", TIDINGS_HEARTBEAT="1")
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    page.goto(f"{server.url}/demo/vue")
    expect(page.locator(f"{app} h2")).to_contain_text(f"Vue {version}")
    root = page.locator(f"{app} .tidings-vue")
    expect(root).to_have_attribute("data-connection", "open", timeout=15_000)
    expect(root).to_have_attribute("data-status", "ready")

    sent = page_now(page)
    server.publish("alice", "older")
    server.publish("alice", "newer")
    assert wait_arrival(page, "older")["at"] - sent < 1000
    badge = root.locator(".notification-badge")
    expect(badge).to_have_text("2")
    # Both arrived together: one announcement for the two (the last alone would hide the first).
    expect(root.locator("[role=status]")).to_have_text("2 new notifications")
    expect(page.locator("#log")).to_contain_text(f"Vue {version}")

    button = root.locator(".bell-button")
    focus_by_tab(page, f"{app} .bell-button")
    expect(button).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    rows = root.locator("li.notification-item")
    expect(rows.nth(0)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(rows.nth(1)).to_be_focused()
    expect(rows.nth(1).locator(".notification-message")).to_have_text("older")
    page.keyboard.press("Tab")
    expect(rows.nth(1).locator(".mark-read-button")).to_be_focused()
    expect(badge).to_have_count(0)  # opening the bell made both seen
    page.keyboard.press("Enter")
    expect(root).to_have_attribute("data-unread", "1")
    expect(rows.nth(1)).to_be_focused()
    page.keyboard.press("Escape")
    expect(root.locator(".notification-dropdown")).to_have_count(0)
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()
