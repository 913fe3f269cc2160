"""Screenshots of the bell for docs/img/: light, dark, empty, error.

    .venv/bin/python -m tests.browser.screenshots [docs/img]

Starts the demo server on a free port with a temporary database, fills it, and photographs the
open bell in Debian's Chromium (the same launch as the browser tests).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.helpers import open_bell, open_demo, wait_live
from tests.browser.test_bell import unavailable_on
from tests.support import Server, tidings_env

# Every picture main() writes (tests/browser/test_screenshots.py checks them all).
SHOTS = ["bell-light.png", "bell-dark.png", "bell-empty.png", "bell-error.png"]

MESSAGES = [
    ("alice", "Your invoice #1042 is ready", "https://example.com/invoices/1042"),
    ("alice", "Bob commented on “Q3 roadmap”", None),
    ("alice", "Deploy finished: tidings 0.1.0 is live", None),
]


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
    page.wait_for_timeout(300)  # let the focus ring and fonts settle
    page.screenshot(
        path=str(path), clip={"x": left, "y": top, "width": right - left, "height": bottom - top}
    )
    print(path)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(
            env=tidings_env(f"sqlite:///{tmp}/demo.db", {"TIDINGS_HEARTBEAT": "1"}),
            log_path=Path(tmp) / "server.log",
        )
        server.start("--demo")
        try:
            for user, message, link in MESSAGES:
                server.publish(user, message, **({"link": link} if link else {}))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for scheme in ("light", "dark"):
                    context = browser.new_context(
                        color_scheme=scheme, viewport={"width": 900, "height": 600}
                    )
                    page = context.new_page()
                    open_demo(page, server, "alice")
                    if scheme == "light":
                        # One read, so both looks show.
                        open_bell(page)
                        page.locator("tidings-bell .item[data-id='1'] .mark-read").click()
                        page.reload()
                        wait_live(page)
                    open_bell(page)
                    shoot(page, out / f"bell-{scheme}.png")
                    context.close()

                context = browser.new_context(viewport={"width": 900, "height": 600})
                page = context.new_page()
                open_demo(page, server, "carol")
                open_bell(page)
                shoot(page, out / "bell-empty.png")

                page = context.new_page()
                open_demo(page, server, "alice")
                open_bell(page)
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
