"""Publish throughput and replay latency per store, side by side in one run.

    eval "$(scripts/services up)"      # PostgreSQL and FerretDB; started here if not set
    .venv/bin/python -m bench.stores [--quick]

Per store (SQLite, PostgreSQL, the MongoDB-protocol server):

- `single`: notifications/s for one-user publishes through the store API, one publisher
  (sequential, so it is latency-bound) and 16 concurrent publishers over 16 users;
- `batch_10k`: one publish to 10,000 users (`user_ids`), seconds per batch and notifications/s;
- `growth`: publish cost as the store grows (issue 22, item 3): the store is filled with batch
  publishes to 1,000 users, and at each size (1,000 … `--growth-to`, 100,000 by default)
  sequential one-user publishes with an idempotency key (what an app's careful publisher sends)
  are timed: notifications/s and p50/p99 ms. Flat is right; falling means a query that scans;
- `replay_100`: a real `tidings serve` on that store; a user has 100 notifications the client
  missed; time from opening the stream with `Last-Event-ID: 0` to the 100th event parsed.

Writes bench/results/stores-<date>.json with the machine (cores, memory, kernel) and versions.
The servers are the test servers of scripts/services (PostgreSQL with synchronous_commit=off,
FerretDB v1 on SQLite): numbers compare stores on one machine, not tuned production servers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pymongo import AsyncMongoClient, MongoClient
from tests.support import Server, make_token, open_stream, tidings_env

from tidings.models import Draft
from tidings.store import Store, create_store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


SERVICES = {
    "postgres": "TIDINGS_TEST_POSTGRES_URL",
    "mongodb": "TIDINGS_TEST_MONGODB_URL",
    "redis": "TIDINGS_TEST_REDIS_URL",
}


def services_env(wanted: tuple[str, ...] = ("postgres", "mongodb")) -> dict[str, str]:
    """The test servers' URLs, starting them with scripts/services when they are not set."""
    names = {k: SERVICES[k] for k in wanted}
    found = {k: os.environ[v] for k, v in names.items() if os.environ.get(v)}
    if len(found) < len(names):
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "services"), "up", *wanted],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        ).stdout
        for line in out.splitlines():
            key, _, url = line.removeprefix("export ").partition("=")
            for name, variable in names.items():
                if key == variable:
                    found.setdefault(name, url)
    return found


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextmanager
def fresh(kind: str, base: str | None, folder: Path) -> Iterator[str]:
    name = f"bench_{secrets.token_hex(4)}"
    if kind == "sqlite":
        yield f"sqlite:///{folder / (name + '.db')}"
        return
    assert base is not None
    if kind == "postgres":
        asyncio.run(pg_admin(base, f'CREATE DATABASE "{name}"'))
        try:
            yield with_db(base, name)
        finally:
            asyncio.run(pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        try:
            yield with_db(base, name)
        finally:
            client: MongoClient[dict[str, Any]] = MongoClient(base, serverSelectionTimeoutMS=5000)
            with client:
                client.drop_database(name)


async def pg_admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql, timeout=60)
    finally:
        await conn.close(timeout=5)


