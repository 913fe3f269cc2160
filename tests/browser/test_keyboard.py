"""`<tidings-bell>` from the keyboard alone (no clicks once the page is open), and what a screen
reader is told: the audit's findings, each as the user meets it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from tests.browser.helpers import (
    TIMEOUT_MS,
    expect_badge,
    expect_unread,
    focus_on_page_outside,
    has_focus,
    messages,
    new_page,
    open_demo,
    tab_to,
    wait_arrival,
)
from tests.browser.proxy import PausingProxy
from tests.conftest import ServerFactory
from tests.support import Server

BELL = "tidings-bell"


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    return make_server("--demo", TIDINGS_HEARTBEAT="1")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 900, "height": 700})
    yield new_page(context)
    context.close()


def with_rows(page: Page, server: Server, *texts: str) -> None:
    """Alice's page with `texts` published oldest first, freshly loaded, nothing focused."""
    open_demo(page, server, "alice")
    for text in texts:
        server.publish("alice", text)
    expect_badge(page, len(texts))
    page.reload()
    expect(page.locator(f"{BELL}[data-status=ready]")).to_be_attached(timeout=TIMEOUT_MS)


def row(page: Page, text: str) -> Locator:
    return page.locator(f"{BELL} .item", has=page.locator(".message", has_text=text))


def choose_by_keyboard(page: Page, item_row: Locator, action: str) -> None:
    """From the focus on the row: Tab to its "⋯" button, open the menu with Enter, arrow down to
    the item `action` (its data-action) and press Enter."""
    tab_to(page, item_row.locator(".tb-menu-button"))
    page.keyboard.press("Enter")
    item = item_row.locator(f'[role=menuitem][data-action="{action}"]')
    for _ in range(8):
        if item.evaluate("(el) => el.getRootNode().activeElement === el"):
            page.keyboard.press("Enter")
            return
        page.keyboard.press("ArrowDown")
    raise AssertionError(f"the menu has no {action}")


def open_by_keyboard(page: Page, key: str = "Enter") -> Locator:
    button = page.locator(f"{BELL} .bell")
    tab_to(page, button)
    expect(button).to_have_attribute("aria-expanded", "false")
    page.keyboard.press(key)
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(page.locator(f"{BELL} .panel")).to_be_visible()
    return button


@pytest.mark.parametrize("key", ["Enter", " "], ids=["Enter", "Space"])
def test_enter_or_space_opens_and_closes_the_bell(page: Page, server: Server, key: str) -> None:
    with_rows(page, server, "one")
    button = open_by_keyboard(page, key)
    page.keyboard.press(key)
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(page.locator(f"{BELL} .panel")).to_be_hidden()
    expect(button).to_be_focused()


