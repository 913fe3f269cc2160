"""The Vue 2.7 and Vue 3 bells (one component source) on /demo/vue: arrival and keyboard."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.helpers import choose, new_page, open_demo, page_now, wait_arrival
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
    # Both at once: one after the other, a loaded machine once put the second more than the
    # announcer's quiet window (300 ms) after the first, and they were announced apart.
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda text: server.publish("alice", text), ["older", "newer"]))
    assert [a.status_code for a in answers] == [201, 201]
    # Which one the store took first is the race's: the list shows the newest first, so the
    # second row is the one with the lower id.
    first = min((a.json() for a in answers), key=lambda n: n["id"])["message"]
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
    expect(rows.nth(1).locator(".notification-message")).to_have_text(first)
    page.keyboard.press("Tab")
    more = rows.nth(1).locator(".tb-menu-button")
    expect(more).to_be_focused()
    expect(badge).to_have_count(0)  # opening the bell made both seen
    page.keyboard.press("Enter")  # the row's menu, on Mark read
    expect(rows.nth(1).get_by_role("menuitem").first).to_be_focused()
    page.keyboard.press("Enter")
    expect(root).to_have_attribute("data-unread", "1")
    expect(more).to_be_focused()
    page.keyboard.press("Escape")
    expect(root.locator(".notification-dropdown")).to_have_count(0)
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()


# What each Vue bell says on /demo/vue, the Vue 3 one in German (its section gets lang="de").
SAYS = {
    "#vue2-app": {
        "bell": "Notifications, 3 new",
        "tab": "Mentions 2 unread",
        "all": "All 3 unread",
        "summary": "2 new notifications",
        "show": "Show 1 more",
        "hide": "Show less",
    },
    "#vue3-app": {
        "bell": "Benachrichtigungen, 3 neu",
        "tab": "Mentions 2 ungelesen",
        "all": "Alle 3 ungelesen",
        "summary": "2 neue Benachrichtigungen",
        "show": "1 weitere anzeigen",
        "hide": "Weniger anzeigen",
    },
}


def test_vue_bells_show_the_inbox_like_the_element_and_german_from_lang(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", TIDINGS_HEARTBEAT="1")
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")

    def german_vue3(route: Route) -> None:
        # The bell picks the nearest `lang` when it mounts.
        html = route.fetch().text()
        html = html.replace('<section id="vue3-app">', '<section id="vue3-app" lang="de">')
        route.fulfill(body=html, content_type="text/html; charset=utf-8")

    page.route("**/demo/vue", german_vue3)
    for who in ("Ada Lovelace", "Bob Stone"):
        server.publish(
            "alice",
            f"{who.split()[0]} commented on invoice 7",
            category="mentions",
            group="invoice-7",
            actor={"name": who},
            actions=[{"label": "Reply", "url": "/demo/vue#reply"}],
        )
    server.publish("alice", "Paid", category="billing")
    page.goto(f"{server.url}/demo/vue")
    for app, says in SAYS.items():
        root = page.locator(f"{app} .tidings-vue")
        expect(root).to_have_attribute("data-status", "ready", timeout=15_000)
        expect(root.locator(".bell-button")).to_have_attribute("aria-label", says["bell"])
    expect(page.locator("#vue3-app .tidings-vue")).to_have_attribute("data-locale", "de")

    for app, says in SAYS.items():
        root = page.locator(f"{app} .tidings-vue")
        root.locator(".bell-button").click()
        expect(root.locator(".notification-badge")).to_have_count(0)  # seen on open
        tabs = root.locator(".tab-button")
        expect(tabs).to_have_count(3)
        expect(tabs.nth(2)).to_have_accessible_name(says["tab"])
        # Vue 3 read "All 6unread": every tab's name has its spaces.
        expect(tabs.nth(0)).to_have_accessible_name(says["all"])
        group = root.locator("li.notification-item.group")
        expect(group.locator(".notification-summary")).to_have_text(says["summary"])
        expect(group.locator(".notification-avatar")).to_have_text("BS")
        expect(group.locator(".notification-actor")).to_have_text("Bob Stone")
        expect(group.locator(".action-button")).to_have_text("Reply")
        toggle = group.locator(".group-toggle")
        expect(toggle).to_have_text(says["show"])
        toggle.click()
        expect(toggle).to_have_text(says["hide"])
        expect(root.locator("li.member .notification-avatar")).to_have_text("AL")
        tabs.nth(1).click()  # billing
        expect(root.locator("li.notification-item .notification-message")).to_have_text(["Paid"])
        root.locator(".bell-button").click()  # closed again

    german = page.locator("#vue3-app .tidings-vue")
    german.locator(".bell-button").click()
    expect(german.locator("time").first).to_have_text(re.compile(r"^(jetzt|vor \d+ Sekunden?)$"))
    choose(german.locator("li.notification-item").first, "archive")
    expect(german.locator(".no-notifications")).to_contain_text("Alles erledigt")
    english = page.locator("#vue2-app .tidings-vue")
    expect(english).to_have_attribute("data-unread", "2")  # it follows, by the event
    german.locator(".archive-view-button").click()
    expect(german.locator(".dropdown-title")).to_have_text("Archivierte Benachrichtigungen")
    expect(german.locator("li.notification-item .notification-message")).to_have_text(["Paid"])
    choose(german.locator("li.notification-item").first, "unarchive")
    empty = german.locator(".no-notifications")
    expect(empty).to_have_text("Keine archivierten Benachrichtigungen")
    expect(english).to_have_attribute("data-unread", "3")