async def measure_single(store: Store, count: int) -> dict[str, float]:
    began = time.perf_counter()
    for i in range(count):
        await store.add(Draft(user_ids=("solo",), message=f"n{i}"))
    sequential = count / (time.perf_counter() - began)

    async def publisher(user: str, n: int) -> None:
        for i in range(n):
            await store.add(Draft(user_ids=(user,), message=f"n{i}"))

    began = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for p in range(16):
            tg.create_task(publisher(f"c{p}", count // 16))
    concurrent = (count // 16) * 16 / (time.perf_counter() - began)
    return {"sequential_per_s": round(sequential, 1), "concurrent16_per_s": round(concurrent, 1)}


async def measure_batch(store: Store, repeats: int) -> dict[str, Any]:
    users = tuple(f"b{i}" for i in range(10_000))
    times = []
    for r in range(repeats):
        began = time.perf_counter()
        await store.add(Draft(user_ids=users, message=f"broadcast {r}"))
        times.append(time.perf_counter() - began)
    return {
        "seconds": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3),
        "notifications_per_s": round(10_000 / statistics.median(times), 1),
    }


GROWTH_USERS = tuple(f"g{i}" for i in range(1_000))


def growth_sizes(top: int) -> list[int]:
    sizes = [1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
    return [s for s in sizes if s < top] + [top]


async def measure_growth(store: Store, top: int, probes: int) -> list[dict[str, Any]]:
    """Publish cost at each store size up to `top` notifications."""
    rows: list[dict[str, Any]] = []
    stored = 0
    for size in growth_sizes(top):
        while stored < size - probes:
            count = min(len(GROWTH_USERS), size - probes - stored)
            key = f"fill-{stored}"
            await store.add(Draft(user_ids=GROWTH_USERS[:count], message="fill"), key)
            stored += count
        took: list[float] = []
        for i in range(probes):
            draft = Draft(user_ids=(GROWTH_USERS[i % len(GROWTH_USERS)],), message=f"p{i}")
            began = time.perf_counter()
            await store.add(draft, f"probe-{size}-{i}")
            took.append(time.perf_counter() - began)
        stored += probes
        took.sort()
        rows.append(
            {
                "notifications": stored,
                "per_s": round(probes / sum(took), 1),
                "p50_ms": round(took[len(took) // 2] * 1000, 2),
                "p99_ms": round(took[min(len(took) - 1, int(len(took) * 0.99))] * 1000, 2),
            }
        )
        print(f"  growth {rows[-1]}", file=sys.stderr, flush=True)
    return rows


async def growth_part(url: str, top: int, probes: int) -> list[dict[str, Any]]:
    store = create_store(url)
    await store.open()
    try:
        return await measure_growth(store, top, probes)
    finally:
        await store.close()


async def store_part(url: str, single: int, batches: int) -> dict[str, Any]:
    store = create_store(url)
    await store.open()
    try:
        return {
            "single": await measure_single(store, single),
            "batch_10k": await measure_batch(store, batches),
        }
    finally:
        await store.close()


async def replay_part(url: str, folder: Path, rounds: int) -> dict[str, Any]:
    server = Server(env=tidings_env(url), log_path=folder / f"serve-{secrets.token_hex(3)}.log")
    server.start()
    try:
        times = []
        for r in range(rounds):
            user = f"replay{r}"
            for i in range(100):
                response = await asyncio.to_thread(server.publish, user, f"missed {i}")
                response.raise_for_status()
            began = time.perf_counter()
            async with open_stream(server.url, make_token(user), last_event_id="0") as stream:
                got = await stream.notifications(100, timeout=30)
                times.append(time.perf_counter() - began)
            assert [n["id"] for n in got] == list(range(1, 101))
    finally:
        server.close()
    ms = sorted(t * 1000 for t in times)
    return {
        "rounds": rounds,
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 1),
        "max_ms": round(ms[-1], 1),
    }


async def server_versions(urls: dict[str, str]) -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "asyncpg": version("asyncpg"),
        "pymongo": version("pymongo"),
    }
    if "postgres" in urls:
        conn = await asyncpg.connect(urls["postgres"], timeout=10)
        try:
            found["postgresql"] = str(await conn.fetchval("SHOW server_version"))
            found["postgresql_synchronous_commit"] = str(
                await conn.fetchval("SHOW synchronous_commit")
            )
        finally:
            await conn.close()
    if "mongodb" in urls:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            urls["mongodb"], serverSelectionTimeoutMS=5000
        )
        try:
            info = await client.admin.command("buildInfo")
            found["mongodb_protocol"] = str(info.get("version"))
            if "ferretdbVersion" in info:
                found["ferretdb"] = str(info["ferretdbVersion"])
        finally:
            await client.close()
    return found


def machine() -> dict[str, Any]:
    memory = ""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = line.split(":", 1)[1].strip()
    return {
        "cores": os.cpu_count(),
        "memory": memory,
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
        "note": "a shared machine: other work ran on the same 2 cores",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations")
    parser.add_argument(
        "--growth-to",
        type=int,
        default=None,
        help="the store size the growth row ends at (default 100,000; 10,000 with --quick)",
    )
    parser.add_argument("--only", choices=("sqlite", "postgres", "mongodb"), action="append")
    parser.add_argument("--growth-only", action="store_true", help="only the growth row")
    args = parser.parse_args()
    growth_to = args.growth_to or (10_000 if args.quick else 100_000)
    single, batches, rounds = (160, 1, 5) if args.quick else (800, 3, 20)
    urls = services_env()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tidings-bench-stores-") as tmp:
        folder = Path(tmp)
        for kind in args.only or ("sqlite", "postgres", "mongodb"):
            if kind != "sqlite" and kind not in urls:
                results[kind] = {"skipped": f"no {kind} server (scripts/services up)"}
                continue
            print(f"{kind} …", file=sys.stderr, flush=True)
            # FerretDB on SQLite manages ~25 publishes/s: a protocol check, so a short one.
            counts = (single // 20, 1, 3) if kind == "mongodb" else (single, batches, rounds)
            part: dict[str, Any] = {}
            if not args.growth_only:
                with fresh(kind, urls.get(kind), folder) as url:
                    part = asyncio.run(store_part(url, counts[0], counts[1]))
                with fresh(kind, urls.get(kind), folder) as url:
                    part["replay_100"] = asyncio.run(replay_part(url, folder, counts[2]))
            with fresh(kind, urls.get(kind), folder) as url:
                part["growth"] = asyncio.run(growth_part(url, growth_to, 200))
            results[kind] = part
    report = {
        "command": "python -m bench.stores " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": asyncio.run(server_versions(urls)),
        "stores": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"stores-{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {out.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
