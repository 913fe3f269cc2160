"""What a test does on the demo pages, as a person would: log in, look at the bell."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.conftest import require_services
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


def choose(row: Locator, action: str) -> None:
    """Open a row's "⋯" menu and choose the item `action` (its data-action: markRead, archive,
    unarchive, delete, unsnooze, snooze:hour, snooze:tomorrow, snooze:nextWeek). Both bells."""
    row.locator(".tb-menu-button").click()
    row.locator(f'[role=menuitem][data-action="{action}"]').click()


def has_focus(locator: Locator) -> bool:
    """The element has the focus, or holds it (in its light or shadow DOM)."""
    focused: bool = locator.evaluate(
        """(el) => {
            let active = document.activeElement;
            while (active) {
              if (active === el || el.contains(active) || el.shadowRoot?.contains(active)) {
                return true;
              }
              active = active.shadowRoot?.activeElement ?? null;
            }
            return false;
        }"""
    )
    return focused


def focus_on_page_outside(locator: Locator) -> bool:
    """The focus is on the page's content outside the element: not inside it, not on the body,
    not out in the browser's own UI (where Tab goes past a page's last control)."""
    outside: bool = locator.evaluate(
        """(el) => {
            const active = document.activeElement;
            if (!document.hasFocus() || !active || active === document.body) return false;
            return active !== el && !el.contains(active);
        }"""
    )
    return outside


def tab_to(page: Page, target: Locator, presses: int = 30, key: str = "Tab") -> None:
    """Press Tab (or `key`: Shift+Tab) until `target` itself has the focus, as a keyboard user
    would."""
    for _ in range(presses):
        page.keyboard.press(key)
        if target.evaluate("(el) => el.getRootNode().activeElement === el"):
            return
    raise AssertionError(f"Tab never reached {target}")


# --- axe-core ---------------------------------------------------------------------------------

# From npm (package.json's devDependencies; `npm ci` installs it, .ci/run does).
AXE_SCRIPT = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0 and 2.1, levels A and AA, WCAG 2.2 AA (target size), and axe's best practices
# (landmarks, headings, …).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def require_axe() -> None:
    """Skip the test when axe-core is not installed (fail it under TIDINGS_REQUIRE_SERVICES=1)."""
    if not AXE_SCRIPT.is_file():
        reason = f"{AXE_SCRIPT} is missing: run `npm ci`"
        if require_services():
            pytest.fail(reason)
        pytest.skip(reason)


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the whole page as it is now (open shadow roots included)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        # Evaluated, not a <script> tag: the page's Content-Security-Policy does not apply.
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8") + "\n;0")
    found: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {
              runOnly: { type: "tag", values: tags }, resultTypes: ["violations"],
            });
            return result.violations.map((v) => ({
              id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map((n) => ({ target: n.target, summary: n.failureSummary })),
            }));
        }""",
        AXE_TAGS,
    )
    return found


def readable(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        for node in v["nodes"]:
            summary = " ".join(str(node["summary"] or "").split())
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


def expect_accessible(page: Page, state: str) -> None:
    """0 axe-core violations (AXE_TAGS) on the page, listed one per element when not."""
    violations = axe_violations(page)
    assert violations == [], f"axe-core, {state}:\n{readable(violations)}"