def test_arrow_keys_move_through_rows_and_the_row_menu_follows_the_aria_menu_pattern(
    page: Page, server: Server
) -> None:
    with_rows(page, server, "oldest", "middle", "newest")
    open_by_keyboard(page)
    page.keyboard.press("ArrowDown")
    expect(row(page, "newest")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(row(page, "middle")).to_be_focused()
    page.keyboard.press("End")
    expect(row(page, "oldest")).to_be_focused()
    page.keyboard.press("Home")
    expect(row(page, "newest")).to_be_focused()
    page.keyboard.press("ArrowDown")
    # One Tab stop per row: its "⋯" button, named for its row, a menu button.
    page.keyboard.press("Tab")
    middle = row(page, "middle")
    more = middle.locator(".tb-menu-button")
    expect(more).to_be_focused()
    expect(more).to_have_attribute("aria-haspopup", "menu")
    expect(more).to_have_attribute("aria-expanded", "false")
    expect(more).to_have_accessible_name("More actions: middle")
    menu = middle.get_by_role("menu")
    items = menu.get_by_role("menuitem")
    page.keyboard.press("Enter")  # opens, the first item focused
    expect(more).to_have_attribute("aria-expanded", "true")
    expect(items).to_have_text(
        [
            "Mark read",
            "Snooze for 1 hour",
            re.compile(r"^Snooze until tomorrow, 9:00"),
            "Snooze until next week",
            "Archive",
            "Delete",
        ]
    )
    expect(items.nth(0)).to_be_focused()
    page.keyboard.press("ArrowUp")  # wraps round
    expect(items.nth(5)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(items.nth(0)).to_be_focused()
    page.keyboard.press("End")
    expect(items.nth(5)).to_be_focused()
    page.keyboard.press("Home")
    expect(items.nth(0)).to_be_focused()
    page.keyboard.press("Escape")  # the menu closes, not the panel
    expect(menu).to_be_hidden()
    expect(more).to_be_focused()
    expect(page.locator(f"{BELL} .panel")).to_be_visible()
    page.keyboard.press("ArrowUp")  # opens on the last item
    expect(items.nth(5)).to_be_focused()
    page.keyboard.press("Tab")  # leaves the menu: closed, back on its button
    expect(menu).to_be_hidden()
    expect(more).to_be_focused()
    page.keyboard.press(" ")
    expect(items.nth(0)).to_be_focused()
    page.keyboard.press("Enter")  # Mark read
    expect_unread(page, 2)
    expect(middle).not_to_have_class(re.compile(r"\bunread\b"))
    expect(menu).to_be_hidden()
    expect(more).to_be_focused()


def test_deleting_from_the_keyboard_moves_the_focus_to_the_neighbouring_row(
    page: Page, server: Server
) -> None:
    """The audit: the focus went to the last row."""
    with_rows(page, server, "first", "second", "third", "fourth")
    open_by_keyboard(page)
    page.keyboard.press("ArrowDown")  # fourth
    page.keyboard.press("ArrowDown")  # third
    choose_by_keyboard(page, row(page, "third"), "delete")
    expect(row(page, "third")).to_have_count(0)
    assert messages(page) == ["fourth", "second", "first"]
    expect(row(page, "second")).to_be_focused()

    # The last row: its neighbour is the one above.
    page.keyboard.press("End")
    choose_by_keyboard(page, row(page, "first"), "delete")
    expect(row(page, "first")).to_have_count(0)
    expect(row(page, "second")).to_be_focused()


def bell_last(route: Route) -> None:
    """The demo page with the bell as its last control (Tab past it leaves the page)."""
    html = route.fetch().text()
    html = html.replace('<span id="bell-slot"></span>', "")
    html = html.replace("</main>", '</main>\n<footer><span id="bell-slot"></span></footer>')
    route.fulfill(body=html, content_type="text/html; charset=utf-8")


@pytest.mark.parametrize("last", [False, True], ids=["in-the-header", "last-on-the-page"])
def test_tab_past_the_last_control_never_leaves_the_panel_open_over_the_page(
    page: Page, server: Server, last: bool
) -> None:
    """The audit: Tab went on into the page with the panel still open over it. Last on the page,
    Tab goes out to the browser and wraps round to the page's first control."""
    if last:
        page.route(f"{server.url}/", bell_last)
    with_rows(page, server, "one", "two")
    if last:
        expect(page.locator(f"footer {BELL}")).to_be_attached()
    open_by_keyboard(page)
    bell = page.locator(BELL)
    panel = page.locator(f"{BELL} .panel")
    for _ in range(20):
        page.keyboard.press("Tab")
        if focus_on_page_outside(bell):
            # On the page: the panel has closed behind it.
            expect(panel).to_be_hidden()
            expect(page.locator(f"{BELL} .bell")).to_have_attribute("aria-expanded", "false")
            return
    # Or the focus stays inside the open panel (a focus trap); Escape still gets out.
    expect(panel).to_be_visible()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(page.locator(f"{BELL} .bell")).to_be_focused()


def test_escape_closes_and_gives_the_focus_back_to_the_bell_button(
    page: Page, server: Server
) -> None:
    with_rows(page, server, "one", "two")
    button = open_by_keyboard(page)
    panel = page.locator(f"{BELL} .panel")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")  # a row's button
    expect(row(page, "two").locator(".tb-menu-button")).to_be_focused()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(button).to_be_focused()
    # And from the panel's header controls.
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(panel).to_be_visible()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(button).to_be_focused()


def test_three_notifications_arriving_together_are_all_announced(
    browser: Browser, make_server: ServerFactory
) -> None:
    """The audit: all three went to the live region in one frame and only the last was read."""
    server = make_server("--demo", TIDINGS_HEARTBEAT="5")
    with PausingProxy(server.port) as proxy:
        page = new_page(browser.new_context())
        open_demo(page, server, "alice", via=proxy.url)
        proxy.pause()
        for text in ("one", "two", "three"):
            server.publish("alice", text)
        proxy.wait_held(b"event: new-notification", 3, timeout=TIMEOUT_MS / 1000)
        proxy.resume()  # one write: the three arrive together
        wait_arrival(page, "three")
        live = page.locator(f"{BELL} [role=status]")
        expect(live).to_have_text("3 new notifications")
        page.close()


def test_an_unread_row_says_unread_to_a_screen_reader_and_a_read_row_does_not(
    page: Page, server: Server
) -> None:
    """The audit: only the row's 'Mark read' button told them apart."""
    with_rows(page, server, "quarterly report", "weekly digest")
    open_by_keyboard(page)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    choose_by_keyboard(page, row(page, "quarterly report"), "markRead")
    expect_unread(page, 1)

    def spoken(text: str) -> str:
        """The row as the accessibility tree has it, without its buttons and menu."""
        tree = row(page, text).aria_snapshot()
        return "\n".join(
            line for line in tree.splitlines() if "- button" not in line and "menu" not in line
        )

    unread, read = spoken("weekly digest"), spoken("quarterly report")
    assert re.search(r"\bunread\b", unread, re.IGNORECASE), unread
    assert not re.search(r"\bunread\b", read, re.IGNORECASE), read


# --- the inbox's controls ----------------------------------------------------------------------


def with_inbox(page: Page, server: Server) -> None:
    """Alice's page with three categories, an action, and a group of three, freshly loaded."""
    open_demo(page, server, "alice")
    server.publish("alice", "Deploy finished", category="deploys")
    for n in range(1, 4):
        server.publish("alice", f"Carol replied ({n})", category="comments", group="thread")
    server.publish(
        "alice",
        "Invoice #7 is due",
        category="billing",
        actions=[{"label": "Pay now", "url": "/pay/7"}],
    )
    expect_unread(page, 5)
    page.reload()
    expect(page.locator(f"{BELL}[data-status=ready]")).to_be_attached(timeout=TIMEOUT_MS)


def test_arrow_keys_switch_tabs_as_the_aria_tabs_pattern_says(page: Page, server: Server) -> None:
    with_inbox(page, server)
    open_by_keyboard(page)
    tabs = page.locator(f"{BELL} [role=tab]")
    expect(tabs).to_have_count(4)  # All, billing, comments, deploys
    tab_to(page, tabs.nth(0))  # the selected tab is the one in the Tab order
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowRight")
    expect(tabs.nth(1)).to_be_focused()
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(page.locator(f"{BELL} .item .message")).to_have_text(["Invoice #7 is due"])
    page.keyboard.press("End")
    expect(tabs.nth(3)).to_be_focused()
    expect(page.locator(f"{BELL} .item .message")).to_have_text(["Deploy finished"])
    page.keyboard.press("ArrowRight")  # wraps round to All
    expect(tabs.nth(0)).to_be_focused()
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowLeft")
    expect(tabs.nth(3)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Home")
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    # Tab leaves the tablist for the list: one Tab stop for all the tabs.
    page.keyboard.press("Tab")
    assert not has_focus(tabs.nth(1))
    for i in (1, 2, 3):
        expect(tabs.nth(i)).to_have_attribute("tabindex", "-1")


def test_an_action_button_runs_from_the_keyboard(page: Page, server: Server) -> None:
    with_inbox(page, server)
    open_by_keyboard(page)
    tab_to(page, page.locator(f"{BELL} .action", has_text="Pay now"))
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/pay/7", timeout=TIMEOUT_MS)


def test_a_folded_group_unfolds_and_folds_from_the_keyboard(page: Page, server: Server) -> None:
    with_inbox(page, server)
    open_by_keyboard(page)
    toggle = page.locator(f"{BELL} .group-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator(f"{BELL} .item.member")).to_have_count(0)
    tab_to(page, toggle)
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator(f"{BELL} .item.member")).to_have_count(2)
    expect(toggle).to_be_focused()
    page.keyboard.press(" ")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator(f"{BELL} .item.member")).to_have_count(0)


def test_archive_and_unarchive_from_the_keyboard(page: Page, server: Server) -> None:
    with_rows(page, server, "first", "second", "third")
    open_by_keyboard(page)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # second
    choose_by_keyboard(page, row(page, "second"), "archive")
    expect(row(page, "second")).to_have_count(0)
    expect(row(page, "first")).to_be_focused()  # the neighbour, not the end of the list

    archive_view = page.locator(f"{BELL} .archive-view")
    tab_to(page, archive_view)
    page.keyboard.press("Enter")
    expect(page.locator(BELL)).to_have_attribute("data-view", "archive")
    expect(page.locator(f"{BELL} .item .message")).to_have_text(["second"], timeout=TIMEOUT_MS)
    expect(archive_view).to_be_focused()
    tab_to(page, row(page, "second").locator(".tb-menu-button"), key="Shift+Tab")  # back up
    page.keyboard.press("Enter")
    expect(row(page, "second").get_by_role("menuitem")).to_have_text(["Restore", "Delete"])
    page.keyboard.press("Enter")  # Restore
    expect(row(page, "second")).to_have_count(0)
    expect(page.locator(f"{BELL} .note[data-note=empty]")).to_be_visible()
    # No row left to go to: the focus is on the bell button, the panel still open.
    expect(page.locator(f"{BELL} .bell")).to_be_focused()
    expect(page.locator(f"{BELL} .panel")).to_be_visible()

    tab_to(page, archive_view)
    page.keyboard.press("Enter")
    expect(page.locator(BELL)).to_have_attribute("data-view", "inbox")
    expect(page.locator(f"{BELL} .item .message")).to_have_text(
        ["third", "second", "first"], timeout=TIMEOUT_MS
    )


@pytest.mark.parametrize("app", ["#vue2-app", "#vue3-app"])
def test_the_vue_bells_tabs_switch_with_arrow_keys(page: Page, server: Server, app: str) -> None:
    with_inbox(page, server)
    page.goto(f"{server.url}/demo/vue")
    root = page.locator(f"{app} .tidings-vue")
    expect(root).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
    tab_to(page, root.locator(".bell-button"))
    page.keyboard.press("Enter")
    tabs = root.locator("[role=tab]")
    expect(tabs).to_have_count(4)
    tab_to(page, tabs.nth(0))
    page.keyboard.press("ArrowLeft")  # wraps round to the last
    expect(tabs.nth(3)).to_be_focused()
    expect(tabs.nth(3)).to_have_attribute("aria-selected", "true")
    expect(root.locator("li.notification-item .notification-message")).to_have_text(
        ["Deploy finished"]
    )
    page.keyboard.press("Home")
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    expect(tabs.nth(0)).to_be_focused()


@pytest.mark.parametrize("app", ["#vue2-app", "#vue3-app"])
def test_the_vue_bells_delete_to_the_neighbour_tab_out_closes_and_unread_is_said(
    page: Page, server: Server, app: str
) -> None:
    with_rows(page, server, "first", "second", "third")
    page.goto(f"{server.url}/demo/vue")
    root = page.locator(f"{app} .tidings-vue")
    expect(root).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
    button = root.locator(".bell-button")
    tab_to(page, button)
    page.keyboard.press("Enter")
    rows = root.locator("li.notification-item")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Unread: third")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # second
    choose_by_keyboard(page, rows.nth(1), "delete")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_be_focused()
    expect(rows.nth(1).locator(".notification-message")).to_have_text("first")

    # The Vue 3 bell is the page's last control: Tab goes out to the browser and wraps round to
    # the page's first link, with the dropdown open over the page unless it closes.
    dropdown = root.locator(".notification-dropdown")
    for _ in range(20):
        page.keyboard.press("Tab")
        if focus_on_page_outside(root):
            expect(dropdown).to_have_count(0)
            expect(button).to_have_attribute("aria-expanded", "false")
            return
    raise AssertionError("Tab never reached the page outside the Vue bell")


FOCUS_RING = """() => {
    let el = document.activeElement;
    while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
    const style = getComputedStyle(el);
    return {
      name: `${el.tagName.toLowerCase()}.${el.className}`,
      outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 1,
      inside: el.getRootNode() !== document || el.closest(".tidings-vue") !== null,
    };
}"""


@pytest.mark.parametrize("where", ["element", "#vue2-app", "#vue3-app"])
def test_every_control_shows_where_the_focus_is(page: Page, server: Server, where: str) -> None:
    """WCAG 2.4.7: each control the keyboard reaches in the open panel draws a focus ring."""
    with_inbox(page, server)
    if where == "element":
        button = page.locator(f"{BELL} .bell")
    else:
        page.goto(f"{server.url}/demo/vue")
        root = page.locator(f"{where} .tidings-vue")
        expect(root).to_have_attribute("data-status", "ready", timeout=TIMEOUT_MS)
        button = root.locator(".bell-button")
    tab_to(page, button)
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowDown")  # a row, then Tab through everything after it
    seen = []
    for _ in range(40):
        focused = page.evaluate(FOCUS_RING)
        if not focused["inside"]:
            break
        seen.append(focused)
        page.keyboard.press("Tab")
    assert len(seen) > 5, seen
    assert [f["name"] for f in seen if not f["outline"]] == []
