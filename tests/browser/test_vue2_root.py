"""The bells inside a Vue 2 root, as the original Laravel + Vue 2 app has them (docs/laravel.md).

A stand-in for the Laravel app on its own port serves the layout docs/laravel.md shows: a
`<div id="app">` that Vue 2.7 compiles from the DOM (Vue re-creates every element in it and drops
its <script> tags), holding `<x-tidings-bell />`'s output and the drop-in `<notification-bell>`,
with the bells' token URL and no inline script, under a Content-Security-Policy without
'unsafe-inline'. The app's token route hands out tokens that live 3 seconds: both bells must stay
live well past that, refreshing through the URL themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.conftest import ServerFactory
from tests.support import Server, free_port, make_token

TTL = 3  # seconds: a token the bell does not renew ends its stream within the test
USER = "vue2-user"
NONCE = "r4nd0m-n0nce-per-request"

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "tidings" / "web" / "static"
# resources/js/app.js as docs/laravel.md shows it, word for word.
APP_JS = (Path(__file__).parent / "vue2_app" / "app.js").read_text()

# What the Laravel layout of docs/laravel.md renders (integrations/laravel/tests/Fixtures/views/
# vue2.blade.php; its PHPUnit test checks the same markup): the Blade component's output and the
# drop-in Vue bell, both inside the root Vue compiles. The import map (with the request's nonce)
# stands in for the bundler that resolves "vue"; the bell's files are the copies docs/laravel.md
# has the app keep in resources/js/tidings/.
LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>app</title>
<meta name="csrf-token" content="laravel-csrf-token">
<script type="importmap" nonce="{nonce}">
{{"imports": {{"vue": "{tidings}/static/vendor/vue2/vue.esm.browser.min.js"}}}}
</script>
<script type="module" src="/js/app.js" nonce="{nonce}"></script>
</head><body>
<div id="app">
    <script type="module" src="{tidings}/static/tidings-bell.js" nonce="{nonce}"></script>
    <tidings-bell base-url="{tidings}" token="{token}" token-url="/tidings/token" no-push>
    </tidings-bell>
        <notification-bell base-url="{tidings}"
                           token-url="/tidings/token"
                           no-push></notification-bell>
</div>
</body></html>
"""


class App:
    """The app: its layout, its bundle and its token route (the session user only)."""

    def __init__(self, port: int, tidings: str) -> None:
        self.tidings = tidings
        self.url = f"http://127.0.0.1:{port}"
        self.refreshes = 0
        self.csrf_seen: set[str] = set()
        self._renewed = threading.Condition()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/":
                    token = make_token(USER, TTL, iat=int(time.time()))
                    body = LAYOUT.format(tidings=app.tidings, token=token, nonce=NONCE)
                    self.answer(200, "text/html", body)
                elif self.path == "/js/app.js":
                    self.answer(200, "text/javascript", APP_JS)
                elif self.path.startswith("/js/tidings/") and self.copied().is_file():
                    # resources/js/tidings/ holds the copy docs/laravel.md makes: the modules
                    # and their client/ folder.
                    self.answer(200, "text/javascript", self.copied().read_text())
                elif self.path == "/tidings/token":
                    token = make_token(USER, TTL, iat=int(time.time()))
                    self.answer(200, "application/json", f'{{"token": "{token}"}}')
                    with app._renewed:
                        app.refreshes += 1
                        app.csrf_seen.add(self.headers.get("X-CSRF-TOKEN", ""))
                        app._renewed.notify_all()
                else:
                    self.answer(404, "text/plain", "not found")

            def copied(self) -> Path:
                path = (STATIC / self.path.removeprefix("/js/tidings/")).resolve()
                inside = path.parent in (STATIC, STATIC / "client")
                return path if inside and path.suffix == ".js" else STATIC / "missing"

            def answer(self, status: int, kind: str, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                # Strict CSP: scripts from the app and tidings, or with the request's nonce;
                # no 'unsafe-inline', so an inline <script> (the old bell's) would be refused,
                # and so would an inline <style> (the bells adopt constructed stylesheets).
                # 'unsafe-eval' is Vue 2's own need: it compiles the in-DOM template with
                # new Function (a build with precompiled templates does without).
                self.send_header(
                    "Content-Security-Policy",
                    f"script-src 'self' {app.tidings} 'nonce-{NONCE}' 'unsafe-eval'; "
                    "style-src 'self'; object-src 'none'; base-uri 'none'",
                )
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def wait_refreshes(self, count: int, timeout: float) -> int:
        """Block until the token route has answered `count` times (the browser runs on)."""
        with self._renewed:
            self._renewed.wait_for(lambda: self.refreshes >= count, timeout)
            return self.refreshes

    def __enter__(self) -> App:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def app(make_server: ServerFactory) -> Iterator[tuple[App, Server]]:
    # The app on a second origin (another port), as `php artisan serve` next to `tidings serve`.
    port = free_port()
    tidings = make_server(TIDINGS_CORS_ORIGINS=f"http://127.0.0.1:{port}", TIDINGS_HEARTBEAT="1")
    with App(port, tidings.url) as started:
        yield started, tidings


# Waits on timers more than it computes: in the lane beside the parallel pass (scripts/test).
@pytest.mark.serial
def test_both_bells_in_a_vue2_root_stay_live_past_the_token_lifetime_under_strict_csp(
    browser: Browser, app: tuple[App, Server]
) -> None:
    site, tidings = app
    refused: list[str] = []
    context = browser.new_context()
    try:
        page = context.new_page()

        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:
                refused.append(message.text)

        page.on("console", on_console)
        asked_key: list[str] = []
        page.on("request", lambda r: asked_key.append(r.url) if "/push/key" in r.url else None)
        page.goto(site.url + "/")
        # Vue 2 compiled the root (and so re-created both bells in it).
        page.wait_for_function("() => Boolean(document.querySelector('#app').__vue__)")
        element = page.locator("tidings-bell")
        vue = page.locator(".tidings-vue")
        expect(element).to_have_attribute("data-connection", "open", timeout=15_000)
        expect(vue).to_have_attribute("data-connection", "open", timeout=15_000)
        started = time.monotonic()
        # Several lifetimes: the bells renew through the app's token URL before each expiry
        # (one shared stream per browser: the leader renews).
        assert site.wait_refreshes(4, 30) >= 4
        assert time.monotonic() - started > TTL
        tidings.publish(USER, "past the token's lifetime")
        expect(element).to_have_attribute("data-unread", "1", timeout=15_000)
        expect(vue).to_have_attribute("data-unread", "1", timeout=15_000)
        expect(element).to_have_attribute("data-connection", "open")
        # Both bells keep their look under `style-src 'self'`: the badge is the palette's red.
        red = "rgb(220, 38, 38)"
        expect(element.locator(".badge")).to_have_css("background-color", red)
        expect(vue.locator(".notification-badge")).to_have_css("background-color", red)
        # The Laravel layout's CSRF meta went along with each refresh.
        assert site.csrf_seen == {"laravel-csrf-token"}
        assert refused == []
        # no-push: neither bell asked for the push key (tidings here has none: it would be a 404).
        assert asked_key == []
    finally:
        context.close()
