"""tidings.js's API contract in Chromium: options are checked, and every failure is reported the
same way (the promise rejects with a TidingsError, and subscribers get an `error` change)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, expect

from tests.browser.helpers import TIMEOUT_MS, choose, expect_badge, new_page, open_bell, open_demo
from tests.conftest import ServerFactory

# Unhandled rejections in the page, so a test can tell a bell let one escape.
REJECTIONS = """
window.__rejections = [];
window.addEventListener("unhandledrejection", (e) => {
  window.__rejections.push(String(e.reason && e.reason.message));
});
"""


def test_a_misspelled_option_throws_a_clear_error(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo")
    page = new_page(browser.new_context())
    page.goto(f"{server.url}/")
    errors: list[str] = page.evaluate(
        """async () => {
            const { createTidings } = await import("/static/tidings.js");
            const errors = [];
            for (const options of [{ pagesize: 5 }, { pageSize: "5" }, { backoff: { maxx: 1 } }]) {
                try {
                    createTidings(options).close();
                    errors.push(null);
                } catch (error) {
                    errors.push(`${error.name}: ${error.message}`);
                }
            }
            return errors;
        }"""
    )
    assert errors == [
        'TypeError: createTidings: unknown option "pagesize" (did you mean "pageSize"?)',
        'TypeError: createTidings: option "pageSize" must be an integer from 1 to 100, got "5"',
        'TypeError: createTidings: backoff: unknown option "maxx" (did you mean "max"?)',
    ]


def test_a_failed_call_rejects_with_a_tidings_error_emits_it_and_the_bell_shows_it(
    browser: Browser, make_server: ServerFactory
) -> None:
    server = make_server("--demo", TIDINGS_HEARTBEAT="1")
    context = browser.new_context()
    context.add_init_script(REJECTIONS)
    page = new_page(context)
    open_demo(page, server, "alice")
    server.publish("alice", "one")
    server.publish("alice", "two")
    expect_badge(page, 2)
    server.stop()  # every call now fails: no answer at all

    outcome: dict[str, Any] = page.evaluate(
        """async () => {
            const client = document.querySelector("tidings-bell").client;
            const emitted = [];
            const stop = client.subscribe((state, change) => {
                if (change.type === "error") emitted.push([change.action, change.error.name]);
            });
            const results = {};
            for (const [name, call] of [
                ["markRead", () => client.markRead([1])],
                ["markAllRead", () => client.markAllRead()],
                ["refresh", () => client.refresh()],
            ]) {
                try {
                    await call();
                    results[name] = "resolved";
                } catch (error) {
                    results[name] = [error.name, error.status, error.code, error.action];
                }
            }
            stop();
            return { results, emitted, unread: client.state.unread, error: client.state.error };
        }"""
    )
    assert outcome["results"] == {
        "markRead": ["TidingsError", 0, "network", "markRead"],
        "markAllRead": ["TidingsError", 0, "network", "markAllRead"],
        "refresh": ["TidingsError", 0, "network", "refresh"],
    }
    assert outcome["emitted"] == [
        ["markRead", "TidingsError"],
        ["markAllRead", "TidingsError"],
        ["refresh", "TidingsError"],
    ]
    assert outcome["unread"] == 2  # the optimistic marks were rolled back
    assert outcome["error"] == "network"

    # The bell: the same failure from a click is shown, and its rejection goes no further.
    open_bell(page)
    choose(page.locator("tidings-bell .item[data-id='2']"), "markRead")
    expect(page.locator("tidings-bell .banner")).to_have_text(
        "That did not work. Please try again.", timeout=TIMEOUT_MS
    )
    expect_badge(page, 2)
    page.evaluate("() => { Promise.reject(new Error('sentinel')); }")  # recorded after any earlier
    page.wait_for_function("window.__rejections.length > 0", timeout=TIMEOUT_MS)
    assert page.evaluate("window.__rejections") == ["sentinel"]
