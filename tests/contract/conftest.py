"""The store contract fixtures: one fresh database per test, on every store.

A fresh PostgreSQL or SQLite database is a copy of one migrated once per test process (CREATE
DATABASE … TEMPLATE; a file copy): the schema steps run once, not in every test. The schema steps
themselves are tested on empty databases (test_migration.py asks for `migrated=False`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pymongo import MongoClient

from tests.conftest import service_url
from tidings.clock import Clock, now_ms
from tidings.store import Store, create_store, memory

# The databases (what the schema steps and the served tests run on) ...
STORES = ["sqlite", "postgres", "mongodb"]
# ... and every store the contract holds: the in-memory one too, so it cannot drift.
CONTRACT_STORES = [*STORES, "memory"]
SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "services"


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


# Per test process: kind -> the migrated database fresh ones are copied from.
_templates: dict[str, str] = {}


def _migrated_template(kind: str, base: str) -> str:
    """The migrated database of `kind` (made on first use): a SQLite file path, or the name of
    a PostgreSQL database on `base`'s server."""
    if kind not in _templates:
        if kind == "sqlite":
            folder = Path(tempfile.mkdtemp(prefix="tidings-template-"))
            atexit.register(shutil.rmtree, folder, True)
            template = str(folder / "template.db")
            url = f"sqlite:///{template}"
        else:
            template = f"t_template_{secrets.token_hex(6)}"
            _pg_admin(base, f'CREATE DATABASE "{template}"')
            atexit.register(_pg_drop_quietly, base, template)
            url = _with_path(base, f"/{template}")

        async def migrate() -> None:
            store = create_store(url)
            await store.open()
            await store.close()

        asyncio.run(migrate())
        _templates[kind] = template
    return _templates[kind]


def _pg_drop_quietly(base: str, name: str) -> None:
    with contextlib.suppress(Exception):
        _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_create_from(base: str, name: str, template: str) -> None:
    # The template's last connection may still be ending (asyncpg does not wait for the server):
    # PostgreSQL refuses to copy a database someone is connected to.
    deadline = time.monotonic() + 10
    while True:
        try:
            _pg_admin(base, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        except asyncpg.ObjectInUseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def fresh_database(kind: str, tmp_path: Path, *, migrated: bool = False) -> Iterator[str]:
    """The URL of a new database of `kind`, dropped afterwards: empty, or with `migrated` at
    the current schema (copied from a template; MongoDB's is empty either way, it has no copy)."""
    name = f"t_{secrets.token_hex(6)}"
    if kind == "memory":
        try:
            yield f"memory://{name}"
        finally:
            memory.drop(name)
    elif kind == "sqlite":
        path = tmp_path / "contract.db"
        if migrated:
            shutil.copyfile(_migrated_template(kind, ""), path)
        yield f"sqlite:///{path}"
    elif kind == "postgres":
        base = service_url("POSTGRES")
        if migrated:
            _pg_create_from(base, name, _migrated_template(kind, base))
        else:
            _pg_admin(base, f'CREATE DATABASE "{name}"')
        try:
            yield _with_path(base, f"/{name}")
        finally:
            _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    elif kind == "mongodb":
        base = service_url("MONGODB")
        try:
            yield _with_path(base, f"/{name}")
        finally:
            client: MongoClient[dict[str, object]] = MongoClient(
                base, serverSelectionTimeoutMS=5000
            )
            with client:
                client.drop_database(name)
    else:
        raise ValueError(kind)


def _pg_admin(url: str, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(sql, timeout=30)
        finally:
            await conn.close(timeout=5)

    asyncio.run(run())


@pytest.fixture(params=CONTRACT_STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database of each store, at the current schema (as a store's first open leaves it)."""
    with fresh_database(request.param, tmp_path, migrated=True) as url:
        yield url


@pytest.fixture
def clock() -> Clock:
    """The store's clock, stopped at the present: a test advances it instead of sleeping."""
    return Clock(now_ms())


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[Store]:
    opened = create_store(store_url, clock=clock)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=STORES)
def served_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each store, for a `tidings serve` to run on."""
    with fresh_database(request.param, tmp_path, migrated=True) as url:
        yield url


def services(state: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SERVICES), "--state", str(state), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    service_url("POSTGRES")  # skip (or fail under CI) exactly when the shared one is missing
    state = tmp_path / "services"
    out = services(state, "up", "postgres")
    url = out.strip().partition("=")[2]
    assert url.startswith("postgresql://"), out
    try:
        yield url, state
    finally:
        services(state, "down")
