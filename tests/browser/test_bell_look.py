"""The bells' look and its defects (issue 21), in both bells: the phone sheet at 320 px, "Load
more" keeping the focus, the tabs' names, category labels, the empty state, long messages, and the
opt-in toasts. One server and one page per test, each looking at `<tidings-bell>` and the Vue 2
and Vue 3 bells where they differ in code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from tests.browser.helpers import (
    TIMEOUT_MS,
    expect_badge,
    has_focus,
    new_page,
    open_bell,
    open_demo,
    tab_to,
    wait_arrival,
)
from tests.conftest import ServerFactory
from tests.support import Server

BELL = "tidings-bell"
VUE = {"vue2": "#vue2-app .tidings-vue", "vue3": "#vue3-app .tidings-vue"}


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    return make_server("--demo", TIDINGS_HEARTBEAT="1")


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 320, "height": 640}, has_touch=True)
    yield new_page(context)
    context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 900, "height": 700})
    yield new_page(context)
    context.close()


def vue_root(page: Page, which: str) -> Locator:
    root = page.locator(VUE[which])
    expect(root).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
    return root


def on_screen(locator: Locator, width: int) -> None:
    """Each element of `locator` lies inside the viewport's width (not cut off at either side)."""
    for i in range(locator.count()):
        box = locator.nth(i).bounding_box()
        assert box is not None, locator.nth(i)
        assert box["x"] >= 0, (locator.nth(i), box)
        assert box["x"] + box["width"] <= width + 0.5, (locator.nth(i), box)


def test_at_320px_the_open_panel_is_a_full_width_sheet_with_every_control(
    phone: Page, server: Server
) -> None:
    """The audit: the panel's left edge was at -41 px (-15 px in Vue); title, "Mark all read", the
    first tab and the rows' text were cut off."""
    open_demo(phone, server, "alice")
    server.publish("alice", "Invoice #1042 is ready for you to pay", category="billing")
    server.publish("alice", "Carol commented on the Q3 roadmap", category="comments")
    expect_badge(phone, 2)

    def check(panel: Locator, title: Locator, controls: list[Locator]) -> None:
        box = panel.bounding_box()
        assert box is not None
        assert (box["x"], box["width"]) == (0, 320), box
        assert box["y"] == 0, box
        for control in [title, *controls]:
            expect(control.first).to_be_visible()
            on_screen(control, 320)

    phone.locator(f"{BELL} .bell").click()
    panel = phone.locator(f"{BELL} .panel")
    check(
        panel,
        phone.locator(f"{BELL} h2"),
        [
            phone.locator(f"{BELL} .mark-all"),
            phone.locator(f"{BELL} .tab"),
            phone.locator(f"{BELL} .item .message"),
            phone.locator(f"{BELL} .tb-menu-button"),
            phone.locator(f"{BELL} .archive-view"),
        ],
    )
    # The sheet covers the bell: it has its own close button.
    close = phone.locator(f"{BELL} .tb-close")
    expect(close).to_have_accessible_name("Close")
    close.tap()
    expect(panel).to_be_hidden()
    expect(phone.locator(f"{BELL} .bell")).to_be_focused()

    phone.goto(f"{server.url}/demo/vue")
    for which in VUE:
        root = vue_root(phone, which)
        root.locator(".bell-button").click()
        dropdown = root.locator(".notification-dropdown")
        check(
            dropdown,
            root.locator(".dropdown-title"),
            [
                root.locator(".mark-all-button"),
                root.locator(".tab-button"),
                root.locator("li.notification-item .notification-message"),
                root.locator(".tb-menu-button"),
            ],
        )
        root.locator(".tb-close").tap()
        expect(dropdown).to_have_count(0)


def paged(route: Route) -> None:
    """The demo page with a bell that loads two at a time and shows two before "Load more"."""
    html = route.fetch().text()
    html = html.replace(
        'bell.lang = $("#lang").value;',
        'bell.lang = $("#lang").value; bell.setAttribute("page-size", "2");'
        ' bell.setAttribute("max-items", "2");',
    )
    route.fulfill(body=html, content_type="text/html; charset=utf-8")


