"""How big the bell gets and how long it takes to open after many arrivals, in real Chromium.

Not a test (nothing is asserted): the figures of issue 13's "the list grows without bound".

    .venv/bin/python -m tests.browser.measure_bell [--arrivals 1000] [--src OTHER_CHECKOUT/src]

`--src` serves another checkout's code (e.g. a `git worktree` of an older commit) to compare.
Prints the rows and DOM nodes in the bell after the arrivals, the DOM changes one more arrival
made in the list (by kind), and the time from the click on the bell to the next frame after the
panel was laid out (the first open, then five more).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.helpers import new_page, open_demo
from tests.support import Server, tidings_env

COUNT = """() => {
  const bell = document.querySelector("tidings-bell");
  const walker = document.createTreeWalker(bell.shadowRoot, NodeFilter.SHOW_ALL);
  let nodes = 1;
  while (walker.nextNode()) nodes += 1;
  return {rows: bell.shadowRoot.querySelectorAll(".item").length, nodes};
}"""

# After one more arrival: the DOM changes in the list, by kind. "rows" adds and removes rows (the
# new one, and the one that left the window), "redrawn" rebuilds a row's content, "time" rewrites a
# time text in place ("3 seconds ago" -> "4 seconds ago"), "other" is anything else.
MARK = """() => {
  window.__changes = {rows: 0, redrawn: 0, time: 0, other: 0};
  const list = document.querySelector("tidings-bell").shadowRoot.querySelector(".list");
  window.__observer = new MutationObserver((records) => {
    for (const r of records) {
      const kind = r.target === list ? "rows"
        : r.target.nodeName === "LI" ? "redrawn"
        : r.target.nodeName === "TIME" || r.target.parentNode?.nodeName === "TIME" ? "time"
        : "other";
      window.__changes[kind] += 1;
    }
  });
  window.__observer.observe(list, {childList: true, subtree: true, characterData: true});
}"""

OPEN = """async () => {
  const bell = document.querySelector("tidings-bell");
  const button = bell.shadowRoot.querySelector(".bell");
  const start = performance.now();
  button.click();
  bell.shadowRoot.querySelector(".panel").getBoundingClientRect();  // layout
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
  const took = performance.now() - start;
  button.click();  // closed again
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
  return took;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrivals", type=int, default=1000)
    parser.add_argument("--src", help="serve this checkout's src/ instead of the installed one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"TIDINGS_HEARTBEAT": "1"}
        env = tidings_env(f"sqlite:///{Path(tmp) / 'tidings.db'}", extra)
        if args.src:
            env["PYTHONPATH"] = os.pathsep.join([args.src, env.get("PYTHONPATH", "")])
        server = Server(env=env, log_path=Path(tmp) / "server.log")
        server.start("--demo")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = new_page(browser.new_context())
                open_demo(page, server, "alice")
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(lambda i: server.publish("alice", f"n{i}"), range(args.arrivals)))
                page.wait_for_function(
                    f"document.querySelector('tidings-bell').dataset.unread === '{args.arrivals}'",
                    timeout=120_000,
                )
                first = round(page.evaluate(OPEN), 1)
                size = page.evaluate(COUNT)
                page.evaluate(MARK)
                server.publish("alice", "one more")
                page.wait_for_function(
                    "document.querySelector('tidings-bell').dataset.unread === "
                    f"'{args.arrivals + 1}'"
                )
                time.sleep(0.5)
                changes = page.evaluate("window.__changes")
                opens = [round(page.evaluate(OPEN), 1) for _ in range(5)]
                browser.close()
        finally:
            server.close()
    print(json.dumps({"arrivals": args.arrivals, **size, "changes_for_one_arrival": changes,
                      "first_open_ms": first, "open_ms": opens}))  # fmt: skip


if __name__ == "__main__":
    main()
