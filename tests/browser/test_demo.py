"""The demo page (`tidings serve --demo`) in Chromium: its form publishes what the bell shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import (
    TIMEOUT_MS,
    expect_accessible,
    expect_badge,
    new_page,
    open_bell,
    open_demo,
    page_now,
    require_axe,
    wait_arrival,
)
from tests.conftest import ServerFactory
from tests.support import Server


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    return make_server("--demo", TIDINGS_HEARTBEAT="1")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 900, "height": 900})
    yield new_page(context)
    context.close()


def listed(page: Page) -> list[dict[str, Any]]:
    """The logged-in user's notifications, as the server lists them."""
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await fetch('/notifications', {credentials: 'include'})).json()"
    )
    return found


def test_the_form_sends_category_actor_action_and_group_to_the_bell(
    page: Page, server: Server
) -> None:
    open_demo(page, server, "alice")
    form = page.locator("#send")
    form.get_by_label("to").select_option("alice")
    form.get_by_label("message").fill("Bob paid invoice #7")
    form.get_by_label("category (a tab of the bell)").select_option("billing")
    form.get_by_label("name").fill("Bob")
    form.get_by_label("avatar").select_option("bob")
    form.get_by_label("label").fill("Open invoice")
    form.get_by_label("URL").fill("/invoices/7")
    form.get_by_label("group").fill("invoice-7")
    form.get_by_role("button", name="Send").click()
    expect(page.locator("#sent")).to_have_text("sent to alice")

    wait_arrival(page, "Bob paid invoice #7")
    expect_badge(page, 1)
    [sent] = listed(page)
    assert sent["category"] == "billing"
    assert sent["actor"] == {"name": "Bob", "avatar_url": "/demo/avatars/bob.svg"}
    assert sent["actions"] == [{"label": "Open invoice", "url": "/invoices/7"}]
    assert sent["group"] == "invoice-7"
    avatar = page.request.get(f"{server.url}/demo/avatars/bob.svg")
    assert avatar.ok
    assert avatar.headers["content-type"] == "image/svg+xml"
    unknown = page.request.get(f"{server.url}/demo/avatars/eve.svg")
    assert (unknown.status, unknown.json()["error"]) == (422, "invalid_request"), unknown.text()
    open_bell(page)
    expect(page.locator("tidings-bell .item .message")).to_have_text(["Bob paid invoice #7"])


def test_a_scheduled_send_arrives_in_the_open_bell_when_due(page: Page, server: Server) -> None:
    open_demo(page, server, "alice")
    form = page.locator("#send")
    form.get_by_label("message").fill("Stand-up in 5 minutes")
    form.get_by_label("deliver in").fill("4")
    sent = page_now(page)
    form.get_by_role("button", name="Send").click()
    expect(page.locator("#sent")).to_contain_text("scheduled for alice at ")
    assert listed(page) == []  # kept by the server, not listed before it is due

    arrival = wait_arrival(page, "Stand-up in 5 minutes")
    assert arrival["at"] - sent >= 4000
    expect_badge(page, 1)
    assert [n["message"] for n in listed(page)] == ["Stand-up in 5 minutes"]


def test_the_language_switch_turns_the_bell_german_and_is_remembered(
    page: Page, server: Server
) -> None:
    open_demo(page, server, "alice")
    bell = page.locator("tidings-bell")
    expect(bell).to_have_attribute("data-locale", "en")
    open_bell(page)
    expect(page.locator("tidings-bell h2")).to_have_text("Notifications")
    page.get_by_label("Bell language").select_option("de")
    expect(bell).to_have_attribute("data-locale", "de")
    expect(page.locator("tidings-bell h2")).to_have_text("Benachrichtigungen")
    expect(page.locator("html")).to_have_attribute("lang", "en")  # the page stays English
    page.reload()
    expect(bell).to_have_attribute("data-locale", "de", timeout=TIMEOUT_MS)
    expect(page.get_by_label("Bell language")).to_have_value("de")


def test_the_form_says_why_a_send_was_refused(page: Page, server: Server) -> None:
    open_demo(page, server, "alice")
    form = page.locator("#send")
    form.get_by_label("label").fill("Open")
    form.get_by_label("URL").fill("javascript:alert(1)")
    form.get_by_role("button", name="Send").click()
    expect(page.locator("#sent")).to_contain_text(
        "sending failed (actions[0].url: ", timeout=TIMEOUT_MS
    )
    assert listed(page) == []


def test_the_demo_page_has_no_axe_violations_logged_out_and_in(page: Page, server: Server) -> None:
    require_axe()
    page.goto(f"{server.url}/")
    expect(page.locator("#who")).to_have_text("not logged in")
    expect_accessible(page, "demo page, logged out")
    open_demo(page, server, "bob")
    page.locator("#send").get_by_role("button", name="Send").click()
    expect(page.locator("#sent")).to_have_text("sent to alice")
    expect_accessible(page, "demo page, logged in, after a send")