def test_load_more_keeps_the_focus_and_escape_still_closes(page: Page, server: Server) -> None:
    """The audit: "Load more" disabled itself while loading, the focus fell to <body> and Escape
    no longer closed the panel."""
    page.route(f"{server.url}/", paged)
    open_demo(page, server, "alice")
    for n in range(1, 6):
        server.publish("alice", f"note {n}")
    expect_badge(page, 5)
    page.reload()
    expect(page.locator(f"{BELL}[data-status=ready]")).to_be_attached(timeout=TIMEOUT_MS)
    button = page.locator(f"{BELL} .bell")
    tab_to(page, button)
    page.keyboard.press("Enter")
    rows = page.locator(f"{BELL} .item")
    expect(rows).to_have_count(2)
    more = page.locator(f"{BELL} .more")
    tab_to(page, more)
    page.keyboard.press("Enter")  # the server's next page
    expect(rows).to_have_count(4, timeout=TIMEOUT_MS)
    assert has_focus(page.locator(BELL))
    expect(more).to_be_focused()
    page.keyboard.press("Enter")
    expect(rows).to_have_count(5, timeout=TIMEOUT_MS)
    # Nothing more to load: the button goes, the focus to the last row, not to <body>.
    expect(more).to_be_hidden()
    expect(rows.nth(4)).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator(f"{BELL} .panel")).to_be_hidden()
    expect(button).to_be_focused()


def test_tabs_named_with_their_count_category_labels_and_the_empty_state(
    page: Page, server: Server
) -> None:
    """Vue 3 read "All 6unread"; category keys showed raw; the empty state said only "No
    notifications"."""
    open_demo(page, server, "alice")
    for category in ("billing", "billing", "pull_requests"):
        server.publish("alice", f"about {category}", category=category)
    expect_badge(page, 3)
    page.locator(BELL).evaluate(
        """(bell) => bell.setAttribute("category-labels",
             JSON.stringify({billing: {en: "Invoices", de: "Rechnungen"}}))"""
    )
    open_bell(page)
    tabs = page.locator(f"{BELL} [role=tab]")
    expect(tabs).to_have_count(3)
    for i, name in enumerate(["All 3 unread", "Invoices 2 unread", "Pull requests 1 unread"]):
        expect(tabs.nth(i)).to_have_accessible_name(name)
    # The count sits on the label's line, in the middle of the tab.
    for i in range(3):
        label = tabs.nth(i).locator(".label").bounding_box()
        count = tabs.nth(i).locator(".count").bounding_box()
        assert label is not None
        assert count is not None
        middle = (label["y"] + label["height"] / 2, count["y"] + count["height"] / 2)
        assert abs(middle[0] - middle[1]) <= 2, (i, label, count)
    page.get_by_label("Bell language").select_option("de")
    expect(tabs.nth(1)).to_have_accessible_name("Rechnungen 2 ungelesen")
    # The German header keeps its controls beside the title, on one line.
    title = page.locator(f"{BELL} h2").bounding_box()
    mark_all = page.locator(f"{BELL} .mark-all").bounding_box()
    assert title is not None
    assert mark_all is not None
    assert mark_all["y"] < title["y"] + title["height"], (title, mark_all)
    expect(page.locator(f"{BELL} h2")).to_have_text("Benachrichtigungen")

    page.goto(f"{server.url}/demo/vue")
    for which, names in {
        "vue2": ["All 3 unread", "billing 2 unread", "pull_requests 1 unread"],
        "vue3": ["All 3 unread", "billing 2 unread", "pull_requests 1 unread"],
    }.items():
        root = vue_root(page, which)
        root.locator(".bell-button").click()
        vue_tabs = root.get_by_role("tab")
        for i, name in enumerate(names):
            # Readable keys unless the page gives labels (the demo gives none).
            expect(vue_tabs.nth(i)).to_have_accessible_name(
                name.replace("billing", "Billing").replace("pull_requests", "Pull requests")
            )
        root.locator(".bell-button").click()

    assert page.context.browser is not None
    carol = new_page(page.context.browser.new_context())
    open_demo(carol, server, "carol")
    open_bell(carol)
    empty = carol.locator(f"{BELL} .note[data-note=empty]")
    expect(empty.locator("strong")).to_have_text("All caught up")
    expect(empty).to_contain_text("New notifications will show up here.")
    expect(empty.locator("svg")).to_be_visible()
    carol.context.close()


