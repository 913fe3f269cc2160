"""What a test does on the demo pages, as a person would: log in, look at the bell."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from tests.support import Server

# Generous: two shared cores. The "within 1 s" checks compare timestamps taken in the page.
TIMEOUT_MS = 15_000

# Recorded in every page, so a test can tell *when* something happened there:
# arrivals (the bell's `new-notification` event), every change of the unread badge and of the
# connection state, every EventSource the page opened and every `ping` they delivered.
RECORDER = """
window.__arrivals = [];
window.__unread = [];
window.__connection = [];
window.__streams = [];
window.__pings = 0;
document.addEventListener("new-notification", (e) => {
  window.__arrivals.push({ id: e.detail.id, message: e.detail.message, at: Date.now() });
}, true);
new MutationObserver((records) => {
  for (const r of records) {
    if (r.attributeName === "data-unread") {
      window.__unread.push({ value: Number(r.target.dataset.unread), at: Date.now() });
    } else if (r.attributeName === "data-connection") {
      const value = r.target.dataset.connection;  // re-rendered often: record changes only
      if (window.__connection.at(-1)?.value !== value) {
        window.__connection.push({ value, at: Date.now() });
      }
    }
  }
}).observe(document, {
  attributes: true, subtree: true, attributeFilter: ["data-unread", "data-connection"],
});
window.EventSource = class extends window.EventSource {
  constructor(url, init) {
    super(url, init);
    window.__streams.push({ url: String(url), at: Date.now() });
    this.addEventListener("ping", () => { window.__pings += 1; });
  }
};
"""


def new_page(context: BrowserContext) -> Page:
    context.add_init_script(RECORDER)
    return context.new_page()


def open_demo(page: Page, server: Server, user: str, *, via: str | None = None) -> None:
    """Open the demo page (at `via`, a proxy's URL, if given) and log in as `user`."""
    page.goto(f"{via or server.url}/")
    page.get_by_label(user, exact=True).check()
    wait_live(page)


def wait_live(page: Page, selector: str = "tidings-bell") -> None:
    """Until the bell has loaded its list and its stream (its own or the leader tab's) is open."""
    expect(page.locator(f"{selector}[data-status=ready]")).to_be_attached(timeout=TIMEOUT_MS)
    expect(page.locator(f"{selector}[data-connection=open]")).to_be_attached(timeout=TIMEOUT_MS)


def expect_badge(page: Page, count: int, selector: str = "tidings-bell .badge") -> None:
    badge = page.locator(selector)
    if count == 0:
        expect(badge).to_be_hidden(timeout=TIMEOUT_MS)
    else:
        expect(badge).to_have_text(str(count), timeout=TIMEOUT_MS)


def expect_unread(page: Page, count: int, selector: str = "tidings-bell") -> None:
    """The unread count (the badge counts unseen ones; opening the bell makes them seen)."""
    expect(page.locator(selector).first).to_have_attribute(
        "data-unread", str(count), timeout=TIMEOUT_MS
    )


def unread(page: Page, selector: str = "tidings-bell") -> int:
    return int(page.locator(selector).first.get_attribute("data-unread") or 0)


def page_now(page: Page) -> float:
    """The page's clock (ms), to compare with the times it recorded."""
    now: float = page.evaluate("Date.now()")
    return now


def arrivals(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("window.__arrivals")
    return found


def wait_arrival(page: Page, message: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for arrival in arrivals(page):
            if arrival["message"] == message:
                return arrival
        time.sleep(0.05)
    raise AssertionError(f"{message!r} did not arrive; arrivals: {arrivals(page)}")


def wait_unread_at(page: Page, value: int, since_ms: float) -> float:
    """When (page ms) the badge first showed `value` after `since_ms`."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        changes: list[dict[str, Any]] = page.evaluate("window.__unread")
        for change in changes:
            if change["value"] == value and change["at"] >= since_ms:
                at: float = change["at"]
                return at
        time.sleep(0.05)
    raise AssertionError(f"the badge never showed {value}; changes: {changes}")


def messages(page: Page) -> list[str]:
    return page.locator("tidings-bell .item .message").all_text_contents()


def open_bell(page: Page) -> None:
    page.locator("tidings-bell .bell").click()
    expect(page.locator("tidings-bell .panel")).to_be_visible()
