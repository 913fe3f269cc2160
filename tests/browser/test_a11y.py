"""axe-core (from npm) in Chromium against every state of the bells: 0 violations of WCAG 2.0/2.1
A and AA and of axe's best practices, on the whole demo page, in light and dark.

Each state is reached the way a user gets there (a real server, a refused request, the browser
going offline); a state shows before axe runs, so a check never passes on a closed panel.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.helpers import (
    TIMEOUT_MS,
    choose,
    expect_accessible,
    expect_badge,
    expect_unread,
    new_page,
    open_bell,
    open_demo,
    require_axe,
    wait_live,
)
from tests.browser.test_bell import unavailable_on
from tests.conftest import ServerFactory
from tests.support import Server

SCHEMES = ["light", "dark"]


@pytest.fixture(autouse=True)
def _axe() -> None:
    require_axe()


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    return make_server("--demo", TIDINGS_HEARTBEAT="1")


@pytest.fixture(params=SCHEMES)
def page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A page in the system's light or dark scheme (prefers-color-scheme)."""
    context = browser.new_context(
        color_scheme=request.param, viewport={"width": 900, "height": 700}
    )
    yield new_page(context)
    context.close()


def read_and_unread(page: Page, server: Server) -> None:
    """Alice's open bell, one row read and two unread (so axe checks the unread rows' contrast)."""
    open_demo(page, server, "alice")
    for message in ("Your invoice #1042 is ready", "Bob commented on “Q3 roadmap”", "Deployed"):
        server.publish("alice", message, link="https://example.com/x")
    expect_badge(page, 3)
    open_bell(page)
    choose(page.locator("tidings-bell .item[data-id='1']"), "markRead")
    expect_unread(page, 2)


def test_closed_bell_with_unread_badge(page: Page, server: Server) -> None:
    open_demo(page, server, "alice")
    server.publish("alice", "unread")
    expect_badge(page, 1)
    expect(page.locator("tidings-bell .panel")).to_be_hidden()
    expect_accessible(page, "closed, 1 unread")


def test_open_bell_with_read_and_unread_rows(page: Page, server: Server) -> None:
    read_and_unread(page, server)
    expect(page.locator("tidings-bell .item.unread")).to_have_count(2)
    expect_accessible(page, "open, read and unread rows")


def test_open_bell_empty(page: Page, server: Server) -> None:
    open_demo(page, server, "carol")
    open_bell(page)
    expect(page.locator("tidings-bell .note[data-note=empty]")).to_be_visible()
    expect_accessible(page, "open, empty")


def test_open_bell_error_server_refusing(page: Page, server: Server) -> None:
    """The list could not load (every request answered 503): the error note, then the banner."""
    open_demo(page, server, "carol")
    open_bell(page)
    server.stop()
    with unavailable_on(server.port):
        page.locator("tidings-bell .refresh").click()
        error = page.locator("tidings-bell .note[data-note=error]")
        expect(error).to_be_visible(timeout=TIMEOUT_MS)
        expect_accessible(page, "open, error without rows")
    server.start("--demo")
    wait_live(page)
    server.publish("carol", "one row")
    expect(page.locator("tidings-bell .item")).to_have_count(1, timeout=TIMEOUT_MS)
    server.stop()
    with unavailable_on(server.port):
        page.locator("tidings-bell .refresh").click()
        expect(page.locator("tidings-bell .banner")).to_be_visible(timeout=TIMEOUT_MS)
        expect_accessible(page, "open, error banner over rows")


def test_open_bell_offline(page: Page, server: Server) -> None:
    """The browser is offline and the stream is gone (the client trusts onLine only then)."""
    read_and_unread(page, server)
    page.context.set_offline(True)
    server.stop()
    expect(page.locator("tidings-bell")).to_have_attribute(
        "data-connection", "offline", timeout=TIMEOUT_MS
    )
    expect(page.locator("tidings-bell .banner")).to_be_visible()
    expect_accessible(page, "open, offline")
    page.context.set_offline(False)


def test_vue_bells_closed_and_open(page: Page, server: Server) -> None:
    open_demo(page, server, "alice")
    server.publish("alice", "read one")
    server.publish("alice", "unread one")
    page.goto(f"{server.url}/demo/vue")
    for app in ("#vue2-app", "#vue3-app"):
        root = page.locator(f"{app} .tidings-vue")
        expect(root).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
        expect(root.locator(".notification-badge")).to_have_text("2")
    expect_accessible(page, "Vue, closed")
    page.locator("#vue2-app .bell-button").click()
    choose(page.locator("#vue2-app li.notification-item").last, "markRead")
    expect(page.locator("#vue2-app .tidings-vue")).to_have_attribute(
        "data-unread", "1", timeout=TIMEOUT_MS
    )
    expect_accessible(page, "Vue 2.7, open, read and unread rows")
    page.keyboard.press("Escape")
    page.locator("#vue3-app .bell-button").click()
    expect(page.locator("#vue3-app li.notification-item")).to_have_count(2)
    expect_accessible(page, "Vue 3, open, read and unread rows")
    row = page.locator("#vue3-app li.notification-item").first
    row.locator(".tb-menu-button").click()
    expect(row.get_by_role("menuitem").first).to_be_focused()
    expect_accessible(page, "Vue 3, open, a row's menu")


