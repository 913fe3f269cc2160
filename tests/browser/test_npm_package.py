"""The npm package (packages/client) in real apps: packed, installed, built by Vite, in Chromium.

`npm pack` builds @tidings/client from /static/ (its prepack script); the Vite + Vue app and the
Vite + React app in tests/packages install that tarball over their locked dependencies and are
built once per module (Vue 3 and 2.7, React 19 and 18). A static server on its own origin serves
the builds, next to a real tidings server that allows that origin (TIDINGS_CORS_ORIGINS): a publish
changes the badge live. A TypeScript file that uses the API type-checks against the package's
generated declarations, and one that misuses it does not.
"""

from __future__ import annotations

import concurrent.futures
import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import TIMEOUT_MS
from tests.conftest import require_services
from tests.support import Server, free_port, make_token, serving

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages" / "client"
APPS = ROOT / "tests" / "packages"
STATIC = ROOT / "src" / "tidings" / "web" / "static"
# npm and Vite on a busy machine: minutes at worst, not hours.
NPM_TIMEOUT = 300

# npm pack and four Vite builds before the first test: started first on the parallel workers.
pytestmark = pytest.mark.slow


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        reason = "npm is missing: the package tests need Node.js and npm (scripts/install-system)"
        if require_services():
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def run(args: list[str], cwd: Path, **env: str) -> str:
    result = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
        check=False,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, f"{' '.join(args)} in {cwd}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`npm pack` of the package: its prepack script copies /static/ and writes the types."""
    out = tmp_path_factory.mktemp("pack")
    run([npm(), "pack", "--pack-destination", str(out)], PACKAGE)
    (packed,) = out.glob("*.tgz")
    return packed


def install(app: Path, tarball: Path) -> None:
    """The app's locked dependencies (scripts/bootstrap installs them) and the packed package."""
    quiet = ["--no-audit", "--no-fund", "--prefer-offline"]
    if not (app / "node_modules" / "vite").is_dir():
        run([npm(), "ci", *quiet], app)
    # --no-save: the lock stays as committed (the tarball's checksum changes with every pack).
    run([npm(), "install", "--no-save", *quiet, str(tarball)], app)


