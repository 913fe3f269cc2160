"""Four tabs of one user share one stream; read state follows across them; leadership moves."""

from __future__ import annotations

import time

from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import (
    TIMEOUT_MS,
    choose,
    expect_badge,
    new_page,
    open_bell,
    open_demo,
    page_now,
    wait_arrival,
    wait_live,
    wait_unread_at,
)
from tests.conftest import ServerFactory
from tests.support import Server


def streams_settle_at_one(server: Server) -> None:
    """Wait until one stream is open. That it stays one is checked after the next notification
    reached every tab: by then each tab has settled on the leader's stream."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while server.metric("tidings_streams_open") != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.metric("tidings_streams_open") == 1


def leader(pages: list[Page]) -> Page:
    roles = [p.locator("tidings-bell").get_attribute("data-role") for p in pages]
    assert sorted(r or "" for r in roles).count("leader") == 1, roles
    return pages[roles.index("leader")]


def test_four_tabs_one_stream_shared_reads_and_a_new_leader(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", TIDINGS_HEARTBEAT="1")
    context = browser.new_context()
    first = new_page(context)
    open_demo(first, server, "alice")
    tabs = [first]
    for _ in range(3):
        tab = new_page(context)
        tab.goto(f"{server.url}/")  # the demo remembers the user; the cookie is shared
        wait_live(tab)
        tabs.append(tab)
    streams_settle_at_one(server)

    sent = page_now(first)
    server.publish("alice", "to every tab")
    for tab in tabs:
        assert wait_arrival(tab, "to every tab")["at"] - sent < 1000
        expect_badge(tab, 1)
    assert server.metric("tidings_streams_open") == 1  # no tab opened a second stream

    reader = tabs[2]
    reader.bring_to_front()  # the user clicks in the tab they look at
    open_bell(reader)
    clicked = page_now(reader)
    choose(reader.locator("tidings-bell .item").first, "markRead")
    for tab in tabs:
        assert wait_unread_at(tab, 0, clicked) - clicked < 1000
        expect_badge(tab, 0)

    old = leader(tabs)
    rest = [t for t in tabs if t is not old]
    closed = page_now(rest[0])
    old.close()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        roles = [t.locator("tidings-bell").get_attribute("data-role") for t in rest]
        if "leader" in roles:
            break
        time.sleep(0.02)
    took = page_now(rest[0]) - closed
    assert took < 1000, f"no new leader {took} ms after the leader tab closed"
    new = leader(rest)
    wait_live(new)
    streams_settle_at_one(server)

    server.publish("alice", "after the handover")
    for tab in rest:
        wait_arrival(tab, "after the handover")
        expect_badge(tab, 1)
        expect(tab.locator("tidings-bell")).to_have_attribute("data-connection", "open")
    assert server.metric("tidings_streams_open") == 1
