"""What a test does on the demo pages, as a person would: log in, look at the bell."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support import Server

# Generous: two shared cores; the "within 1 s" checks measure their own time.
TIMEOUT_MS = 10_000


def bell(page: Page, selector: str = "tidings-bell") -> str:
    return selector


def open_demo(page: Page, server: Server, user: str) -> None:
    """Open the demo page and log in as `user` with the user switcher."""
    page.goto(f"{server.url}/")
    page.get_by_label(user, exact=True).check()
    wait_live(page)


def wait_live(page: Page) -> None:
    """Until the bell has loaded its list and its stream (its own or the leader tab's) is open."""
    expect(page.locator("tidings-bell[data-status=ready]")).to_be_attached(timeout=TIMEOUT_MS)
    expect(page.locator("tidings-bell[data-connection=open]")).to_be_attached(timeout=TIMEOUT_MS)


def badge_count(page: Page) -> int:
    value = page.locator("tidings-bell").get_attribute("data-unread")
    return int(value or 0)


def expect_badge(page: Page, count: int, timeout: float = TIMEOUT_MS) -> None:
    badge = page.locator("tidings-bell .badge")
    if count == 0:
        expect(badge).to_be_hidden(timeout=timeout)
    else:
        expect(badge).to_have_text(str(count), timeout=timeout)


def messages(page: Page) -> list[str]:
    return page.locator("tidings-bell .item .message").all_text_contents()
