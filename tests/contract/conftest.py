"""The store contract fixtures: one fresh database per test, on every store."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pymongo import MongoClient

from tests.conftest import service_url
from tidings.models import Clock, now_ms
from tidings.store import Store, create_store

STORES = ["sqlite", "postgres", "mongodb"]
SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "services"


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


@contextlib.contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of `kind`, dropped afterwards."""
    name = f"t_{secrets.token_hex(6)}"
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'contract.db'}"
    elif kind == "postgres":
        base = service_url("POSTGRES")
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
    import asyncio

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(sql, timeout=30)
        finally:
            await conn.close(timeout=5)

    asyncio.run(run())


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
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
    with fresh_database(request.param, tmp_path) as url:
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
