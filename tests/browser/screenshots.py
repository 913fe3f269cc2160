"""Screenshots of the bell for docs/img/ (docs/bell.md shows them): light, dark, a category tab,
an unfolded group, the archive, German, empty, error, a row's menu, the snoozed view, a toast, a
phone (320 px).

    .venv/bin/python -m tests.browser.screenshots [docs/img]

Starts the demo server on a free port with a temporary database, fills it, and photographs the
open bell in Debian's Chromium (the same launch as the browser tests).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Literal

from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.helpers import choose, expect_unread, open_bell, open_demo
from tests.browser.test_bell import unavailable_on
from tests.support import Server, tidings_env

# Every picture main() writes (tests/browser/test_screenshots.py checks them all).
SHOTS = [
    "bell-light.png",
    "bell-dark.png",
    "bell-tabs.png",
    "bell-group.png",
    "bell-archive.png",
    "bell-de.png",
    "bell-empty.png",
    "bell-error.png",
    "bell-menu.png",
    "bell-snoozed.png",
    "bell-toast.png",
    "bell-phone.png",
]


def fill(server: Server, user: str) -> None:
    """What the pictures show: three categories, an actor with an avatar and actions, a group of
    three comments by someone without an avatar (initials), a deploy (oldest first)."""
    server.publish(user, "Deploy finished: tidings 0.2.0 is live", category="deploys")
    for n, what in enumerate(("Looks good to me", "Can we ship Friday?", "Added the numbers")):
        server.publish(
            user,
            f"{what} (on “Q3 roadmap”)",
            category="comments",
            group="q3-roadmap",
            actor={"name": "Carol Chen"},
            link=f"https://example.com/roadmap#c{n}",
        )
    server.publish(
        user,
        "Invoice #1042 is ready",
        category="billing",
        actor={"name": "Bob Baker", "avatar_url": "/demo/avatars/bob.svg"},
        actions=[
            {"label": "Pay now", "url": "https://example.com/pay/1042"},
            {"label": "View", "url": "https://example.com/invoices/1042"},
        ],
    )


def settle(page: Page) -> None:
    """Until the fonts are loaded and the page has painted what it was told (the focus ring, the
    mouse moved away): two animation frames. The bell has no transition to wait out."""
    page.evaluate(
        """() => document.fonts.ready.then(() => new Promise((done) =>
               requestAnimationFrame(() => requestAnimationFrame(done))))"""
    )


def shoot(page: Page, path: Path) -> None:
    """The open bell and its dropdown, with a margin."""
    box = page.locator("tidings-bell .bell").bounding_box()
    panel = page.locator("tidings-bell .panel").bounding_box()
    assert box is not None
    assert panel is not None
    left = min(box["x"], panel["x"]) - 16
    top = box["y"] - 12
    right = max(box["x"] + box["width"], panel["x"] + panel["width"]) + 16
    bottom = panel["y"] + panel["height"] + 16
    # Avatars are loaded lazily: wait for every picture in the bell.
    page.wait_for_function(
        """() => [...document.querySelector("tidings-bell").shadowRoot.querySelectorAll("img")]
                 .every((img) => img.complete && img.naturalWidth > 0)"""
    )
    page.mouse.move(0, 0)  # no hover underline
    settle(page)
    page.screenshot(
        path=str(path), clip={"x": left, "y": top, "width": right - left, "height": bottom - top}
    )
    print(path)


def opened(
    browser: Browser,
    server: Server,
    user: str,
    scheme: Literal["light", "dark"] = "light",
    width: int = 900,
) -> Page:
    context = browser.new_context(
        color_scheme=scheme, viewport={"width": width, "height": 760 if width > 480 else 640}
    )
    page = context.new_page()
    open_demo(page, server, user)
    open_bell(page)
    return page


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(
            env=tidings_env(f"sqlite:///{tmp}/demo.db", {"TIDINGS_HEARTBEAT": "1"}),
            log_path=Path(tmp) / "server.log",
        )
        server.start("--demo")
        try:
            fill(server, "alice")
            fill(server, "bob")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = opened(browser, server, "alice")
                # The deploy read, so both looks show.
                deploy = page.locator("tidings-bell .item", has_text="Deploy finished")
                choose(deploy, "markRead")
                expect_unread(page, 4)
                page.locator("tidings-bell .bell").focus()
                shoot(page, out / "bell-light.png")

                page.locator("tidings-bell .tab[data-category=billing]").click()
                expect(page.locator("tidings-bell .item")).to_have_count(1)
                shoot(page, out / "bell-tabs.png")

                page.locator("tidings-bell .tab[data-category='']").click()
                page.locator("tidings-bell .group-toggle").click()
                expect(page.locator("tidings-bell .item.member")).to_have_count(2)
                shoot(page, out / "bell-group.png")

                page.locator("tidings-bell .group-toggle").click()
                page.get_by_label("Bell language").select_option("de")
                expect(page.locator("tidings-bell h2")).to_have_text("Benachrichtigungen")
                shoot(page, out / "bell-de.png")
                page.context.close()

                page = opened(browser, server, "alice", "dark")
                shoot(page, out / "bell-dark.png")
                page.context.close()

                page = opened(browser, server, "bob")
                for text in ("Deploy finished", "Invoice #1042"):
                    choose(page.locator("tidings-bell .item", has_text=text), "archive")
                    expect(page.locator("tidings-bell .item", has_text=text)).to_have_count(0)
                page.locator("tidings-bell .archive-view").click()
                expect(page.locator("tidings-bell .item")).to_have_count(2)
                shoot(page, out / "bell-archive.png")
                page.context.close()

                page = opened(browser, server, "carol")
                shoot(page, out / "bell-empty.png")
                page.context.close()

                page = opened(browser, server, "alice")
                first = page.locator("tidings-bell .item").first
                first.locator(".tb-menu-button").click()
                expect(first.get_by_role("menuitem").first).to_be_focused()
                shoot(page, out / "bell-menu.png")
                page.keyboard.press("Escape")
                page.context.close()

                page = opened(browser, server, "alice", width=320)
                settle(page)
                page.screenshot(path=str(out / "bell-phone.png"))
                print(out / "bell-phone.png")
                page.context.close()

                page = opened(browser, server, "bob")
                page.locator("tidings-bell .bell").click()  # closed
                page.locator("tidings-bell").evaluate("(b) => b.setAttribute('toasts', '')")
                server.publish("bob", "Deploy finished: tidings 0.3.0 is live", category="deploys")
                toast = page.locator("tidings-bell .tb-toast")
                expect(toast).to_be_visible()
                box = toast.bounding_box()
                assert box is not None
                page.screenshot(
                    path=str(out / "bell-toast.png"),
                    clip={
                        "x": box["x"] - 16,
                        "y": box["y"] - 16,
                        "width": box["width"] + 32,
                        "height": box["height"] + 32,
                    },
                )
                print(out / "bell-toast.png")
                page.context.close()

                # Two snoozed (one until tomorrow, one for an hour), then the snoozed view.
                page = opened(browser, server, "alice")
                rows = page.locator("tidings-bell .item")
                count = rows.count()
                choose(rows.first, "snooze:tomorrow")
                expect(rows).to_have_count(count - 1)
                choose(rows.last, "snooze:hour")
                expect(rows).to_have_count(count - 2)
                page.locator("tidings-bell .snoozed-view").click()
                expect(rows).to_have_count(2, timeout=15_000)
                page.locator("tidings-bell .bell").focus()
                shoot(page, out / "bell-snoozed.png")
                page.context.close()

                page = opened(browser, server, "alice")
                server.stop()
                with unavailable_on(server.port):
                    page.locator("tidings-bell .refresh").click()
                    page.locator("tidings-bell .banner").wait_for(state="visible")
                    shoot(page, out / "bell-error.png")
                browser.close()
        finally:
            server.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
