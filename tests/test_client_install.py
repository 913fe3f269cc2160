"""The app side installs without the server: tidings-client (clients/python) in a clean venv.

`pip install clients/python[django]` from the repository path into a fresh virtual environment,
then, from that environment alone, publish to a real tidings server, mint a token it accepts and
load the Django app. None of the server's dependencies may come along.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import HTTP, PUBLISHER_KEY, SECRET, Server, serving

ROOT = Path(__file__).resolve().parents[1]

# A wheel built and a fresh venv installed before the first test: started first on the workers.
pytestmark = pytest.mark.slow

# What `pip install tidings` brings and an app must not get from tidings-client.
SERVER_ONLY = {"uvicorn", "fastapi", "starlette", "aiosqlite", "asyncpg", "pymongo", "redis"}

SCRIPT = """
import json, sys
import django
from django.conf import settings

from tidings_client import Client, mint_token

url, key, secret = sys.argv[1:4]
with Client(url, key) as client:
    stored = client.publish("from-the-app", "installed without the server", kind="install")
token = mint_token(secret, "from-the-app", 60)

settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "tidings_client.django"],
    TIDINGS={"URL": url, "PUBLISHER_KEY": key, "SECRET": secret},
)
django.setup()
from django.apps import apps
from django.template import engines  # noqa: F401 (the tag library loads with the app)

from tidings_client.django import notify  # noqa: F401
try:
    import tidings  # noqa: F401
    server_package = True
except ImportError:
    server_package = False
print(json.dumps({
    "stored": stored, "token": token, "server_package": server_package,
    "app": apps.get_app_config("tidings").name,
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with tidings-client[django] installed from the repository path."""
    folder = tmp_path_factory.mktemp("client-venv")
    # No pip of its own (installing one takes seconds): the suite's pip installs into it.
    venv.create(folder)
    python = folder / "bin" / "python"
    # --no-compile: byte-compiling all of Django is seconds of CPU; the few modules the test
    # imports are compiled as they are imported, as in any environment without .pyc files.
    subprocess.run(
        [
            *pip(python),
            "install",
            "--quiet",
            "--no-compile",
            f"{ROOT / 'clients' / 'python'}[django]",
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return python


def pip(python: Path) -> list[str]:
    """The suite's pip, acting on the environment of `python`."""
    return [sys.executable, "-m", "pip", "--python", str(python)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("client-install")) as started:
        yield started


def test_the_client_distribution_brings_none_of_the_servers_dependencies(installed: Path) -> None:
    listed = subprocess.run(
        [*pip(installed), "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "tidings-client" in names
    assert "django" in names
    assert names & SERVER_ONLY == set()
    assert "tidings" not in names


def test_from_the_clean_venv_the_app_publishes_and_loads_the_django_app(
    installed: Path, server: Server
) -> None:
    ran = subprocess.run(
        [installed, "-c", SCRIPT, server.url, PUBLISHER_KEY, SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=installed.parent,  # not the repository: `tidings` must not be importable from here
    )
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["stored"]["message"] == "installed without the server"
    assert out["server_package"] is False
    assert out["app"] == "tidings_client.django"
    [listed] = server.listed("from-the-app")
    assert listed["kind"] == "install"
    # The token minted in the app's venv is one the server accepts.
    answer = HTTP.get(
        f"{server.url}/notifications/unread-count",
        headers={"authorization": f"Bearer {out['token']}"},
        timeout=10,
    )
    assert answer.status_code == 200