@pytest.fixture(scope="module")
def site(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vue3/, vue2/, react19/ and react18/: the four builds, with relative asset paths."""
    root = tmp_path_factory.mktemp("site")
    vite = ["node", "node_modules/vite/bin/vite.js", "build", "--base", "./", "--emptyOutDir"]

    def vue() -> None:
        install(APPS / "vite-vue", tarball)
        run([*vite, "--outDir", str(root / "vue3")], APPS / "vite-vue")
        run([*vite, "--outDir", str(root / "vue2")], APPS / "vite-vue", VUE="2")

    def react() -> None:
        install(APPS / "vite-react", tarball)
        run([*vite, "--outDir", str(root / "react19")], APPS / "vite-react")
        run([*vite, "--outDir", str(root / "react18")], APPS / "vite-react", REACT="18")

    # The two apps side by side: npm spends most of an install waiting, not computing (3.7 s
    # for 0.7 s of CPU here), so one app's install overlaps the other's build.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(vue), pool.submit(react)]:
            done.result()
    return root


@pytest.fixture(scope="module")
def app_origin(site: Path) -> Iterator[str]:
    """The built apps on their own origin, as a static host would serve them."""
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tidings(app_origin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("tidings")
    with serving(folder, {"TIDINGS_CORS_ORIGINS": app_origin}) as server:
        yield server


def open_app(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, errors


@pytest.mark.parametrize("vue", ["3", "2"])
def test_vue_app_shows_the_badge_change_live(
    browser: Browser, app_origin: str, tidings: Server, vue: str
) -> None:
    user = f"npm-vue{vue}"
    page_path = "vue3/" if vue == "3" else "vue2/vue2.html"
    page, errors = open_app(
        browser, f"{app_origin}/{page_path}?tidings={tidings.url}&token={make_token(user)}"
    )
    expect(page.locator("body")).to_have_attribute("data-vue", re.compile(rf"^{vue}\."))
    bell = page.locator(".tidings-vue")
    expect(bell).to_have_attribute("data-connection", "open")
    expect(bell).to_have_attribute("data-status", "ready")
    badge = bell.locator(".notification-badge")
    expect(badge).to_have_count(0)
    assert tidings.publish(user, "built by Vite").status_code == 201
    expect(badge).to_have_text("1")
    expect(page.locator("#last")).to_have_text("built by Vite")  # the new-notification event
    assert tidings.publish(user, "and again").status_code == 201
    expect(badge).to_have_text("2")
    assert errors == []


@pytest.mark.parametrize("react", ["19", "18"])
def test_react_app_shows_the_badge_change_live(
    browser: Browser, app_origin: str, tidings: Server, react: str
) -> None:
    user = f"npm-react{react}"
    page, errors = open_app(
        browser, f"{app_origin}/react{react}/?tidings={tidings.url}&token={make_token(user)}"
    )
    expect(page.locator("header")).to_have_attribute("data-react", re.compile(rf"^{react}\."))
    bell = page.locator("tidings-bell")
    expect(bell).to_have_attribute("data-connection", "open")
    expect(bell).to_have_attribute("data-status", "ready")
    unseen = page.locator("#unseen")  # useTidings(): a client of the app's own
    expect(unseen).to_have_text("0")
    badge = page.locator("tidings-bell .badge")
    expect(badge).to_be_hidden()
    with page.expect_console_message(lambda m: m.text == "tidings: built by Vite"):
        assert tidings.publish(user, "built by Vite").status_code == 201
    expect(badge).to_have_text("1")
    expect(unseen).to_have_text("1")
    assert tidings.publish(user, "and again").status_code == 201
    expect(badge).to_have_text("2")
    expect(unseen).to_have_text("2")
    assert errors == []


def test_the_package_is_the_code_tidings_serves(site: Path) -> None:
    # Every module of /static/ is in the installed package, byte for byte.
    dist = APPS / "vite-vue" / "node_modules" / "@tidings" / "client" / "dist"
    served = {p.relative_to(STATIC) for p in STATIC.rglob("*.js") if "vendor" not in p.parts}
    assert served
    for path in served:
        assert (dist / path).read_bytes() == (STATIC / path).read_bytes(), path
        if path.name != "tidings-sw.js":
            assert (dist / path.with_suffix(".d.ts")).is_file(), path


def test_typescript_uses_the_generated_declarations(site: Path) -> None:
    # src/typed.ts uses the API and must pass; a file that misspells an option and mistypes a
    # field must fail, on exactly those lines: the declarations carry the real types. One run
    # of tsc for both (it is the slow part).
    app = APPS / "vite-react"
    tsc = str(ROOT / "node_modules" / "typescript" / "bin" / "tsc")
    wrong = app / "src" / "wrong.test-tmp.ts"
    config = app / "tsconfig.test-tmp.json"
    wrong.write_text(
        'import { createTidings } from "@tidings/client";\n'
        "createTidings({ pagesize: 5 });\n"
        "const n: number = createTidings().state.items[0].message;\nconsole.log(n);\n"
    )
    config.write_text(
        '{"extends": "./tsconfig.json", "files": ["src/typed.ts", "src/wrong.test-tmp.ts"]}'
    )
    try:
        result = subprocess.run(
            ["node", tsc, "-p", config.name, "--pretty", "false"],
            cwd=app, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        wrong.unlink()
        config.unlink()
    errors = [line for line in result.stdout.splitlines() if ": error TS" in line]
    assert result.returncode != 0
    assert [e.split("(")[0] for e in errors] == ["src/wrong.test-tmp.ts"] * 2, result.stdout
    assert "'pagesize' does not exist" in errors[0], errors
    assert "Type 'string' is not assignable to type 'number'" in errors[1], errors
