"""Every TIDINGS_* name an integration reads is accepted by the server from the same environment.

One `.env` serves the app and tidings (docs/laravel.md, docs/django.md): a name the Laravel
package's config/tidings.php, the Django guide or its test site reads must not make `tidings
serve` refuse to start. This test reads the names from those files, so a new one cannot slip in.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import PUBLISHER_KEY, SECRET
from tidings.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

# Where an integration reads the environment, and how it spells a read there.
READERS = {
    "integrations/laravel/config/tidings.php": r"env\(\s*'(TIDINGS_\w+)'",
    "docs/laravel.md": r"env\(\s*'(TIDINGS_\w+)'",
    "docs/django.md": r"os\.environ(?:\.get\(|\[)\s*\"(TIDINGS_\w+)\"",
    "tests/integrations/django_site/settings.py": r"os\.environ(?:\.get\(|\[)\s*\"(TIDINGS_\w+)\"",
}


def names_read() -> dict[str, set[str]]:
    return {path: set(re.findall(rx, (ROOT / path).read_text())) for path, rx in READERS.items()}


def test_the_integrations_read_the_names_this_test_looks_for() -> None:
    # A sentinel: the patterns still match the files (else the next test checks nothing).
    found = names_read()
    assert {"TIDINGS_URL", "TIDINGS_PUBLISHER_KEY", "TIDINGS_SECRET", "TIDINGS_TOKEN_TTL"} <= found[
        "integrations/laravel/config/tidings.php"
    ]
    assert {"TIDINGS_URL", "TIDINGS_PUBLISHER_KEY", "TIDINGS_SECRET"} <= found["docs/django.md"]


def test_the_server_starts_with_every_name_an_integration_reads() -> None:
    every = set().union(*names_read().values())
    environ = dict.fromkeys(every, "900")  # a value each app-side name could hold
    environ.update(
        {
            "TIDINGS_URL": "http://127.0.0.1:8001",
            "TIDINGS_PUBLISHER_KEY": PUBLISHER_KEY,
            "TIDINGS_SECRET": SECRET,
            "TIDINGS_PUBLISHER_KEYS": PUBLISHER_KEY,
        }
    )
    settings = Settings.from_env(environ)
    assert settings.secret == SECRET
