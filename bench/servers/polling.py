"""The design tidings replaces, ported faithfully to Python on the same stack (uvicorn, raw ASGI).

shared/seed/000: a Notification observer writes a cache row `user.<id>.new_notification.<uniqid>`
(expiring in 600 s) for every notification; each open stream loops forever: scan the cache table
for its user's key prefix, `Cache::pull` each key (read, then delete), write it as an SSE event,
`sleep(2)`. The cache is Laravel's database store on SQLite (`cache(key, value, expiration)`).

`BENCH_POLLING_LIKE=index` (the default) runs the prefix scan with `case_sensitive_like` on, so
SQLite answers it from the primary-key index (the kindest reading of the original, as MySQL would);
`naive` keeps SQLite's default case-insensitive LIKE, which scans the whole table (perf-notes
trap 7).
One blocking query at a time, as the PHP worker did, but without a PHP worker per stream.

Run: `python -m uvicorn bench.servers.polling:app --loop uvloop --http httptools`
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sqlite3
import time
from typing import Any

import jwt

DB_PATH = os.environ.get("BENCH_POLLING_DB", "polling.db")
SECRET = os.environ.get("TIDINGS_SECRET", "")
KEYS = set(filter(None, os.environ.get("TIDINGS_PUBLISHER_KEYS", "").split(",")))
LIKE = os.environ.get("BENCH_POLLING_LIKE", "index")
PREFIX = "laravel_cache_"
POLL_SECONDS = 2.0
TTL = 600

_uniq = itertools.count()
queries = {"poll": 0, "pull": 0, "write": 0}
sent = {"frames": 0, "streams": 0, "aborted_before_send": 0}
_db: sqlite3.Connection | None = None


def db() -> sqlite3.Connection:
    global _db
    if _db is None:
        _db = sqlite3.connect(DB_PATH, isolation_level=None, check_same_thread=False)
        _db.execute("PRAGMA journal_mode=WAL")
        _db.execute("PRAGMA busy_timeout=5000")
        _db.execute("PRAGMA synchronous=NORMAL")
        if LIKE == "index":
            _db.execute("PRAGMA case_sensitive_like=ON")
        _db.execute(
            "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
            " expiration INTEGER NOT NULL)"
        )
        _db.execute(
            "CREATE TABLE IF NOT EXISTS notifications (id INTEGER PRIMARY KEY, user_id TEXT,"
            " message TEXT, link TEXT, data TEXT, read_at TEXT, created_at TEXT)"
        )
    return _db


def uniqid() -> str:
    return f"{time.time_ns() // 1000:x}{os.getpid() % 4096:03x}{next(_uniq):x}"


def observe_created(conn: sqlite3.Connection, note: dict[str, Any]) -> None:
    """NotificationObserver::created — one cache entry per notification."""
    key = f"{PREFIX}user.{note['user_id']}.new_notification.{uniqid()}"
    conn.execute(
        "INSERT OR REPLACE INTO cache (key, value, expiration) VALUES (?, ?, ?)",
        (key, json.dumps(note, separators=(",", ":")), int(time.time()) + TTL),
    )
    queries["write"] += 1


def cache_pull(conn: sqlite3.Connection, key: str) -> str | None:
    """Cache::pull — get (honouring expiry), then forget."""
    row = conn.execute(
        "SELECT value FROM cache WHERE key = ? AND expiration > ?", (key, int(time.time()))
    ).fetchone()
    conn.execute("DELETE FROM cache WHERE key = ?", (key,))
    queries["pull"] += 2
    return row[0] if row else None


async def _respond(send: Any, status: int, body: bytes, ctype: bytes = b"application/json") -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    _scheme, _, token = _header(scope, b"authorization").partition(" ")
    try:
        user = str(jwt.decode(token, SECRET, algorithms=["HS256"])["sub"])
    except (jwt.InvalidTokenError, KeyError):
        await _respond(send, 401, b'{"error":"unauthorized"}')
        return
    aborted = False

    async def watch() -> None:
        nonlocal aborted
        while (await receive())["type"] != "http.disconnect":
            pass
        aborted = True

    watcher = asyncio.get_running_loop().create_task(watch())
    headers = [
        (b"content-type", b"text/event-stream"),
        (b"x-accel-buffering", b"no"),
        (b"cache-control", b"no-cache"),
    ]
    conn = db()
    sent["streams"] += 1
    pattern = f"{PREFIX}user.{user}.new_notification.%"
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        while True:
            if aborted:  # connection_aborted()
                break
            keys = [
                r[0] for r in conn.execute("SELECT key FROM cache WHERE key LIKE ?", (pattern,))
            ]
            queries["poll"] += 1
            for key in keys:
                value = cache_pull(conn, key)
                if value:
                    sent["frames"] += 1
                    if aborted:
                        sent["aborted_before_send"] += 1
                    frame = f"event: new-notification\nid: {uniqid()}\ndata: {value}\n\n"
                    await send(
                        {"type": "http.response.body", "body": frame.encode(), "more_body": True}
                    )
            await asyncio.sleep(POLL_SECONDS)
    finally:
        watcher.cancel()


async def publish(scope: dict[str, Any], receive: Any, send: Any) -> None:
    _scheme, _, key = _header(scope, b"authorization").partition(" ")
    if key not in KEYS:
        await _respond(send, 401, b'{"error":"unauthorized"}')
        return
    raw = b""
    while True:
        msg = await receive()
        raw += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    body = json.loads(raw)
    targets = body.get("user_ids") or [body["user_id"]]
    conn = db()
    out = []
    conn.execute("BEGIN IMMEDIATE")
    for user in targets:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        data = body.get("data") or {}
        cur = conn.execute(
            "INSERT INTO notifications (user_id, message, link, data, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (str(user), body["message"], body.get("link"), json.dumps(data), created),
        )
        queries["write"] += 1
        note = {
            "_id": cur.lastrowid,
            "user_id": str(user),
            "message": body["message"],
            "link": body.get("link"),
            "data": data,
            "read_at": None,
            "created_at": created,
        }
        observe_created(conn, note)
        out.append({"_id": cur.lastrowid, "user_id": str(user)})
    conn.execute("COMMIT")
    await _respond(send, 201, json.dumps(out).encode())


def metrics() -> bytes:
    lines = [f'tidings_store_queries_total{{op="{op}"}} {n}' for op, n in queries.items()]
    lines += [f"bench_polling_{name} {n}" for name, n in sent.items()]
    return ("\n".join(lines) + "\n").encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                db()
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/notifications/stream":
        await stream(scope, receive, send)
    elif path == "/api/notifications" and scope["method"] == "POST":
        await publish(scope, receive, send)
    elif path == "/metrics":
        await _respond(send, 200, metrics(), b"text/plain")
    elif path == "/healthz":
        await _respond(send, 200, b'{"ok":true}')
    else:
        await _respond(send, 404, b'{"error":"not_found"}')