def test_a_long_message_is_clamped_with_a_way_to_read_it_all(page: Page, server: Server) -> None:
    long = "The quarterly report is ready. " * 12
    open_demo(page, server, "alice")
    server.publish("alice", long.strip(), link="https://example.com/report")
    server.publish("alice", "short one")
    expect_badge(page, 2)
    open_bell(page)
    rows = page.locator(f"{BELL} .item")
    message = rows.nth(1).locator(".message")
    short = rows.nth(0).locator(".message")
    line = short.bounding_box()
    clamped = message.bounding_box()
    assert line is not None
    assert clamped is not None
    assert clamped["height"] <= 3.5 * line["height"], (clamped, line)
    # The text column starts at the same x with or without an avatar.
    assert abs(line["x"] - clamped["x"]) < 0.5
    toggle = rows.nth(1).locator(".full-toggle")
    expect(toggle).to_have_text("Show all")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    tab_to(page, toggle)  # from the keyboard
    page.keyboard.press("Enter")
    expect(toggle).to_have_text("Show less")
    expect(toggle).to_be_focused()
    whole = message.bounding_box()
    assert whole is not None
    assert whole["height"] > clamped["height"] + line["height"]
    expect(rows.nth(0).locator(".full-toggle")).to_have_count(0)


def test_toasts_are_off_by_default_then_shown_once_dismissable_and_still(
    browser: Browser, server: Server
) -> None:
    context = browser.new_context(viewport={"width": 900, "height": 700}, reduced_motion="reduce")
    page = new_page(context)
    open_demo(page, server, "alice")
    toasts = page.locator(f"{BELL} .tb-toast")
    server.publish("alice", "no toast for me")
    wait_arrival(page, "no toast for me")
    live = page.locator(f"{BELL} [role=status], {BELL} [aria-live]")
    # Announced on its own (arrivals close together are said as one message).
    expect(live).to_have_text("New notification: no toast for me")
    expect(toasts).to_have_count(0)

    page.locator(BELL).evaluate("(bell) => bell.setAttribute('toasts', '')")
    server.publish("alice", "Deploy finished")
    wait_arrival(page, "Deploy finished")
    toast = toasts.filter(has_text="Deploy finished")
    expect(toast).to_be_visible()
    # Said once: by the bell's live region; the toast is no live region of its own.
    expect(live).to_have_count(1)
    expect(live).to_have_text("New notification: Deploy finished")
    assert toast.evaluate("(el) => !el.closest('[aria-live], [role=status], [role=alert]')")
    # prefers-reduced-motion: no animation.
    assert toast.evaluate("(el) => getComputedStyle(el).animationName") == "none"
    dismiss = toast.locator(".tb-toast-dismiss")
    expect(dismiss).to_have_accessible_name("Dismiss")
    tab_to(page, dismiss)
    page.keyboard.press("Enter")
    expect(toasts).to_have_count(0)
    expect(page.locator(f"{BELL} .bell")).to_be_focused()

    # A toast opens the panel on its notification; an open panel gets no toast.
    server.publish("alice", "Invoice paid")
    wait_arrival(page, "Invoice paid")
    toasts.filter(has_text="Invoice paid").locator(".tb-toast-open").click()
    expect(page.locator(f"{BELL} .panel")).to_be_visible()
    expect(toasts).to_have_count(0)
    expect(page.locator(f"{BELL} .item", has_text="Invoice paid")).to_be_focused()
    server.publish("alice", "while open")
    wait_arrival(page, "while open")
    expect(toasts).to_have_count(0)
    context.close()


def test_the_vue_bells_take_the_theme_and_toasts(page: Page, server: Server) -> None:
    """One palette: the Vue bell has the dark colours and a `theme` like the element."""

    def themed(route: Route) -> None:
        html = route.fetch().text()
        html = html.replace(
            '<notification-bell @new-notification="arrived"></notification-bell>',
            '<notification-bell theme="dark" toasts @new-notification="arrived">'
            "</notification-bell>",
        )
        route.fulfill(body=html, content_type="text/html; charset=utf-8")

    page.route("**/demo/vue", themed)
    open_demo(page, server, "alice")
    page.goto(f"{server.url}/demo/vue")
    for which in VUE:
        expect(vue_root(page, which)).to_have_attribute("data-theme", "dark")
    server.publish("alice", "Vue toast")
    for which in VUE:
        root = vue_root(page, which)
        toast = root.locator(".tb-toast", has_text="Vue toast")
        expect(toast).to_be_visible(timeout=TIMEOUT_MS)
        # The dark palette (shared with the element), not the light one.
        expect(toast).to_have_css("background-color", "rgb(31, 41, 55)")
        root.locator(".bell-button").click()
        expect(root.locator(".notification-dropdown")).to_have_css(
            "background-color", "rgb(31, 41, 55)"
        )
        expect(toast).to_have_count(0)
        root.locator(".bell-button").click()


