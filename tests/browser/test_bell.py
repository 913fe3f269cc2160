"""The bell in real Chromium against a real server: what a user sees, from the issue's list."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.helpers import (
    TIMEOUT_MS,
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


def test_what_was_published_while_the_server_was_down_shows_once_without_a_reload(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", **HEARTBEAT)
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
    page.locator("tidings-bell .item[data-id='1'] .mark-read").click()
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
    page.keyboard.press("Tab")
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
    expect(second.locator(".mark-read")).to_be_focused()
    page.keyboard.press("Enter")
    expect_unread(page, 1)
    expect(second).to_be_focused()  # the button went away; the focus stays on its row
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

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not minted:
        page.wait_for_timeout(100)  # not time.sleep: Playwright runs `mint` while it waits
    assert minted, "the refresh callback was not called"
    wait_live(page)
    server.publish("alice", "still here")
    wait_arrival(page, "still here")
    expect_badge(page, 1)