def test_row_menu_toast_and_snoozed_view(page: Page, server: Server) -> None:
    """The new parts: a row's open "⋯" menu, a toast over the page, the snoozed view."""
    read_and_unread(page, server)
    first = page.locator("tidings-bell .item").first
    first.locator(".tb-menu-button").click()
    expect(first.get_by_role("menu")).to_be_visible()
    expect_accessible(page, "open, a row's menu")
    page.keyboard.press("Escape")  # the menu
    page.keyboard.press("Escape")  # the panel
    expect(page.locator("tidings-bell .panel")).to_be_hidden()

    page.locator("tidings-bell").evaluate("(bell) => bell.setAttribute('toasts', '')")
    server.publish("alice", "A toast for you")
    toast = page.locator("tidings-bell .tb-toast")
    expect(toast).to_be_visible(timeout=TIMEOUT_MS)
    # Its slide-in ends first: axe measures the colours of what is drawn (mid-fade, they are pale).
    toast.evaluate("(el) => Promise.all(el.getAnimations().map((a) => a.finished))")
    expect_accessible(page, "closed, a toast")

    open_bell(page)
    choose(page.locator("tidings-bell .item", has_text="A toast for you"), "snooze:tomorrow")
    expect(page.locator("tidings-bell .item", has_text="A toast for you")).to_have_count(0)
    page.locator("tidings-bell .snoozed-view").click()
    expect(page.locator("tidings-bell .item")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.locator("tidings-bell .tb-snoozed")).to_have_text(re.compile("^Snoozed until"))
    expect_accessible(page, "open, the snoozed view")


# --- the inbox: tabs, avatars, actions, folded groups, the archive, German ----------------------


def inbox(server: Server, user: str = "alice") -> None:
    """A bit of everything the inbox shows: three categories, an actor with an avatar and one
    without (initials), two action buttons, three unread notifications in one group."""
    server.publish(
        user,
        "Invoice #7 is due on Friday",
        category="billing",
        actor={"name": "Bob Baker", "avatar_url": "/demo/avatars/bob.svg"},
        actions=[{"label": "Pay now", "url": "/pay/7"}, {"label": "View", "url": "/invoices/7"}],
    )
    for n in range(1, 4):
        server.publish(
            user,
            f"Carol commented on “Q3 roadmap” ({n})",
            category="comments",
            group="q3-roadmap",
            actor={"name": "Carol Chen"},
        )
    server.publish(user, "Deploy finished: tidings 0.2.0 is live", category="deploys")


def open_inbox(page: Page, server: Server) -> None:
    open_demo(page, server, "alice")
    inbox(server)
    expect_unread(page, 5)
    open_bell(page)
    expect(page.locator("tidings-bell .tab")).to_have_count(4)  # All + three categories


def test_tabs_avatars_actions_and_a_folded_group(page: Page, server: Server) -> None:
    open_inbox(page, server)
    expect(page.locator("tidings-bell .item.group")).to_have_count(1)
    expect(page.locator("tidings-bell .avatar img")).to_have_count(1)
    expect(page.locator("tidings-bell .avatar.initials")).to_have_count(1)
    expect(page.locator("tidings-bell .action")).to_have_count(2)
    expect_accessible(page, "open, tabs, avatars, actions, a folded group")

    page.locator("tidings-bell .group-toggle").click()
    expect(page.locator("tidings-bell .item.member")).to_have_count(2)
    expect_accessible(page, "open, a group unfolded")

    page.locator("tidings-bell .tab[data-category=billing]").click()
    expect(page.locator("tidings-bell .item")).to_have_count(1, timeout=TIMEOUT_MS)
    expect_accessible(page, "open, the billing tab")


def test_archive_view(page: Page, server: Server) -> None:
    open_inbox(page, server)
    choose(page.locator("tidings-bell .item", has_text="Deploy finished"), "archive")
    page.locator("tidings-bell .archive-view").click()
    expect(page.locator("tidings-bell")).to_have_attribute("data-view", "archive")
    expect(page.locator("tidings-bell .item .message")).to_have_text(
        ["Deploy finished: tidings 0.2.0 is live"], timeout=TIMEOUT_MS
    )
    expect_accessible(page, "open, the archive")
    choose(page.locator("tidings-bell .item").first, "unarchive")
    expect(page.locator("tidings-bell .note[data-note=empty]")).to_be_visible(timeout=TIMEOUT_MS)
    expect_accessible(page, "open, the archive empty")


