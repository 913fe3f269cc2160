"""The Laravel package's PHPUnit suite (integrations/laravel/) against a real tidings.

PHPUnit runs on Debian's PHP, PHPUnit 9 and Laravel components (scripts/install-system); this
test starts tidings and a flaky hop in front of it, holds a user's stream open, runs the suite
with the app's .env names in the environment, and reads what the stream received.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_services
from tests.flaky import FlakyProxy, body_of
from tests.support import (
    PUBLISHER_KEY,
    SECRET,
    Server,
    make_token,
    open_stream,
    serving,
    tidings_env,
)

pytestmark = pytest.mark.anyio

PACKAGE = Path(__file__).resolve().parents[2] / "integrations" / "laravel"


@pytest.fixture(scope="module")
def phpunit() -> str:
    found = shutil.which("phpunit")
    if found is None or not Path("/usr/share/php/Illuminate/autoload.php").is_file():
        reason = (
            "phpunit or Laravel's components are missing: run scripts/install-system (php-cli "
            "php-curl php-sqlite3 phpunit php-laravel-framework php-guzzlehttp-guzzle)"
        )
        if require_services():
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path) as started:
        yield started


async def test_the_phpunit_suite_passes_and_the_channel_reaches_the_open_stream(
    phpunit: str, server: Server
) -> None:
    env = {
        **tidings_env("sqlite:///unused.db"),
        # The app's side of one shared .env, as config/tidings.php reads it.
        "TIDINGS_URL": server.url + "/",
        "TIDINGS_PUBLISHER_KEY": PUBLISHER_KEY,
        "TIDINGS_SECRET": SECRET,
    }
    with FlakyProxy(server.port, ["503", "drop"]) as proxy:
        env["TIDINGS_FLAKY_URL"] = proxy.url
        async with open_stream(server.url, make_token("laravel-invoice")) as stream:
            assert stream.status == 200
            result = await asyncio.to_thread(
                subprocess.run,
                [phpunit, "--colors=never"],
                cwd=PACKAGE,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            assert "OK (" in result.stdout, result.stdout
            [got] = await stream.notifications(1)
    assert got["user_id"] == "laravel-invoice"
    assert got["message"] == "Invoice #7 was paid"
    assert got["data"] == {"invoice": 7}
    # The retry test went through the hop: 503, a cut-off answer, then through; one key.
    assert proxy.connections == 3
    keys = {json.loads(body_of(request))["idempotency_key"] for request in proxy.requests}
    assert len(keys) == 1
