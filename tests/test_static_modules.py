"""The browser side is ES modules that import each other: tidings serves every one of them.

From each entry a page or app loads (tidings.js, tidings-bell.js, notification-bell.js), every
relative import is followed over real HTTP: each answers 200 as JavaScript (a browser refuses a
module with another type), revalidated on each load (`no-cache`: a browser must not mix modules
of two releases) with a validator for the 304. The installed package (the wheel holds
src/tidings as it is) serves the same files, so this also covers what `pip install` ships.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import httpx

from tests.support import Server

STATIC = Path(str(resources.files("tidings") / "web" / "static"))
ENTRIES = ["tidings.js", "tidings-bell.js", "notification-bell.js"]
# `import … from "./x.js"`, `export … from "./x.js"`, `import "./x.js"` (not in comments).
IMPORT = re.compile(r'^(?:import|export)\b[^;]*?["\'](\.{1,2}/[^"\']+)["\']', re.M | re.S)


def imports(source: str) -> list[str]:
    return IMPORT.findall(source)


def test_imports_are_found() -> None:
    # The pattern itself: what the walk below relies on.
    source = 'import { a } from "./a.js";\nexport { b } from "./client/b.js";\nimport "./c.js";\n'
    assert imports(source) == ["./a.js", "./client/b.js", "./c.js"]


def test_every_module_of_the_browser_side_is_served_as_javascript(server: Server) -> None:
    seen: set[str] = set()
    todo = [f"/static/{name}" for name in ENTRIES]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            response = http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].split(";")[0] in {
                "text/javascript",
                "application/javascript",
            }, path
            assert response.headers["cache-control"] == "no-cache", path
            etag = response.headers["etag"]
            again = http.get(path, headers={"if-none-match": etag})
            assert again.status_code == 304, path
            base = path.rsplit("/", 1)[0]
            for target in imports(response.text):
                resolved = httpx.URL(f"{server.url}{base}/").join(target).path
                todo.append(resolved)
    # Every module in the static folder is reached from an entry (none is left unserved), and
    # the split client is among them.
    on_disk = {
        "/static/" + p.relative_to(STATIC).as_posix()
        for p in STATIC.rglob("*.js")
        if "vendor" not in p.parts and p.name != "tidings-sw.js"
    }
    assert on_disk == seen
    assert "/static/client/stream.js" in seen