def test_german(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/")
    page.get_by_label("Bell language").select_option("de")
    open_inbox(page, server)
    expect(page.locator("tidings-bell")).to_have_attribute("data-locale", "de")
    expect(page.locator("tidings-bell h2")).to_have_text("Benachrichtigungen")
    expect_accessible(page, "open, German, tabs and a group")
    # The longer German labels wrap inside the panel; none is cut off at its right edge.
    panel = page.locator("tidings-bell .panel").bounding_box()
    assert panel is not None
    for control in page.locator("tidings-bell .panel button:visible").all():
        box = control.bounding_box()
        assert box is not None
        label = control.text_content()
        assert box["x"] + box["width"] <= panel["x"] + panel["width"], f"{label!r} is cut off"


def test_vue_bells_with_tabs_a_group_avatars_actions_and_the_archive(
    page: Page, server: Server
) -> None:
    """The Vue 2.7 bell in English, the Vue 3 one in German (its section's `lang`)."""
    open_demo(page, server, "alice")
    inbox(server)
    expect_unread(page, 5)

    def german_vue3(route: Route) -> None:
        html = route.fetch().text()
        html = html.replace('<section id="vue3-app">', '<section id="vue3-app" lang="de">')
        route.fulfill(body=html, content_type="text/html; charset=utf-8")

    page.route("**/demo/vue", german_vue3)
    page.goto(f"{server.url}/demo/vue")
    for app, locale in (("#vue2-app", "en"), ("#vue3-app", "de")):
        root = page.locator(f"{app} .tidings-vue")
        expect(root).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
        expect(root).to_have_attribute("data-locale", locale)
        root.locator(".bell-button").click()
        expect(root.locator("[role=tab]")).to_have_count(4)
        root.locator(".group-toggle").click()
        expect(root.locator("li.member")).to_have_count(2)
        expect(root.locator(".notification-avatar img")).to_have_count(1)
        expect_accessible(page, f"Vue {app}, open, tabs, an unfolded group, avatars, actions")
        choose(root.locator("li.notification-item", has_text="Deploy finished"), "archive")
        root.locator(".archive-view-button").click()
        expect(root.locator("li.notification-item")).to_have_count(1, timeout=TIMEOUT_MS)
        expect_accessible(page, f"Vue {app}, the archive")
        choose(root.locator("li.notification-item").first, "unarchive")
        page.keyboard.press("Escape")
        expect(root.locator(".notification-dropdown")).to_have_count(0)


def test_vue_bells_empty_error_and_offline(page: Page, server: Server) -> None:
    open_demo(page, server, "carol")
    page.goto(f"{server.url}/demo/vue")
    for app in ("#vue2-app", "#vue3-app"):
        root = page.locator(f"{app} .tidings-vue")
        expect(root).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
    vue2 = page.locator("#vue2-app .tidings-vue")
    vue2.locator(".bell-button").click()
    expect(vue2.locator(".no-notifications")).to_be_visible()
    expect_accessible(page, "Vue 2.7, open, empty")

    server.stop()
    with unavailable_on(server.port):
        vue2.locator(".refresh-button").click()
        expect(vue2.locator(".notification-error")).to_be_visible(timeout=TIMEOUT_MS)
        expect_accessible(page, "Vue 2.7, open, error")
    page.context.set_offline(True)
    expect(vue2).to_have_attribute("data-connection", "offline", timeout=TIMEOUT_MS)
    expect(vue2.locator(".notification-banner")).to_be_visible()
    expect_accessible(page, "Vue 2.7, open, offline")
    page.context.set_offline(False)


def test_a_narrow_screen_shows_the_whole_panel(browser: Browser, server: Server) -> None:
    """320 CSS px (WCAG 1.4.10, reflow): the open panel, German, fits the screen, nothing cut."""
    context = browser.new_context(viewport={"width": 320, "height": 640})
    page = new_page(context)
    page.goto(f"{server.url}/")
    page.get_by_label("Bell language").select_option("de")
    open_inbox(page, server)
    expect_on_screen(page, "tidings-bell .panel", 320)
    expect_accessible(page, "open, German, 320 px wide")

    page.goto(f"{server.url}/demo/vue")
    for app in ("#vue2-app", "#vue3-app"):
        root = page.locator(f"{app} .tidings-vue")
        expect(root).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
        root.locator(".bell-button").click()
        expect_on_screen(page, f"{app} .notification-dropdown", 320)
        expect_accessible(page, f"Vue {app}, open, 320 px wide")
        page.keyboard.press("Escape")
    context.close()


def expect_on_screen(page: Page, panel_selector: str, width: int) -> None:
    """The panel is inside the viewport, and so is each of its buttons (none cut off)."""
    panel = page.locator(panel_selector).bounding_box()
    assert panel is not None
    assert panel["x"] >= 0
    assert panel["x"] + panel["width"] <= width
    for control in page.locator(f"{panel_selector} button:visible").all():
        box = control.bounding_box()
        assert box is not None
        label = control.text_content()
        assert box["x"] >= panel["x"], f"{label!r} is cut off"
        assert box["x"] + box["width"] <= panel["x"] + panel["width"], f"{label!r} is cut off"