def test_snooze_from_the_keyboard_leaves_every_tab_and_unsnooze_brings_it_back(
    browser: Browser, server: Server
) -> None:
    """The row menu's snooze presets against the real routes: the row leaves this tab and the
    user's other tab (the event), the snoozed view lists it with its time, Unsnooze brings it
    back unread in both; all from the keyboard in the first tab."""
    context = browser.new_context(viewport={"width": 900, "height": 700})
    page = new_page(context)
    open_demo(page, server, "alice")
    other = new_page(context)
    other.goto(f"{server.url}/")
    expect(other.locator(f"{BELL}[data-status=ready]")).to_be_attached(timeout=TIMEOUT_MS)
    for text in ("keep me", "later please"):
        server.publish("alice", text)
    expect_badge(page, 2)
    expect_badge(other, 2)
    button = page.locator(f"{BELL} .bell")
    tab_to(page, button)
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowDown")  # "later please", the newest
    later = page.locator(f"{BELL} .item", has_text="later please")
    expect(later).to_be_focused()
    tab_to(page, later.locator(".tb-menu-button"))
    page.keyboard.press("Enter")
    item = later.get_by_role("menuitem", name=re.compile("^Snooze until tomorrow, 9:00"))
    for _ in range(4):
        page.keyboard.press("ArrowDown")
        if item.evaluate("(el) => el.getRootNode().activeElement === el"):
            break
    expect(item).to_be_focused()
    page.keyboard.press("Enter")
    expect(later).to_have_count(0)
    keep = page.locator(f"{BELL} .item", has_text="keep me")
    expect(keep).to_be_focused()  # the neighbour
    expect(page.locator(BELL)).to_have_attribute("data-unread", "1")
    # The other tab, by the event: gone there too, and not counted.
    expect(other.locator(BELL)).to_have_attribute("data-unread", "1", timeout=TIMEOUT_MS)
    other.locator(f"{BELL} .bell").click()
    expect(other.locator(f"{BELL} .item .message")).to_have_text(["keep me"])

    snoozed_view = page.locator(f"{BELL} .snoozed-view")
    tab_to(page, snoozed_view)
    page.keyboard.press("Enter")
    expect(page.locator(BELL)).to_have_attribute("data-view", "snoozed")
    expect(page.locator(f"{BELL} h2")).to_have_text("Snoozed notifications")
    asleep = page.locator(f"{BELL} .item", has_text="later please")
    expect(asleep).to_have_count(1, timeout=TIMEOUT_MS)
    expect(asleep.locator(".tb-snoozed")).to_have_text(re.compile(r"^Snoozed until \w+ 9:00"))
    tab_to(page, asleep.locator(".tb-menu-button"), key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(asleep.get_by_role("menuitem")).to_have_text(["Unsnooze", "Delete"])
    page.keyboard.press("Enter")  # Unsnooze
    expect(asleep).to_have_count(0)
    expect(page.locator(f"{BELL} .note[data-note=empty]")).to_have_text("No snoozed notifications")
    # Back, unread, in both tabs.
    expect(page.locator(BELL)).to_have_attribute("data-unread", "2", timeout=TIMEOUT_MS)
    expect(other.locator(f"{BELL} .item .message")).to_have_text(
        ["later please", "keep me"], timeout=TIMEOUT_MS
    )
    expect(other.locator(f"{BELL} .item", has_text="later please")).to_have_class(
        re.compile(r"\bunread\b")
    )
    tab_to(page, snoozed_view)
    page.keyboard.press("Enter")
    expect(page.locator(f"{BELL} .item .message")).to_have_text(
        ["later please", "keep me"], timeout=TIMEOUT_MS
    )
    context.close()
