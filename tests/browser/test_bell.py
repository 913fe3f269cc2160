"""The bell in real Chromium against a real server: what a user sees, from the issue's list."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.helpers import (
    TIMEOUT_MS,
    arrivals,
    choose,
    expect_badge,
    expect_unread,
    messages,
    new_page,
    open_bell,
    open_demo,
    page_now,
    unread,
    wait_arrival,
    wait_live,
)
from tests.conftest import ServerFactory
from tests.support import SENTINEL, make_token, run_cli

HEARTBEAT = {"TIDINGS_HEARTBEAT": "1"}


def test_a_notification_shows_within_a_second_for_its_user_only(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    alice = new_page(browser.new_context())
    bob = new_page(browser.new_context())
    open_demo(alice, server, "alice")
    open_demo(bob, server, "bob")

    sent = page_now(alice)
    assert server.publish("alice", "Your report is ready").status_code == 201
    arrival = wait_arrival(alice, "Your report is ready")

    assert arrival["at"] - sent < 1000
    expect_badge(alice, 1)
    live = alice.locator("tidings-bell [role=status]")
    expect(live).to_have_text("New notification: Your report is ready")
    # Bob's own sentinel: had alice's notification reached him, it would have come first.
    assert server.publish("bob", SENTINEL).status_code == 201
    wait_arrival(bob, SENTINEL)
    assert [a["message"] for a in bob.evaluate("window.__arrivals")] == [SENTINEL]
    expect_badge(bob, 1)
    assert unread(bob) == 1


# Waits on timers more than it computes: in the lane beside the parallel pass (scripts/test).
@pytest.mark.serial
def test_what_was_published_while_the_server_was_down_shows_once_without_a_reload(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", thread=False, **HEARTBEAT)  # killed below
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    server.publish("alice", "before")
    expect_badge(page, 1)
    page.evaluate("window.__same_page = true")

    server.close()  # killed, no goodbye
    sent = run_cli(server.env, "send", "alice", "while you were away")
    assert sent.returncode == 0, sent.stderr
    expect(page.locator("tidings-bell")).not_to_have_attribute(
        "data-connection", "open", timeout=TIMEOUT_MS
    )
    server.start("--demo")

    wait_arrival(page, "while you were away")
    expect_badge(page, 2)
    wait_live(page)
    # A late duplicate (replay + list reload) would come before the sentinel.
    assert server.publish("alice", SENTINEL).status_code == 201
    wait_arrival(page, SENTINEL)
    expect_badge(page, 3)
    open_bell(page)
    assert messages(page) == [SENTINEL, "while you were away", "before"]
    assert [a["message"] for a in page.evaluate("window.__arrivals")] == [
        "before",
        "while you were away",
        SENTINEL,
    ]
    assert page.evaluate("window.__same_page") is True


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """What a proxy answers while every node is away."""

    paths: list[str]

    def _answer(self) -> None:
        self.paths.append(self.path)
        body = json.dumps({"error": "unavailable", "detail": "deploying"}).encode()
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def unavailable_on(port: int) -> Iterator[list[str]]:
    paths: list[str] = []
    handler = type("Handler", (_Unavailable,), {"paths": paths})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield paths
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_the_page_recovers_by_itself_after_the_stream_answered_503(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")

    server.stop()
    with unavailable_on(server.port) as paths:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and paths.count("/notifications/unread-count") < 2:
            time.sleep(0.1)
        # The browser's EventSource gave up at the first 503; the client kept trying.
        streams = [p for p in paths if p.startswith("/notifications/stream")]
        assert len(streams) >= 2, paths
        expect(page.locator("tidings-bell")).to_have_attribute("data-connection", "reconnecting")
        open_bell(page)
        expect(page.locator("tidings-bell .banner")).to_have_text("Reconnecting…")
    server.start("--demo")

    expect(page.locator("tidings-bell[data-connection=open]")).to_be_attached(timeout=30_000)
    expect(page.locator("tidings-bell .banner")).to_be_hidden()
    server.publish("alice", "back again")
    wait_arrival(page, "back again")
    expect_badge(page, 1)


def test_mark_read_and_mark_all_read_survive_a_reload_and_spare_a_later_one(
    browser: Browser, make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    for text in ("one", "two", "three"):
        server.publish("alice", text)
    expect_badge(page, 3)

    open_bell(page)
    expect_badge(page, 0)  # opening the bell made them seen; they are still unread
    expect_unread(page, 3)
    choose(page.locator("tidings-bell .item[data-id='1']"), "markRead")
    expect_unread(page, 2)
    page.reload()
    wait_live(page)
    expect_unread(page, 2)
    expect_badge(page, 0)
    open_bell(page)
    expect(page.locator("tidings-bell .item.unread")).to_have_count(2)
    expect(page.locator("tidings-bell .item[data-id='1']")).not_to_have_class("item unread")

    # Stored, but the page has not seen it yet when the user clicks: its announcement goes to a
    # socket nobody listens on, so the live stream does not carry it.
    env = {**server.env, "TIDINGS_BUS_URL": f"local://{tmp_path / 'nobody.sock'}"}
    late = run_cli(env, "send", "alice", "arrived after the click")
    assert late.returncode == 0, late.stderr
    assert messages(page) == ["three", "two", "one"]
    page.locator("tidings-bell .mark-all").click()
    expect_unread(page, 1)  # the server's count: the late one is still unread

    page.reload()
    wait_live(page)
    expect_unread(page, 1)
    expect_badge(page, 1)  # and unseen: seen went up to what the bell had shown
    open_bell(page)
    assert messages(page) == ["arrived after the click", "three", "two", "one"]
    expect(page.locator("tidings-bell .item.unread")).to_have_count(1)
    expect(page.locator("tidings-bell .item.unread .message")).to_have_text(
        "arrived after the click"
    )


def test_keyboard_only_open_move_mark_read_escape(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    server.publish("alice", "older")
    server.publish("alice", "newer")
    expect_badge(page, 2)
    page.reload()
    wait_live(page)

    bell = page.locator("tidings-bell")
    button = page.locator("tidings-bell .bell")
    for _ in range(12):  # Tab through the page's controls before the bell
        page.keyboard.press("Tab")
        if bell.evaluate("el => el.shadowRoot.activeElement?.classList.contains('bell')"):
            break
    expect(button).to_be_focused()
    expect(button).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    expect(page.locator("tidings-bell .item").nth(0)).to_be_focused()
    page.keyboard.press("ArrowDown")
    second = page.locator("tidings-bell .item").nth(1)
    expect(second).to_be_focused()
    expect(second.locator(".message")).to_have_text("older")
    page.keyboard.press("Tab")
    more = second.locator(".tb-menu-button")
    expect(more).to_be_focused()
    page.keyboard.press("Enter")  # the row's menu, on its first item: Mark read
    expect(second.locator("[role=menuitem]").first).to_be_focused()
    page.keyboard.press("Enter")
    expect_unread(page, 1)
    expect(more).to_be_focused()  # the menu closed; the focus is back on its button
    page.keyboard.press("Escape")
    expect(page.locator("tidings-bell .panel")).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()
    assert bell.evaluate("el => document.activeElement === el")


def test_an_expired_token_is_refreshed_through_the_callback_and_push_goes_on(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    minted: list[str] = []

    def mint() -> str:
        # What a host app's token endpoint does with its JWT library.
        minted.append(make_token("alice", ttl=3600))
        return minted[-1]

    page.expose_function("mintToken", mint)
    short = make_token("alice", ttl=3)
    status = page.evaluate(
        """async (token) => {
            const bell = document.querySelector("tidings-bell");
            bell.getToken = () => window.mintToken();
            const r = await fetch("/notifications/session", {
              method: "POST", headers: {"content-type": "application/json"},
              body: JSON.stringify({token}),
            });
            bell.client.reconnect();
            return r.status;
        }""",
        short,
    )
    assert status == 200
    wait_live(page)
    streams = page.evaluate("window.__streams.length")

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not minted:
        page.wait_for_timeout(100)  # not time.sleep: Playwright runs `mint` while it waits
    assert minted, "the refresh callback was not called"
    # The bell then switches to a stream on the new credential. Until it has, the old stream is
    # still open and "live" says nothing about the new one: wait for the new stream's first ping
    # (the old one is closed before the new one opens), so the push below rides the refresh.
    page.wait_for_function("n => window.__streams.length > n", arg=streams, timeout=TIMEOUT_MS)
    pings = page.evaluate("window.__pings")
    page.wait_for_function("n => window.__pings > n", arg=pings, timeout=TIMEOUT_MS)
    wait_live(page)
    server.publish("alice", "still here")
    try:
        wait_arrival(page, "still here")
    except AssertionError as exc:
        seen = page.evaluate("({streams: window.__streams, connection: window.__connection})")
        raise AssertionError(f"{exc}; the page's streams and connection states: {seen}") from exc
    expect_badge(page, 1)


# --- the inbox: seen, tabs, actors, actions, groups, archive, locales ----------------------------


def items(page: Page) -> Locator:
    return page.locator("tidings-bell .item")


def test_the_badge_counts_unseen_and_opening_the_bell_makes_them_seen_in_every_tab(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    context = browser.new_context()
    first = new_page(context)
    open_demo(first, server, "alice")
    second = new_page(context)
    second.goto(f"{server.url}/")
    wait_live(second)
    server.publish("alice", "one")
    server.publish("alice", "two")
    for tab in (first, second):
        expect_badge(tab, 2)
    expect(second.locator("tidings-bell .bell")).to_have_attribute(
        "aria-label", "Notifications, 2 new"
    )

    first.bring_to_front()
    open_bell(first)
    for tab in (first, second):
        expect_badge(tab, 0)  # seen, in the other tab too, without a reload
        expect_unread(tab, 2)  # and still unread
    assert [n["seen_at"] is not None for n in server.listed("alice")] == [True, True]

    server.publish("alice", "three")
    for tab in (first, second):
        expect_badge(tab, 1)
    second.reload()
    wait_live(second)
    expect_badge(second, 1)  # the server's unseen count: "three" came after the bell was opened


def test_tabs_per_category_show_their_unread_counts_and_switch_the_list(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    server.publish("alice", "invoice due", category="billing")
    server.publish("alice", "card expires", category="billing")
    server.publish("alice", "Ada mentioned you", category="mentions")
    server.publish("alice", "no category")
    expect_unread(page, 4)
    open_bell(page)
    tabs = page.locator("tidings-bell .tab")
    expect(tabs).to_have_count(3)
    expect(tabs.nth(0)).to_have_accessible_name("All 4 unread")
    expect(tabs.nth(1)).to_have_accessible_name("Billing 2 unread")
    expect(tabs.nth(2)).to_have_accessible_name("Mentions 1 unread")
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")

    tabs.nth(1).click()
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(items(page).locator(".message")).to_have_text(["card expires", "invoice due"])
    # Read in this tab: its count drops, and All's with it.
    choose(items(page).first, "markRead")
    expect(tabs.nth(1)).to_have_accessible_name("Billing 1 unread")
    expect(tabs.nth(0)).to_have_accessible_name("All 3 unread")
    # An arrival of another category is counted on its tab, not listed in this one.
    server.publish("alice", "Bob mentioned you", category="mentions")
    expect(tabs.nth(2)).to_have_accessible_name("Mentions 2 unread")
    server.publish("alice", "refund sent", category="billing")
    expect(items(page).first.locator(".message")).to_have_text("refund sent")
    expect(items(page)).to_have_count(3)

    tabs.nth(2).click()
    expect(items(page).locator(".message")).to_have_text(["Bob mentioned you", "Ada mentioned you"])
    tabs.nth(0).click()
    expect(items(page)).to_have_count(6)

    # The same from the client's own calls: one page without touching the list, and the counts.
    found: dict[str, Any] = page.evaluate(
        """async () => {
            const client = document.querySelector("tidings-bell").client;
            const page = await client.list({ category: "billing", unread: true, limit: 1 });
            const counts = await client.counts();
            return { page, counts, kept: client.state.items.length };
        }"""
    )
    assert [n["message"] for n in found["page"]["items"]] == ["refund sent"]
    assert found["page"]["hasMore"] is True
    assert found["counts"]["unread"] == 5
    assert found["counts"]["categories"]["billing"]["unread"] == 2
    assert found["counts"]["categories"]["mentions"]["unread"] == 2
    assert found["kept"] == 6


def test_actor_avatar_or_initials_and_an_action_button_that_opens_its_url(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    server.publish(
        "alice",
        "Ada commented",
        actor={"name": "Ada Lovelace", "avatar_url": f"{server.url}/static/ada.png"},
        actions=[{"label": "Reply", "url": "/demo/vue#reply"}, {"label": "Mute", "url": "/mute"}],
    )
    server.publish("alice", "Grace approved", actor={"name": "Grace Hopper"})
    expect_unread(page, 2)
    open_bell(page)
    grace, ada = items(page).nth(0), items(page).nth(1)
    expect(grace.locator(".avatar")).to_have_text("GH")
    expect(grace.locator(".avatar img")).to_have_count(0)
    expect(grace.locator(".actor")).to_have_text("Grace Hopper")
    expect(ada.locator(".avatar img")).to_have_attribute("alt", "Ada Lovelace")
    expect(ada.locator(".avatar img")).to_have_attribute("src", f"{server.url}/static/ada.png")
    expect(ada.locator("button.action")).to_have_text(["Reply", "Mute"])
    # Unread is said with the row, not only shown by a button.
    expect(ada).to_contain_text("Unread: ")

    ada.locator("button.action", has_text="Reply").click()
    page.wait_for_url(f"{server.url}/demo/vue#reply", timeout=TIMEOUT_MS)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        by_message = {n["message"]: n for n in server.listed("alice")}
        if by_message["Ada commented"]["read_at"] is not None:
            break
        time.sleep(0.1)
    assert by_message["Ada commented"]["read_at"] is not None  # following an action reads it
    assert by_message["Grace approved"]["read_at"] is None


def test_a_folded_group_expands_and_collapses(browser: Browser, make_server: ServerFactory) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    for who in ("Ada", "Bob", "Cy"):
        server.publish("alice", f"{who} commented on invoice 7", group="invoice-7")
    server.publish("alice", "unrelated")
    expect_unread(page, 4)
    page.reload()  # the list now comes folded by the server (grouped=1, group_count)
    wait_live(page)
    open_bell(page)
    expect(items(page)).to_have_count(2)
    group = page.locator("tidings-bell .item.group")
    expect(group.locator(".summary")).to_have_text("3 new notifications")
    expect(group.locator(".message")).to_have_text("Cy commented on invoice 7")
    toggle = group.locator(".group-toggle")
    expect(toggle).to_have_text("Show 2 more")
    expect(toggle).to_have_attribute("aria-expanded", "false")

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("tidings-bell .item.member .message")).to_have_text(
        ["Bob commented on invoice 7", "Ada commented on invoice 7"]
    )
    expect(items(page)).to_have_count(4)
    # A new one of the group joins it live, and becomes its head.
    server.publish("alice", "Dee commented on invoice 7", group="invoice-7")
    expect(group.locator(".summary")).to_have_text("4 new notifications")
    expect(items(page)).to_have_count(5)
    page.locator("tidings-bell .item.group .group-toggle").click()
    expect(items(page)).to_have_count(2)
    expect(page.locator("tidings-bell .item.group .group-toggle")).to_have_text("Show 3 more")


def test_archive_a_row_see_it_in_the_archive_and_bring_it_back(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    context = browser.new_context()
    page = new_page(context)
    open_demo(page, server, "alice")
    other = new_page(context)
    other.goto(f"{server.url}/")
    wait_live(other)
    server.publish("alice", "keep me")
    server.publish("alice", "file me away")
    expect_unread(page, 2)
    page.bring_to_front()
    open_bell(page)
    choose(page.locator("tidings-bell .item", has_text="file me away"), "archive")
    expect(items(page).locator(".message")).to_have_text(["keep me"])
    for tab in (page, other):
        expect_unread(tab, 1)  # an archived one leaves the counts, in every tab
    open_bell(other)
    expect(items(other).locator(".message")).to_have_text(["keep me"])

    page.locator("tidings-bell .archive-view").click()
    expect(page.locator("tidings-bell")).to_have_attribute("data-view", "archive")
    expect(page.locator("tidings-bell h2")).to_have_text("Archived notifications")
    expect(items(page).locator(".message")).to_have_text(["file me away"])
    choose(items(page).first, "unarchive")
    expect(page.locator("tidings-bell .note")).to_have_text("No archived notifications")
    for tab in (page, other):
        expect_unread(tab, 2)
    expect(items(other).locator(".message")).to_have_text(["file me away", "keep me"])
    page.locator("tidings-bell .archive-view").click()
    expect(items(page).locator(".message")).to_have_text(["file me away", "keep me"])


def test_german_from_the_nearest_lang_relative_times_and_strings_with_n(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    # A second bell inside German content, with one string overridden by JSON: {n} is filled in.
    page.evaluate(
        """() => {
            const box = document.createElement("div");
            box.lang = "de";
            box.id = "de-box";
            const bell = document.createElement("tidings-bell");
            bell.setAttribute("strings", JSON.stringify({bellUnseen: "Posteingang: {n} neu"}));
            box.append(bell);
            document.body.append(box);
        }"""
    )
    de = "#de-box tidings-bell"
    wait_live(page, de)
    expect(page.locator(de)).to_have_attribute("data-locale", "de")
    server.publish("alice", "Bericht fertig")
    expect(page.locator(f"{de} .bell")).to_have_attribute("aria-label", "Posteingang: 1 neu")
    expect(page.locator(f"{de} [role=status]")).to_have_text(
        "Neue Benachrichtigung: Bericht fertig"
    )
    page.locator(f"{de} .bell").click()
    expect(page.locator(f"{de} h2")).to_have_text("Benachrichtigungen")
    row = page.locator(f"{de} .item").first
    expect(row).to_contain_text("Ungelesen: ")
    row.locator(".tb-menu-button").click()
    expect(row.locator("[role=menuitem]").first).to_have_text("Als gelesen markieren")
    expect(row.locator(".tb-menu-button")).to_have_accessible_name(
        "Weitere Aktionen: Bericht fertig"
    )
    page.keyboard.press("Escape")
    expect(row.locator("time")).to_have_text(re.compile(r"^(jetzt|vor \d+ Sekunden?)$"))
    expect(page.locator(f"{de} .mark-all")).to_have_text("Alle gelesen")

    # The `locale` attribute wins over `lang`, and switches the open bell at once.
    page.locator(de).evaluate("el => el.setAttribute('locale', 'en')")
    expect(page.locator(f"{de} h2")).to_have_text("Notifications")
    expect(row.locator("time")).to_have_text(re.compile(r"^(now|\d+ seconds? ago)$"))
    expect(row).to_contain_text("Unread: ")


def test_an_expired_notification_leaves_the_open_bell_and_its_counts(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    page.evaluate(
        """() => {
            window.__expired = [];
            document.querySelector("tidings-bell").client.subscribe((state, change) => {
                if (change.type === "expired") window.__expired.push(change.ids);
            });
        }"""
    )
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    server.publish("alice", "stays")
    short = server.publish("alice", "flash sale", category="deals", expires_at=soon).json()
    expect_badge(page, 2)
    open_bell(page)
    expect(items(page)).to_have_count(2)
    expect(page.locator("tidings-bell .tab")).to_have_count(2)  # All and deals

    # No reload, no click: the server's notifications-expired takes the row and its counts away.
    expect(items(page).locator(".message")).to_have_text(["stays"], timeout=TIMEOUT_MS)
    expect_unread(page, 1)
    expect(page.locator("tidings-bell .tab")).to_have_count(2)  # the tab stays, at 0
    expect(page.locator("tidings-bell .tab").nth(1)).to_have_accessible_name("Deals")
    assert page.evaluate("window.__expired") == [[short["id"]]]


def test_the_list_shows_the_newest_max_items_updates_rows_in_place_and_pages_with_load_more(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    page.locator("tidings-bell").evaluate("el => el.setAttribute('max-items', '3')")
    for i in range(1, 6):
        server.publish("alice", f"n{i}")
    expect_unread(page, 5)
    open_bell(page)
    expect(items(page).locator(".message")).to_have_text(["n5", "n4", "n3"])
    more = page.locator("tidings-bell .more")
    expect(more).to_be_visible()
    page.locator("tidings-bell").evaluate(
        "el => el.shadowRoot.querySelectorAll('.item').forEach((row) => { row.__kept = true; })"
    )

    server.publish("alice", "n6")
    expect(items(page).locator(".message")).to_have_text(["n6", "n5", "n4"])
    kept: list[bool] = page.locator("tidings-bell").evaluate(
        "el => [...el.shadowRoot.querySelectorAll('.item')].map((row) => row.__kept === true)"
    )
    assert kept == [False, True, True]  # the arrival added one row; the others are the same

    more.click()
    expect(items(page).locator(".message")).to_have_text(["n6", "n5", "n4", "n3", "n2", "n1"])
    expect(more).to_be_hidden()

    # Deleting from the keyboard gives the focus to the next row, not to the end of the list.
    items(page).nth(1).focus()
    page.keyboard.press("Tab")  # to its "⋯" button
    expect(items(page).nth(1).locator(".tb-menu-button")).to_be_focused()
    page.keyboard.press("ArrowUp")  # the menu, on its last item: Delete
    expect(items(page).nth(1).locator("[role=menuitem]").last).to_be_focused()
    page.keyboard.press("Enter")
    expect(items(page).locator(".message")).to_have_text(["n6", "n4", "n3", "n2", "n1"])
    expect(items(page).nth(1)).to_be_focused()
    expect(items(page).nth(1).locator(".message")).to_have_text("n4")

    # Escape closes and gives the focus back to the bell; Tab past the last control closes too.
    page.keyboard.press("Escape")
    expect(page.locator("tidings-bell .panel")).to_be_hidden()
    expect(page.locator("tidings-bell .bell")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("tidings-bell .panel")).to_be_visible()
    page.locator("tidings-bell .foot button:visible").last.focus()
    page.keyboard.press("Tab")
    expect(page.locator("tidings-bell .panel")).to_be_hidden()


def test_preferences_from_the_client_mute_a_category_and_a_bad_one_rejects_and_is_emitted(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
    page = new_page(browser.new_context())
    open_demo(page, server, "alice")
    outcome: dict[str, Any] = page.evaluate(
        """async () => {
            const client = document.querySelector("tidings-bell").client;
            const emitted = [];
            client.subscribe((state, change) => {
                if (change.type === "error") emitted.push([change.action, change.error.status]);
            });
            const before = await client.preferences();
            const stored = await client.setPreferences({ muted_categories: ["news"] });
            let refused = null;
            try {
                await client.setPreferences({ muted_categories: [""] });
            } catch (error) {
                refused = [error.name, error.status, error.code, error.action];
            }
            return { before, stored, after: await client.preferences(), refused, emitted };
        }"""
    )
    assert outcome["before"] == {"muted_categories": [], "channels": {"push": True, "email": True}}
    assert outcome["stored"]["muted_categories"] == ["news"]
    assert outcome["after"] == outcome["stored"]
    assert outcome["refused"] == ["TidingsError", 422, "invalid_preferences", "setPreferences"]
    assert outcome["emitted"] == [["setPreferences", 422]]

    server.publish("alice", "muted news", category="news")
    server.publish("alice", SENTINEL)
    wait_arrival(page, SENTINEL)
    assert [a["message"] for a in arrivals(page)] == [SENTINEL]
