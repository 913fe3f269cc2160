"""SQLite store: the embedded default, one file in WAL mode.

Writes run on a thread of their own (a writer may wait for the database lock held by another
process, e.g. `tidings send`), a whole transaction per hop. Publishes that arrive while a
transaction runs are committed together in the next one (group commit): under load that turns a
thread hop and a commit per publish into one per batch. Writers take the lock with
`BEGIN IMMEDIATE` (or, for a publish or batch written as one statement in autocommit, when that
statement starts) before reading a user's last seq, so seq order is commit order, also across
processes.

Reads run inline on the event loop: in WAL mode a reader never waits for a writer, and an indexed
read of a few rows takes microseconds, far less than a hop to a thread and back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tidings.clock import Clock
from tidings.models import (
    Draft,
    Due,
    EmailClaim,
    Notification,
    Position,
    Preferences,
    PushSubscription,
    Scheduled,
    Snooze,
    Stored,
    UserRecord,
    one_line_json,
)
from tidings.store import sql
from tidings.store.base import StoreUnavailable, Subscribed
from tidings.store.common import (
    CANCELLED,
    COLUMNS,
    DELIVERED,
    FEATURES,
    PENDING,
    PUSH_COLUMNS,
    SCHEMA_VERSION,
    WOKEN,
    OrderStamps,
    Step,
    by_key,
    by_skip,
    check_fingerprint,
    check_schema,
    chunks,
    decode_preferences,
    due,
    encode_data,
    encode_draft,
    encode_preferences,
    features_of,
    inbox_values,
    made,
    notification,
    pending_steps,
    push_subscription,
    used_now,
)

__all__ = ["SqliteStore"]

T = TypeVar("T")

log = logging.getLogger("tidings.store.sqlite")

BUSY_TIMEOUT_MS = 10_000
# Reads never wait for writers in WAL mode; this only covers a checkpoint's brief exclusive moment.
READ_BUSY_TIMEOUT_MS = 250
# Publishes committed in one transaction at most, so one batch never holds the lock for long.
MAX_BATCH = 256
# SQLite's default limit on bound parameters is 32766; stay well below it.
IN_CHUNK = 500
# Users in one publish from which `_add_bulk`'s two set-based statements replace a bound row per
# user (measured: at 10,000 users the row path costs several times the CPU).
BULK_MIN = 32
# Decoded catch-up rows kept for reuse (`_replayed`); all dropped at once when full.
TEMPLATES = 1024
# The commit window is waited only when the previous commit ended less than this many windows ago.
BUSY_GAP = 10

# `PRAGMA synchronous` levels offered (TIDINGS_SQLITE_SYNCHRONOUS). In WAL mode NORMAL survives a
# process crash but an OS crash or power cut can lose the newest commits; FULL syncs the WAL on
# every commit (one fsync per group-committed batch), so an acknowledged publish survives both.
SYNCHRONOUS = ("NORMAL", "FULL")
# What `after` adds, the shared rule (`sql.live`: not expired, not snoozed) spelled once here
# for the replay's hot path; its one parameter is now.
LIVE = sql.live(sql.Statement(sql.SQLITE), 0)

# (feature, version) -> the step that reaches it from the feature's version before
# (`common.FEATURES`).
MIGRATIONS: dict[Step, str] = {
    ("log", 1): """
CREATE TABLE IF NOT EXISTS users (
    user_id     TEXT PRIMARY KEY,
    last_seq    INTEGER NOT NULL,
    pruned_upto INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notifications (
    user_id    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    message    TEXT NOT NULL,
    link       TEXT,
    kind       TEXT,
    data       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    read_ms    INTEGER,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notifications_unread
    ON notifications (user_id, seq) WHERE read_ms IS NULL;
CREATE INDEX IF NOT EXISTS notifications_created ON notifications (created_ms);
CREATE TABLE IF NOT EXISTS idempotency (
    key        TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    refs       TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_ms);
""",
    ("log", 2): "ALTER TABLE idempotency ADD COLUMN fingerprint TEXT;",
    ("inbox", 1): """
ALTER TABLE notifications ADD COLUMN category TEXT;
ALTER TABLE notifications ADD COLUMN actor TEXT;
ALTER TABLE notifications ADD COLUMN actions TEXT;
ALTER TABLE notifications ADD COLUMN grp TEXT;
ALTER TABLE notifications ADD COLUMN expires_ms INTEGER;
ALTER TABLE notifications ADD COLUMN seen_ms INTEGER;
ALTER TABLE notifications ADD COLUMN archived_ms INTEGER;
CREATE TABLE IF NOT EXISTS preferences (
    user_id  TEXT PRIMARY KEY,
    muted    TEXT NOT NULL,
    channels TEXT NOT NULL
) WITHOUT ROWID;
""",
    ("scheduling", 1): """
CREATE TABLE IF NOT EXISTS scheduled (
    key         TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    deliver_ms  INTEGER NOT NULL,
    draft       TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    lease_until INTEGER NOT NULL DEFAULT 0,
    done_ms     INTEGER,
    PRIMARY KEY (key, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled (deliver_ms) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS scheduled_done ON scheduled (done_ms) WHERE done_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS notifications_expires
    ON notifications (expires_ms) WHERE expires_ms IS NOT NULL;
""",
    ("push", 1): """
CREATE TABLE IF NOT EXISTS push_subscriptions (
    endpoint    TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    p256dh      TEXT NOT NULL,
    auth        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    done_seq    INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    retry_ms    INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS push_subscriptions_user ON push_subscriptions (user_id);
CREATE TABLE IF NOT EXISTS push_presence (
    user_id   TEXT NOT NULL,
    node_id   TEXT NOT NULL,
    closed_ms INTEGER,
    PRIMARY KEY (user_id, node_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS push_presence_node ON push_presence (node_id);
CREATE TABLE IF NOT EXISTS push_nodes (
    node_id  TEXT PRIMARY KEY,
    alive_ms INTEGER NOT NULL
) WITHOUT ROWID;
""",
    ("email", 1): """
CREATE TABLE IF NOT EXISTS email_users (
    user_id     TEXT PRIMARY KEY,
    email       TEXT,
    updated_ms  INTEGER NOT NULL,
    done_seq    INTEGER NOT NULL DEFAULT 0,
    claimed_seq INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    next_ms     INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
""",
    ("snooze", 1): """
ALTER TABLE notifications ADD COLUMN snoozed_ms INTEGER;
ALTER TABLE notifications ADD COLUMN snooze_lease INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS notifications_snoozed
    ON notifications (snoozed_ms) WHERE snoozed_ms IS NOT NULL;
""",
}


class _Connection:
    """One sqlite3 connection, used only from its own thread.

    The thread takes work from a `queue.SimpleQueue` (C: a put is one lock release, a get one
    wait) rather than a `ThreadPoolExecutor`, whose `submit` builds a future and a work item and
    passes two Python-level locks and a semaphore on each hand-off: at 1,000 publishes/s on a
    quiet machine nearly every publish finds the writer idle, so each pays one hand-off."""

    def __init__(
        self,
        path: str,
        name: str,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        synchronous: str = "FULL",
    ) -> None:
        self._path = path
        self._name = name
        self._synchronous = synchronous
        self._work: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        # Started on first use. A daemon: a process that exits without closing the store is not
        # held up by it (what it had not committed was not acknowledged either).
        self._thread: threading.Thread | None = None
        self._closed = False
        self._conn: sqlite3.Connection | None = None
        self._busy_timeout_ms = busy_timeout_ms

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def work() -> None:
            try:
                result = self.call(fn)
            except BaseException as exc:  # handed to the caller, as an executor would
                _answer(loop, future, None, exc)
            else:
                _answer(loop, future, result, None)

        self.submit(work)
        return await future

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on the calling thread (the inline reader uses this directly)."""
        try:
            return fn(self.connection())
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite: {exc}") from exc

    def connection(self) -> sqlite3.Connection:
        """The connection, opened on first use (on the thread that uses it)."""
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def submit(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the connection's thread, after what is queued there; nobody waits for
        it (`fn` answers its callers itself)."""
        if self._closed:
            # As an executor shut down: no connection reopened behind a closed store's back.
            raise RuntimeError("the SQLite connection is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._work.put(fn)

    def _serve(self) -> None:
        while (fn := self._work.get()) is not None:
            try:
                fn()
            except Exception:  # a submitted function answers its callers; never lose the thread
                log.exception("SQLite connection thread: unexpected error")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self._busy_timeout_ms / 1000,
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn

    async def close(self) -> None:
        def _close(_: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await self.run(_close)
        self._closed = True
        if self._thread is not None:
            # Idle by now (the close was the last thing queued): the join is immediate.
            self._work.put(None)
            self._thread.join()
            self._thread = None


def _answer(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[T],
    result: T | None,
    error: BaseException | None,
) -> None:
    """From the connection's thread: settle `future` on its loop (unless the caller left)."""

    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(settle)


class _Inline:
    """The reader: one connection used on the event loop's own thread."""

    def __init__(self, path: str) -> None:
        self._conn = _Connection(path, "tidings-sqlite-r", READ_BUSY_TIMEOUT_MS)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._conn.call(fn)

    async def close(self) -> None:
        await self._conn.close()


_Pending = tuple[Draft, "str | None", "asyncio.Future[Stored]"]


def _settle(batch: list[_Pending], outcomes: Sequence[Stored | BaseException]) -> None:
    """On the loop: answer the publishes of one committed batch."""
    for (_, _, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue  # the caller went away; what was committed stays committed
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class SqliteStore(sql.SqlQueries):
    # The operations that are one shared statement come from `sql.SqlQueries`, in this spelling.
    dialect = sql.SQLITE
    in_chunk = IN_CHUNK

    def __init__(
        self,
        path: str,
        *,
        clock: Clock | None = None,
        synchronous: str = "FULL",
        commit_window_ms: float = 0.0,
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, not {synchronous!r}")
        if commit_window_ms < 0:
            raise ValueError(f"commit_window_ms must be ≥ 0, not {commit_window_ms!r}")
        self.path = path
        self._window = commit_window_ms / 1000
        self._last_flush = -math.inf
        self.clock = clock or Clock()
        self._writer = _Connection(path, "tidings-sqlite-w", synchronous=synchronous)
        self._reader = _Inline(path)
        # Catch-up rows alike but for user and seq -> (the decoded fields, the line after the
        # user id); see `_replayed`.
        self._templates: dict[tuple[Any, ...], tuple[dict[str, Any], str | None]] = {}
        # Publishes waiting for the writer thread, and whether it is flushing them (it clears
        # the flag under the lock when it finds nothing left, so none is ever stranded).
        self._pending: collections.deque[_Pending] = collections.deque()
        self._lock = threading.Lock()
        self._flushing = False
        # Whether this SQLite returns what the one-statement writes stored (`_publish_views`).
        self._one_statement = False
        # Set while open: the loop the writer thread answers publishes on.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._order = OrderStamps()

    async def open(self) -> None:
        parent = Path(self.path).parent
        if not parent.is_dir():
            raise StoreUnavailable(f"SQLite: folder {str(parent)!r} does not exist")
        await self._writer.run(_migrate)
        self._one_statement = await self._writer.run(_publish_views)
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        # No new publishes; those queued are committed and answered first (the writer thread
        # finishes its queue before it closes the connection).
        self._loop = None
        await self._writer.close()
        await self._reader.close()

    async def ping(self) -> None:
        await self._reader.run(lambda c: c.execute("SELECT 1").fetchone())

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        if self._loop is None:
            raise StoreUnavailable("SQLite: the store is not open")
        future: asyncio.Future[Stored] = self._loop.create_future()
        with self._lock:
            self._pending.append((draft, idempotency_key, future))
            # While the writer thread is at work it looks again before it rests: this publish
            # joins its next commit, with no wake-up of anything.
            start = not self._flushing
            self._flushing = True
        if start:
            self._writer.submit(functools.partial(self._flush, self._loop))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the writer thread: commit what is pending, batch after batch, until nothing is.

        Group commit without the loop: publishes that arrive while a commit (and its fsync)
        runs wait in `_pending` and go into the next one, and each batch wakes the loop once
        (`_settle`) to answer all its callers, whatever its size."""
        while True:
            # TIDINGS_SQLITE_COMMIT_WINDOW_MS: under a steady stream of publishes (the previous
            # commit ended less than BUSY_GAP windows ago) wait the window for more to join this
            # commit. A lone publish after a quiet spell is committed at once.
            if (
                self._window
                and len(self._pending) < MAX_BATCH
                and time.monotonic() - self._last_flush < BUSY_GAP * self._window
            ):
                time.sleep(self._window)
            with self._lock:
                if not self._pending:
                    self._flushing = False
                    return
                batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
            work = [(draft, key) for draft, key, _ in batch]
            outcomes: list[Stored | BaseException]
            try:
                outcomes = list(
                    _add_batch(
                        self._writer.connection(), work, self.clock.now_ms(), self._one_statement
                    )
                )
            except sqlite3.OperationalError as exc:
                outcomes = [StoreUnavailable(f"SQLite: {exc}")] * len(batch)
            except Exception as exc:
                outcomes = [exc] * len(batch)
            self._last_flush = time.monotonic()
            try:
                loop.call_soon_threadsafe(_settle, batch, outcomes)
            except RuntimeError:
                return  # the loop is closed: nobody is waiting any more

    async def _read(self, query: sql.Query) -> list[Any]:
        """Run one of the shared statements (`store/sql.py`) as a read."""
        text, params = query
        return await self._reader.run(functools.partial(_fetch_all, sql=text, params=params))

    async def _write(self, query: sql.Query) -> list[Any]:
        """Run one of the shared statements (`store/sql.py`) on the writer, as its own
        transaction."""
        text, params = query
        return await self._writer.run(functools.partial(_fetch_all, sql=text, params=params))

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        sql = (
            f"SELECT {COLUMNS} FROM notifications WHERE user_id = ? AND seq > ?{LIVE} "
            "ORDER BY seq LIMIT ?"
        )
        params = (user_id, seq, self.clock.now_ms(), limit)
        rows = await self._reader.run(lambda c: c.execute(sql, params).fetchall())
        return [self._replayed(r) for r in rows]

    def _replayed(self, row: tuple[Any, ...]) -> Notification:
        """A row read for a stream's catch-up, whose SSE line is wanted next.

        After a broadcast, or a restart that thousands of streams catch up from, the same
        notification is read for many users: rows alike but for user and seq share one decoded
        template and its encoded line, spliced per user as `made` does for a publish."""
        key = row[2:]
        found = self._templates.get(key)
        if found is None:
            n = notification(row)
            text = n.line
            head = f'{{"id":{n.seq},"user_id":{one_line_json(n.user_id)}'
            tail = text[len(head) :] if text.startswith(head) else None
            if len(self._templates) >= TEMPLATES:
                self._templates.clear()
            self._templates[key] = (dict(vars(n)), tail)
            return n
        fields, tail = found
        n = object.__new__(Notification)
        own = vars(n)
        own.update(fields)
        own["user_id"] = user_id = row[0]
        own["seq"] = seq = row[1]
        if tail is not None:
            own["line"] = f'{{"id":{seq},"user_id":{one_line_json(user_id)}{tail}'
        else:
            del own["line"]
        return n

    async def position(self, user_id: str) -> Position:
        sql = "SELECT last_seq, pruned_upto FROM users WHERE user_id = ?"
        row = await self._reader.run(lambda c: c.execute(sql, (user_id,)).fetchone())
        return Position() if row is None else Position(last_seq=row[0], pruned_upto=row[1])

    async def archive(self, user_id: str, ids: Sequence[int], archived: bool) -> list[int]:
        stamp = self.clock.now_ms() if archived else None
        state = "archived_ms IS NULL" if archived else "archived_ms IS NOT NULL"

        def _archive(c: sqlite3.Connection) -> list[int]:
            return _set_by_ids(c, "archived_ms", stamp, state, user_id, ids)

        return await self._writer.run(_archive)

    async def mark_read(
        self, user_id: str, *, ids: Sequence[int] | None = None, up_to: int | None = None
    ) -> list[int]:
        stamp = self.clock.now_ms()

        def _mark(c: sqlite3.Connection) -> list[int]:
            if up_to is not None:
                text, params = sql.mark_up_to(self.dialect, "read_ms", user_id, up_to, stamp)
                return sorted(r[0] for r in c.execute(text, params).fetchall())
            return _set_by_ids(c, "read_ms", stamp, "read_ms IS NULL", user_id, ids or ())

        return await self._writer.run(_mark)

    # -- snooze --------------------------------------------------------------------------------

    async def snooze(self, user_id: str, ids: Sequence[int], until_ms: int) -> list[int]:
        def _snooze(c: sqlite3.Connection) -> list[int]:
            # `snooze_lease` back to 0: a new time is a new claim, whoever held the old one.
            return _set_by_ids(
                c, "snoozed_ms", until_ms, "1", user_id, ids, extra=", snooze_lease = 0"
            )

        return await self._writer.run(_snooze)

    async def unsnooze(self, user_id: str, ids: Sequence[int]) -> list[Notification]:
        def _unsnooze(c: sqlite3.Connection) -> list[Notification]:
            changed = _set_by_ids(
                c, "snoozed_ms", None, "snoozed_ms IS NOT NULL", user_id, ids, extra=WOKEN
            )
            return _fetch_seqs(c, user_id, changed)

        return await self._writer.run(_unsnooze)

    async def renew_snoozed(self, claimed: Sequence[Snooze], lease_ms: int) -> int:
        until = self.clock.now_ms() + lease_ms

        def _renew(c: sqlite3.Connection) -> int:
            return sum(
                c.execute(
                    "UPDATE notifications SET snooze_lease = ? "
                    "WHERE user_id = ? AND seq = ? AND snoozed_ms = ?",
                    (until, row.user_id, row.seq, row.until_ms),
                ).rowcount
                for row in claimed
            )

        return await self._writer.run(lambda c: _transaction(c, _renew))

    async def wake_snoozed(self, claimed: Sequence[Snooze]) -> list[Notification]:
        def _wake(c: sqlite3.Connection) -> list[Notification]:
            woken: list[Notification] = []
            for row in claimed:
                # Only the snooze that was claimed: one the user changed or ended meanwhile
                # is theirs, not this claim's.
                found = c.execute(
                    f"UPDATE notifications SET snoozed_ms = NULL{WOKEN} "
                    "WHERE user_id = ? AND seq = ? AND snoozed_ms = ? "
                    f"RETURNING {COLUMNS}",
                    (row.user_id, row.seq, row.until_ms),
                ).fetchone()
                if found is not None:
                    woken.append(notification(found))
            return woken

        return await self._writer.run(lambda c: _transaction(c, _wake))

    async def preferences(self, user_id: str) -> Preferences:
        sql = "SELECT muted, channels FROM preferences WHERE user_id = ?"
        row = await self._reader.run(lambda c: c.execute(sql, (user_id,)).fetchone())
        return Preferences() if row is None else decode_preferences(row[0], row[1])

    async def set_preferences(self, user_id: str, preferences: Preferences) -> None:
        sql = (
            "INSERT INTO preferences (user_id, muted, channels) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET muted = excluded.muted, "
            "channels = excluded.channels"
        )
        values = (user_id, *encode_preferences(preferences))
        await self._writer.run(lambda c: c.execute(sql, values))

    async def muting(self, user_ids: Sequence[str], category: str) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(list(user_ids), IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            # Only users with a muted category have a non-empty list; the rest is filtered here.
            sql = (
                f"SELECT user_id, muted FROM preferences WHERE user_id IN ({marks}) "
                "AND muted != '[]'"
            )
            rows = await self._reader.run(functools.partial(_fetch_all, sql=sql, params=chunk))
            found.update(r[0] for r in rows if category in json.loads(r[1]))
        return found

    async def delete(self, user_id: str, seq: int) -> bool:
        sql = "DELETE FROM notifications WHERE user_id = ? AND seq = ?"
        count = await self._writer.run(lambda c: c.execute(sql, (user_id, seq)).rowcount)
        return bool(count)

    async def prune(self, older_than_ms: int, batch: int) -> int:
        return await self._writer.run(lambda c: _prune(c, older_than_ms, batch))

    # --- scheduled notifications (deliver_at) and expiry ------------------------------------

    async def schedule(self, draft: Draft, key: str) -> Scheduled | None:
        stamp = self.clock.now_ms()
        order = self._order.next(stamp)
        return await self._writer.run(
            lambda c: _transaction(c, _schedule, draft, key, stamp, order)
        )

    async def claim_due(self, lease_ms: int, limit: int) -> list[Due]:
        # One statement: SQLite runs it as one transaction under the write lock, so two
        # processes never claim the same row.
        query = sql.claim(self.dialect, sql.SCHEDULED, self.clock.now_ms(), lease_ms, limit)
        rows = await self._write(query)
        rows.sort(key=lambda r: (r[2], r[4], r[0]))
        return [due(r[0], r[1], r[2], r[3]) for r in rows]

    async def deliver(self, rows: Sequence[Due]) -> list[Stored]:
        stamp = self.clock.now_ms()
        return await self._writer.run(lambda c: _transaction(c, _deliver, rows, stamp))

    async def renew_due(self, rows: Sequence[Due], lease_ms: int) -> int:
        until = self.clock.now_ms() + lease_ms

        def _renew(c: sqlite3.Connection) -> int:
            count = 0
            for group in by_key(rows):
                for chunk in chunks([r.user_id for r in group], IN_CHUNK):
                    marks = ",".join("?" * len(chunk))
                    count += c.execute(
                        f"UPDATE scheduled SET lease_until = ? WHERE key = ? AND state = ? "
                        f"AND user_id IN ({marks})",
                        (until, group[0].key, PENDING, *chunk),
                    ).rowcount
            return count

        return await self._writer.run(lambda c: _transaction(c, _renew))

    async def cancel_scheduled(self, key: str) -> tuple[int, tuple[str, ...]]:
        stamp = self.clock.now_ms()
        return await self._writer.run(lambda c: _transaction(c, _cancel, key, stamp))

    async def next_due(self) -> int | None:
        sql = "SELECT min(deliver_ms) FROM scheduled WHERE state = 'pending'"
        row = await self._reader.run(lambda c: c.execute(sql).fetchone())
        return None if row[0] is None else int(row[0])

    async def delivered_between(self, after_ms: int, upto_ms: int, limit: int) -> list[str]:
        # The partial index on done_ms finds them.
        sql = (
            "SELECT DISTINCT user_id FROM scheduled WHERE done_ms > ? AND done_ms <= ? "
            "AND state = 'delivered' LIMIT ?"
        )
        params = (after_ms, upto_ms, limit)
        rows = await self._reader.run(lambda c: c.execute(sql, params).fetchall())
        return [r[0] for r in rows]

    # -- the email digest -------------------------------------------------------------------------

    async def user(self, user_id: str) -> UserRecord | None:
        sql = "SELECT user_id, email, updated_ms FROM email_users WHERE user_id = ?"
        row = await self._reader.run(lambda c: c.execute(sql, (user_id,)).fetchone())
        return None if row is None else UserRecord(*row)

    async def set_user_email(self, user_id: str, email: str | None) -> UserRecord:
        stamp = self.clock.now_ms()
        return await self._writer.run(lambda c: _set_user_email(c, user_id, email, stamp))

    async def email_due(self, after_ms: int, limit: int) -> list[str]:
        now = self.clock.now_ms()
        sql = (
            # Users with nothing new since their cursor are ruled out by comparing two
            # numbers, before any look at their notifications.
            "SELECT e.user_id FROM email_users AS e JOIN users AS u ON u.user_id = e.user_id "
            "WHERE e.email IS NOT NULL AND e.lease_until <= ? AND e.next_ms <= ? "
            "AND (e.claimed_seq > e.done_seq OR (u.last_seq > e.done_seq AND "
            "EXISTS (SELECT 1 FROM notifications AS n WHERE n.user_id = e.user_id "
            "AND n.seq > e.done_seq AND n.created_ms <= ?))) ORDER BY e.next_ms LIMIT ?"
        )
        params = (now, now, now - after_ms, limit)
        rows = await self._reader.run(functools.partial(_fetch_all, sql=sql, params=params))
        return [r[0] for r in rows]

    async def claim_email(
        self, user_id: str, owner: str, after_ms: int, lease_ms: int
    ) -> EmailClaim | None:
        now = self.clock.now_ms()
        claim = functools.partial(
            _claim_email,
            user_id=user_id,
            owner=owner,
            now=now,
            after_ms=after_ms,
            lease_ms=lease_ms,
        )
        return await self._writer.run(claim)

    async def finish_email(self, claim: EmailClaim, next_ms: int) -> bool:
        sql = (
            "UPDATE email_users SET done_seq = max(done_seq, ?), claimed_seq = max(done_seq, ?), "
            "lease_owner = NULL, lease_until = 0, next_ms = ?, attempts = 0 "
            "WHERE user_id = ? AND lease_owner = ?"
        )
        values = (claim.claimed_seq, claim.claimed_seq, next_ms, claim.user_id, claim.owner)
        return bool(await self._writer.run(lambda c: c.execute(sql, values).rowcount))

    async def release_email(self, claim: EmailClaim, next_ms: int, *, keep_claim: bool) -> bool:
        sql = (
            "UPDATE email_users SET lease_owner = NULL, lease_until = 0, next_ms = ?, "
            "attempts = attempts + 1, claimed_seq = CASE WHEN ? THEN claimed_seq ELSE done_seq END "
            "WHERE user_id = ? AND lease_owner = ?"
        )
        values = (next_ms, keep_claim, claim.user_id, claim.owner)
        return bool(await self._writer.run(lambda c: c.execute(sql, values).rowcount))

    # --- Web Push (issue 11) ------------------------------------------------------------------

    async def add_push_subscription(self, sub: PushSubscription, limit: int) -> Subscribed:
        stamp = self.clock.now_ms()

        return await self._writer.run(
            lambda c: _transaction(c, _add_subscription, sub, limit, stamp)
        )

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> bool:
        sql = "DELETE FROM push_subscriptions WHERE endpoint = ? AND user_id = ?"
        count = await self._writer.run(lambda c: c.execute(sql, (endpoint, user_id)).rowcount)
        return bool(count)

    async def push_subscriptions(self, user_id: str) -> list[PushSubscription]:
        sql = (
            f"SELECT {PUSH_COLUMNS} FROM push_subscriptions WHERE user_id = ? "
            "ORDER BY created_ms, endpoint"
        )
        rows = await self._reader.run(lambda c: c.execute(sql, (user_id,)).fetchall())
        return [push_subscription(r) for r in rows]

    async def drop_push_subscription(self, endpoint: str) -> None:
        sql = "DELETE FROM push_subscriptions WHERE endpoint = ?"
        await self._writer.run(lambda c: c.execute(sql, (endpoint,)))

    async def push_due(self, cutoff_ms: int, limit: int) -> list[PushSubscription]:
        now = self.clock.now_ms()
        sql = (
            f"SELECT {PUSH_COLUMNS} FROM push_subscriptions s "
            "WHERE s.lease_until <= ? AND s.retry_ms <= ? AND EXISTS (SELECT 1 "
            "FROM notifications n WHERE n.user_id = s.user_id AND n.seq > s.done_seq "
            "AND n.created_ms <= ?) LIMIT ?"
        )
        params = (now, now, cutoff_ms, limit)
        rows = await self._reader.run(functools.partial(_fetch_all, sql=sql, params=params))
        return [push_subscription(r) for r in rows]

    async def claim_push(self, endpoint: str, owner: str, lease_ms: int) -> PushSubscription | None:
        now = self.clock.now_ms()
        sql = (
            "UPDATE push_subscriptions SET lease_owner = ?, lease_until = ? "
            f"WHERE endpoint = ? AND lease_until <= ? RETURNING {PUSH_COLUMNS}"
        )
        params = (owner, now + lease_ms, endpoint, now)
        row = await self._writer.run(lambda c: c.execute(sql, params).fetchone())
        return None if row is None else push_subscription(row)

    async def advance_push(self, endpoint: str, owner: str, done_seq: int) -> bool:
        sql = (
            "UPDATE push_subscriptions SET done_seq = max(done_seq, ?) "
            "WHERE endpoint = ? AND lease_owner = ? AND lease_until > ?"
        )
        params = (done_seq, endpoint, owner, self.clock.now_ms())
        return bool(await self._writer.run(lambda c: c.execute(sql, params).rowcount))

    async def release_push(
        self, endpoint: str, owner: str, done_seq: int, *, retry_ms: int = 0, failures: int = 0
    ) -> None:
        sql = (
            "UPDATE push_subscriptions SET done_seq = max(done_seq, ?), retry_ms = ?, "
            "failures = ?, lease_owner = NULL, lease_until = 0 "
            "WHERE endpoint = ? AND lease_owner = ? AND lease_until > ?"
        )
        params = (done_seq, retry_ms, failures, endpoint, owner, self.clock.now_ms())
        await self._writer.run(lambda c: c.execute(sql, params))

    async def record_presence(
        self, node: str, alive_ms: int, opened: Sequence[str], closed: Sequence[tuple[str, int]]
    ) -> None:
        def _record(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO push_nodes (node_id, alive_ms) VALUES (?, ?) ON CONFLICT "
                "(node_id) DO UPDATE SET alive_ms = max(alive_ms, excluded.alive_ms)",
                (node, alive_ms),
            )
            c.executemany(
                "INSERT INTO push_presence (user_id, node_id, closed_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, node_id) DO UPDATE SET closed_ms = excluded.closed_ms",
                [(u, node, None) for u in opened] + [(u, node, ms) for u, ms in closed],
            )

        await self._writer.run(lambda c: _transaction(c, _record))

    async def presence(self, user_id: str) -> int:
        sql = (
            "SELECT max(coalesce(p.closed_ms, n.alive_ms, 0)) FROM push_presence p "
            "LEFT JOIN push_nodes n ON n.node_id = p.node_id WHERE p.user_id = ?"
        )
        row = await self._reader.run(lambda c: c.execute(sql, (user_id,)).fetchone())
        return int(row[0] or 0)

    async def forget_presence(self, before_ms: int) -> None:
        def _forget(c: sqlite3.Connection) -> None:
            c.execute(
                "DELETE FROM push_presence WHERE closed_ms < ? OR node_id IN "
                "(SELECT node_id FROM push_nodes WHERE alive_ms < ?)",
                (before_ms, before_ms),
            )
            c.execute("DELETE FROM push_nodes WHERE alive_ms < ?", (before_ms,))

        await self._writer.run(lambda c: _transaction(c, _forget))


def _fetch_all(c: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return c.execute(sql, params).fetchall()


def _migrate(c: sqlite3.Connection) -> None:
    if not _steps(c) and c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    # Under the write lock, and the versions read again under it: two processes starting
    # together must not both run a step (ADD COLUMN fails the second time).
    _transaction(c, _upgrade)


def _upgrade(c: sqlite3.Connection) -> None:
    for step in _steps(c):
        for statement in MIGRATIONS[step].split(";"):
            if statement.strip():
                c.execute(statement)
    c.execute(
        "CREATE TABLE IF NOT EXISTS schema_features "
        "(feature TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID"
    )
    c.executemany(
        "INSERT INTO schema_features (feature, version) VALUES (?, ?) "
        "ON CONFLICT (feature) DO UPDATE SET version = excluded.version",
        list(FEATURES.items()),
    )
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _steps(c: sqlite3.Connection) -> list[Step]:
    """The steps the database still needs, per feature (refusing one a newer tidings made)."""
    version = c.execute("PRAGMA user_version").fetchone()[0]
    check_schema("SQLite", version)
    recorded: dict[str, int] = {}
    if version >= SCHEMA_VERSION:
        recorded = dict(c.execute("SELECT feature, version FROM schema_features").fetchall())
    return pending_steps("SQLite", features_of(version, recorded))


# A one-user publish without an idempotency key (most publishes) as ONE statement: an INSERT into
# this connection's TEMP view, whose INSTEAD OF trigger advances the user's seq and inserts the
# row, RETURNING the new seq; in autocommit, so the statement is its own transaction (its write
# lock taken when it starts, as `BEGIN IMMEDIATE` does, and its commit synced as any other).
# Why: BEGIN, the upsert, the insert and COMMIT were five steps of the VM, and the writer thread
# gives the GIL up in each and must win it back from the busy event loop after each; this is
# two (the row, then the end of the statement, which commits). TEMP: the view and trigger live
# in the writer connection alone, made when the store opens, so the database file's schema is
# unchanged (no schema step; an older tidings opens the file as before, `tidings send` and any
# other process write with their own). The RETURNING subquery reads the seq the trigger wrote:
# SQLite runs RETURNING as the statement's last AFTER trigger, after the INSTEAD OF one (as we
# read it, and measured with 3.40); tests/contract/test_sqlite_group_commit.py holds the answer
# to the stored row, for a lone publish and a batch.
PUBLISH_ONE = f"""
CREATE TEMP VIEW IF NOT EXISTS publish_one (
    user_id, message, link, kind, data, created_ms, category, actor, actions, grp, expires_ms
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL;
CREATE TEMP TRIGGER IF NOT EXISTS publish_one_insert INSTEAD OF INSERT ON publish_one
BEGIN
    INSERT INTO users (user_id, last_seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + 1;
    INSERT INTO notifications ({COLUMNS}) VALUES (
        NEW.user_id, (SELECT last_seq FROM users WHERE user_id = NEW.user_id), NEW.message,
        NEW.link, NEW.kind, NEW.data, NEW.created_ms, NULL, NEW.category, NEW.actor,
        NEW.actions, NEW.grp, NEW.expires_ms, NULL, NULL, NULL
    );
END
"""
# A group-committed batch of publishes (`_add_many`) the same way: one INSERT into this view
# carries every user's count in the batch (a JSON object) and every row (a JSON array, each row's
# second field how many later rows of the batch are for the same user); the trigger advances each
# user's seq by its count, then inserts each row at its user's new seq minus that number, and the
# RETURNING subquery reads the new seqs back as one JSON object.
PUBLISH_MANY = f"""
CREATE TEMP VIEW IF NOT EXISTS publish_many (counts, rows) AS SELECT NULL, NULL;
CREATE TEMP TRIGGER IF NOT EXISTS publish_many_insert INSTEAD OF INSERT ON publish_many
BEGIN
    INSERT INTO users (user_id, last_seq) SELECT key, value FROM json_each(NEW.counts) WHERE true
        ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq;
    INSERT INTO notifications ({COLUMNS}) SELECT {{fields}} FROM json_each(NEW.rows);
END
"""
_INSERT_MANY = (
    "INSERT INTO publish_many VALUES (?, ?) RETURNING (SELECT json_group_object(user_id, "
    "last_seq) FROM users WHERE user_id IN (SELECT key FROM json_each(?)))"
)
_INSERT_ONE = (
    "INSERT INTO publish_one VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "RETURNING (SELECT last_seq FROM users WHERE user_id = ?)"
)


def _publish_views(c: sqlite3.Connection) -> bool:
    """On the writer connection, once the schema is current: the TEMP views and triggers of
    `PUBLISH_ONE` and `PUBLISH_MANY` (IF NOT EXISTS: a connection keeps them while it lives);
    whether the one-statement writes answer what they stored (`_one_statement_holds`)."""
    _make_views(c)
    if _one_statement_holds():
        return True
    log.warning(
        "SQLite %s: the one-statement publish did not read back what it stored; publishing "
        "with a transaction of several statements instead (slower, as safe)",
        sqlite3.sqlite_version,
    )
    return False


def _make_views(c: sqlite3.Connection) -> None:
    c.executescript(PUBLISH_ONE)
    c.executescript(PUBLISH_MANY.format(fields=_MANY_FIELDS))


PROBE_USER = "tidings:probe"


def _one_statement_holds() -> bool:
    """Whether `RETURNING` reads the seqs the views' triggers wrote, on this SQLite.

    That SQLite runs an INSERT's RETURNING after its INSTEAD OF trigger is what its plan does
    (3.40), not a promise of its documentation, and the library is the system's: so each
    writer connection checks once, with a lone publish and a batch, against what another
    statement then reads. The check is of the library, not of the file: it runs on a database
    of its own in memory (the same schema and views), so opening the store takes no write lock
    on the file and waits for nobody (another node's long prune, `tidings send`).
    """
    c = sqlite3.connect(":memory:", isolation_level=None)
    try:
        _upgrade(c)
        _make_views(c)
        return _probe(c)
    except sqlite3.OperationalError as exc:
        log.warning("SQLite: the one-statement publish could not be checked: %s", exc)
        return False
    finally:
        c.close()


def _probe(c: sqlite3.Connection) -> bool:
    c.execute("BEGIN IMMEDIATE")
    try:
        lone = _add_one(c, Draft(user_ids=(PROBE_USER,), message="probe"), 0)
        batch: list[Stored | Exception] = []
        drafts = [Draft(user_ids=(PROBE_USER,), message="probe")] * 2
        if not _add_many(c, drafts, 0, batch):
            return False
        answered = [n.seq for s in (lone, *batch) if isinstance(s, Stored) for n in s.notifications]
        stored = [
            row[0]
            for row in c.execute(
                "SELECT seq FROM notifications WHERE user_id = ? ORDER BY seq DESC LIMIT 3",
                (PROBE_USER,),
            )
        ]
        return len(answered) == 3 and answered == stored[::-1]
    except sqlite3.OperationalError:
        raise
    except Exception:
        log.exception("SQLite: the one-statement publish's check failed")
        return False
    finally:
        if c.in_transaction:
            c.execute("ROLLBACK")


def _add_one(c: sqlite3.Connection, draft: Draft, stamp: int) -> Stored:
    """A one-user publish without a key, alone: one statement, its own transaction."""
    user_id = draft.user_ids[0]
    try:
        (seq,) = c.execute(
            _INSERT_ONE,
            (
                user_id,
                draft.message,
                draft.link,
                draft.kind,
                encode_data(draft.data),
                stamp,
                *inbox_values(draft),
                user_id,
            ),
        ).fetchone()
    except BaseException:
        # A statement that fails is undone by SQLite; one stopped between its steps is not.
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise
    # `fetchone` stepped the statement to its end, so it has committed (and synced) by now.
    return Stored(made(draft, ((user_id, seq),), stamp))


def _add_batch(
    c: sqlite3.Connection,
    work: list[tuple[Draft, str | None]],
    stamp: int,
    one_statement: bool = True,
) -> list[Stored | Exception]:
    """One transaction for many publishes; one that fails is rolled back alone (a savepoint)."""
    outcomes: list[Stored | Exception] = []
    if c.in_transaction:
        # Every writer function ends what it begins, so this is a bug elsewhere. The one-statement
        # paths below would silently join that transaction and answer publishes a later ROLLBACK
        # could undo (where `BEGIN IMMEDIATE` used to refuse loudly): undo it and fail the batch.
        c.execute("ROLLBACK")
        raise sqlite3.OperationalError("the writer connection was left inside a transaction")
    if one_statement and len(work) == 1 and work[0][1] is None and len(work[0][0].user_ids) == 1:
        try:
            return [_add_one(c, work[0][0], stamp)]
        except sqlite3.OperationalError:
            raise  # the database itself failed
        except Exception as exc:
            return [exc]
    if (
        one_statement
        and len(work) > 1
        and _batchable(work)
        and _add_many(c, [d for d, _ in work], stamp, outcomes)
    ):
        return outcomes
    c.execute("BEGIN IMMEDIATE")
    try:
        if len(work) == 1:
            # Alone in its transaction (the usual case below a few hundred publishes a second):
            # the transaction is its savepoint; SAVEPOINT and RELEASE would be two statements
            # for nothing.
            try:
                outcomes.append(_add(c, *work[0], stamp))
            except sqlite3.OperationalError:
                raise
            except Exception as exc:
                c.execute("ROLLBACK")
                return [exc]
        else:
            # Publish by publish, each in its savepoint.
            for draft, key in work:
                c.execute("SAVEPOINT publish")
                try:
                    outcomes.append(_add(c, draft, key, stamp))
                except sqlite3.OperationalError:
                    raise  # the database itself failed: the whole batch fails
                except Exception as exc:
                    c.execute("ROLLBACK TO publish")
                    outcomes.append(exc)
                c.execute("RELEASE publish")
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return outcomes


def _batchable(work: list[tuple[Draft, str | None]]) -> bool:
    """Whether a batch can be written by `_add_many`: no idempotency key (a key's lookup and
    replay are per publish), no publish to `BULK_MIN` users or more (`_add_bulk` binds its shared
    columns once, where `_add_many` would carry them in every row's JSON), no user twice in one
    publish (`_add_rows` leaves that to the primary key to refuse, alone in its savepoint), and no
    NUL in a text column (SQLite's JSON functions end a string there; the HTTP API refuses NUL,
    the Python API may not)."""
    for draft, key in work:
        if (
            key is not None
            or len(draft.user_ids) >= BULK_MIN
            or (len(draft.user_ids) > 1 and len(set(draft.user_ids)) != len(draft.user_ids))
        ):
            return False
        texts = (draft.message, draft.link, draft.kind, draft.category, draft.group)
        if any(t is not None and "\x00" in t for t in texts) or any(
            "\x00" in u for u in draft.user_ids
        ):
            return False
    return True


def _add_many(
    c: sqlite3.Connection,
    drafts: list[Draft],
    stamp: int,
    outcomes: list[Stored | Exception],
) -> bool:
    """A batch of publishes as one statement (`PUBLISH_MANY`), its own transaction, whatever its
    size; False (and nothing written) when it fails, so the caller writes the batch publish by
    publish, each in its savepoint.

    Why: row by row, a batch of N publishes steps 4N + 2 statements (savepoint, upsert, insert,
    release), and the writer thread gives up the GIL in each and must win it back from the busy
    event loop, up to a switch interval (5 ms) each time. Three set-based statements (round 5:
    −15 % of the writer's CPU per publish) still made a batch's transaction eight steps of the
    VM (BEGIN, SAVEPOINT, the upsert, the read-back and its end, the insert, RELEASE, COMMIT);
    this is two (the seqs, then the end of the statement, which commits)."""
    counts: dict[str, int] = {}
    for draft in drafts:
        for user_id in draft.user_ids:
            counts[user_id] = counts.get(user_id, 0) + 1
    users = json.dumps(dict(sorted(counts.items())), ensure_ascii=False, separators=(",", ":"))
    # Per row, how many later rows of this batch are for its user: its seq is the user's new
    # last seq minus that.
    later = dict(counts)
    rows: list[list[Any]] = []
    for draft in drafts:
        data = encode_data(draft.data)
        inbox = inbox_values(draft)
        for user_id in draft.user_ids:
            later[user_id] -= 1
            back = later[user_id]
            rows.append([user_id, back, draft.message, draft.link, draft.kind, data, stamp, *inbox])
    try:
        (text,) = c.execute(
            _INSERT_MANY,
            (users, json.dumps(rows, ensure_ascii=False, separators=(",", ":")), users),
        ).fetchone()
    except sqlite3.OperationalError:
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise  # the database itself failed: the whole batch fails
    except Exception:
        # SQLite undid the statement (and with it the transaction it was).
        if c.in_transaction:
            c.execute("ROLLBACK")
        return False
    # Committed by now: nothing from here on may fail (the text is SQLite's own JSON object of
    # the users this batch named; NUL, which SQLite's JSON cuts short, never gets here).
    last: dict[str, int] = json.loads(text)
    # Each user's seq before this batch; the batch's publishes take the next ones in order.
    seq = {user_id: last[user_id] - n for user_id, n in counts.items()}
    for draft in drafts:
        pairs = []
        for user_id in draft.user_ids:
            seq[user_id] += 1
            pairs.append((user_id, seq[user_id]))
        outcomes.append(Stored(made(draft, pairs, stamp)))
    return True


# The columns of `COLUMNS` from one JSON array per row (`_add_many`): user_id, seq, message,
# link, kind, data, created_ms, then category, actor, actions, grp, expires_ms.
_ROW_FIELDS = ", ".join(
    [f"json_extract(value, '$[{i}]')" for i in range(7)]
    + ["NULL"]
    + [f"json_extract(value, '$[{i}]')" for i in range(7, 12)]
    + ["NULL", "NULL", "NULL"]
)
# The same for `PUBLISH_MANY`'s trigger, where the second field is the number of later rows of
# the batch for the same user, and the seq is the user's new last seq minus it.
_MANY_FIELDS = _ROW_FIELDS.replace(
    "json_extract(value, '$[1]')",
    "(SELECT last_seq FROM users WHERE user_id = json_extract(value, '$[0]'))"
    " - json_extract(value, '$[1]')",
)


def _add(c: sqlite3.Connection, draft: Draft, key: str | None, stamp: int) -> Stored:
    """One publish, inside the caller's transaction."""
    if key is not None:
        found = c.execute(
            "SELECT refs, fingerprint FROM idempotency WHERE key = ?", (key,)
        ).fetchone()
        if found is not None:
            check_fingerprint(key, found[1], draft)
            return Stored(tuple(_fetch_refs(c, json.loads(found[0]))), replayed=True)
    if (
        len(draft.user_ids) >= BULK_MIN
        and len(set(draft.user_ids)) == len(draft.user_ids)
        # SQLite's JSON functions end a string at NUL (the HTTP API refuses it, Python may not).
        and "\x00" not in "".join(draft.user_ids)
    ):
        new = _add_bulk(c, draft, stamp)
    else:
        new = _add_rows(c, draft, stamp)
    if key is not None:
        refs = json.dumps([[n.user_id, n.seq] for n in new], separators=(",", ":"))
        c.execute(
            "INSERT INTO idempotency (key, created_ms, refs, fingerprint) VALUES (?, ?, ?, ?)",
            (key, stamp, refs, draft.fingerprint()),
        )
    return Stored(new)


def _add_bulk(c: sqlite3.Connection, draft: Draft, stamp: int) -> tuple[Notification, ...]:
    """A many-user publish in two set-based statements: every user's seq advanced by one upsert
    over a JSON array (RETURNING the new seqs), then every row inserted by one INSERT … SELECT.
    Row by row (`_add_rows`) the same 10,000-user publish binds and steps 30,000 statements;
    here SQLite loops in C. The ids are sorted so both B-trees are written in key order."""
    ids = json.dumps(sorted(draft.user_ids), ensure_ascii=False, separators=(",", ":"))
    seqs = dict(
        c.execute(
            "INSERT INTO users (user_id, last_seq) SELECT value, 1 FROM json_each(?) WHERE true "
            "ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + 1 "
            "RETURNING user_id, last_seq",
            (ids,),
        ).fetchall()
    )
    c.execute(
        f"INSERT INTO notifications ({COLUMNS}) "
        "SELECT u.user_id, u.last_seq, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, NULL, NULL, NULL "
        "FROM json_each(?) AS j JOIN users AS u ON u.user_id = j.value",
        (
            draft.message,
            draft.link,
            draft.kind,
            encode_data(draft.data),
            stamp,
            *inbox_values(draft),
            ids,
        ),
    )
    return made(draft, ((u, seqs[u]) for u in draft.user_ids), stamp)


def _add_rows(c: sqlite3.Connection, draft: Draft, stamp: int) -> tuple[Notification, ...]:
    """A publish to a few users, one bound row per user (cheaper than JSON for a handful)."""
    if len(draft.user_ids) == 1:
        # One user (most publishes): the upsert hands out the seq itself, one statement fewer.
        user_id = draft.user_ids[0]
        seq = c.execute(
            "INSERT INTO users (user_id, last_seq) VALUES (?, 1) "
            "ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq",
            (user_id,),
        ).fetchone()[0]
        new = made(draft, ((user_id, seq),), stamp)
        c.execute(
            f"INSERT INTO notifications ({COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
            (
                user_id,
                seq,
                draft.message,
                draft.link,
                draft.kind,
                encode_data(draft.data),
                stamp,
                *inbox_values(draft),
            ),
        )
        return new
    last: dict[str, int] = {}
    for chunk in chunks(draft.user_ids, IN_CHUNK):
        marks = ",".join("?" * len(chunk))
        rows = c.execute(
            f"SELECT user_id, last_seq FROM users WHERE user_id IN ({marks})", chunk
        ).fetchall()
        last.update((r[0], r[1]) for r in rows)
    data = encode_data(draft.data)
    inbox = inbox_values(draft)
    new = made(draft, ((u, last.get(u, 0) + 1) for u in draft.user_ids), stamp)
    c.executemany(
        "INSERT INTO users (user_id, last_seq) VALUES (?, ?) "
        "ON CONFLICT (user_id) DO UPDATE SET last_seq = excluded.last_seq",
        [(n.user_id, n.seq) for n in new],
    )
    c.executemany(
        f"INSERT INTO notifications ({COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
        [(n.user_id, n.seq, n.message, n.link, n.kind, data, stamp, *inbox) for n in new],
    )
    return new


def _fetch_refs(c: sqlite3.Connection, refs: list[list[Any]]) -> list[Notification]:
    found: list[Notification] = []
    for user_id, seq in refs:
        row = c.execute(
            f"SELECT {COLUMNS} FROM notifications WHERE user_id = ? AND seq = ?", (user_id, seq)
        ).fetchone()
        if row is not None:
            found.append(notification(row))
    return found


def _prune(c: sqlite3.Connection, older_than_ms: int, batch: int) -> int:
    c.execute("BEGIN IMMEDIATE")
    try:
        rows = c.execute(
            "SELECT user_id, seq FROM notifications WHERE created_ms < ? "
            "ORDER BY created_ms LIMIT ?",
            (older_than_ms, batch),
        ).fetchall()
        highest: dict[str, int] = {}
        for user_id, seq in rows:
            highest[user_id] = max(seq, highest.get(user_id, 0))
        c.executemany(
            "DELETE FROM notifications WHERE user_id = ? AND seq = ?", [tuple(r) for r in rows]
        )
        c.executemany(
            "UPDATE users SET pruned_upto = max(pruned_upto, ?) WHERE user_id = ?",
            [(seq, user_id) for user_id, seq in highest.items()],
        )
        c.execute(
            "DELETE FROM idempotency WHERE key IN "
            "(SELECT key FROM idempotency WHERE created_ms < ? LIMIT ?)",
            (older_than_ms, batch),
        )
        # Scheduled rows that are done (delivered, cancelled, skipped); pending ones stay.
        c.execute(
            "DELETE FROM scheduled WHERE (key, user_id) IN "
            "(SELECT key, user_id FROM scheduled WHERE done_ms < ? LIMIT ?)",
            (older_than_ms, batch),
        )
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return len(rows)


def _set_by_ids(
    c: sqlite3.Connection,
    column: str,
    value: int | None,
    state: str,
    user_id: str,
    ids: Sequence[int],
    *,
    extra: str = "",
) -> list[int]:
    """Set `column` (and what `extra` sets) on the user's notifications among `ids` that are in
    `state`, in one transaction (chunked under SQLite's bound-parameter limit); return the seqs
    changed."""
    changed: list[int] = []
    c.execute("BEGIN IMMEDIATE")
    try:
        for chunk in chunks(sorted(set(ids)), IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            rows = c.execute(
                f"UPDATE notifications SET {column} = ?{extra} WHERE user_id = ? "
                f"AND seq IN ({marks}) AND {state} RETURNING seq",
                (value, user_id, *chunk),
            ).fetchall()
            changed.extend(r[0] for r in rows)
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return sorted(changed)


def _fetch_seqs(c: sqlite3.Connection, user_id: str, seqs: Sequence[int]) -> list[Notification]:
    """The user's notifications with these seqs, ascending."""
    found: list[Notification] = []
    for chunk in chunks(sorted(seqs), IN_CHUNK):
        marks = ",".join("?" * len(chunk))
        rows = c.execute(
            f"SELECT {COLUMNS} FROM notifications WHERE user_id = ? AND seq IN ({marks}) "
            "ORDER BY seq",
            (user_id, *chunk),
        ).fetchall()
        found.extend(notification(r) for r in rows)
    return found


def _transaction(c: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """`fn(c, *args)` under the write lock, committed, or rolled back if it raises."""
    c.execute("BEGIN IMMEDIATE")
    try:
        result = fn(c, *args)
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return result


def _schedule(
    c: sqlite3.Connection, draft: Draft, key: str, stamp: int, order: int
) -> Scheduled | None:
    assert draft.deliver_ms is not None
    found = c.execute("SELECT fingerprint FROM scheduled WHERE key = ? LIMIT 1", (key,)).fetchone()
    if found is not None:
        check_fingerprint(key, found[0], draft)
        return Scheduled(key, draft.deliver_ms, draft.user_ids, replayed=True)
    if draft.deliver_ms <= stamp:
        return None
    if c.execute("SELECT 1 FROM idempotency WHERE key = ?", (key,)).fetchone() is not None:
        raise used_now(key)
    text = encode_draft(draft)
    fingerprint = draft.fingerprint()
    c.executemany(
        "INSERT INTO scheduled (key, user_id, deliver_ms, draft, fingerprint, created_ms) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(key, u, draft.deliver_ms, text, fingerprint, order) for u in draft.user_ids],
    )
    return Scheduled(key, draft.deliver_ms, draft.user_ids)


def _deliver(c: sqlite3.Connection, rows: Sequence[Due], stamp: int) -> list[Stored]:
    """Every key's rows in one transaction (one commit for the batch), each key in a savepoint:
    the rows still pending are marked, and stored for, together. A key that fails is rolled
    back alone; its rows stay pending and are claimed again when their lease runs out."""
    delivered: list[Stored] = []
    for group in by_key(rows):
        c.execute("SAVEPOINT deliver")
        try:
            stored = _deliver_key(c, group, stamp)
        except sqlite3.OperationalError:
            raise  # the database itself failed: the whole batch fails
        except Exception:
            log.warning("delivering scheduled %r failed", group[0].key, exc_info=True)
            c.execute("ROLLBACK TO deliver")
            stored = None
        c.execute("RELEASE deliver")
        if stored is not None:
            delivered.append(stored)
    return delivered


def _deliver_key(c: sqlite3.Connection, group: Sequence[Due], stamp: int) -> Stored | None:
    key = group[0].key
    skipped, users = by_skip(group)
    for skip, marked in skipped.items():
        _mark(c, key, marked, skip, stamp)
    # Marked first, in the same transaction as the add: a row cancelled or delivered by another
    # process meanwhile is not pending any more and is not stored; a crash leaves both or none.
    changed = set(_mark(c, key, users, DELIVERED, stamp))
    if not changed:
        return None
    draft = dataclasses.replace(group[0].draft, user_ids=tuple(u for u in users if u in changed))
    return _add(c, draft, None, stamp)


def _mark(
    c: sqlite3.Connection, key: str, users: Sequence[str], state: str, stamp: int
) -> list[str]:
    """Mark the key's pending rows of `users` `state`; return the users whose row it was."""
    changed: list[str] = []
    for chunk in chunks(list(users), IN_CHUNK):
        marks = ",".join("?" * len(chunk))
        found = c.execute(
            f"UPDATE scheduled SET state = ?, done_ms = ? WHERE key = ? AND state = ? "
            f"AND user_id IN ({marks}) RETURNING user_id",
            (state, stamp, key, PENDING, *chunk),
        ).fetchall()
        changed.extend(r[0] for r in found)
    return changed


def _cancel(c: sqlite3.Connection, key: str, stamp: int) -> tuple[int, tuple[str, ...]]:
    # A row being delivered is cancelled too: its delivery finds it no longer pending.
    count = c.execute(
        "UPDATE scheduled SET state = ?, done_ms = ? WHERE key = ? AND state = ?",
        (CANCELLED, stamp, key, PENDING),
    ).rowcount
    states = {r[0] for r in c.execute("SELECT state FROM scheduled WHERE key = ?", (key,))}
    return count, tuple(sorted(states))


def _set_user_email(
    c: sqlite3.Connection, user_id: str, email: str | None, stamp: int
) -> UserRecord:
    c.execute("BEGIN IMMEDIATE")
    try:
        row = c.execute("SELECT last_seq FROM users WHERE user_id = ?", (user_id,)).fetchone()
        last = 0 if row is None else int(row[0])
        # A new address starts after what is there now; a changed one keeps its cursor.
        c.execute(
            "INSERT INTO email_users (user_id, email, updated_ms, done_seq, claimed_seq) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
            "done_seq = CASE WHEN email IS NULL THEN max(done_seq, excluded.done_seq) "
            "ELSE done_seq END, "
            "claimed_seq = CASE WHEN email IS NULL THEN max(claimed_seq, excluded.done_seq) "
            "ELSE claimed_seq END, "
            "email = excluded.email, updated_ms = excluded.updated_ms",
            (user_id, email, stamp, last, last),
        )
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return UserRecord(user_id, email, stamp)


def _claim_email(
    c: sqlite3.Connection, user_id: str, owner: str, now: int, after_ms: int, lease_ms: int
) -> EmailClaim | None:
    # Under the write lock (BEGIN IMMEDIATE): of two nodes claiming at once, the second reads
    # the first one's lease and backs off.
    c.execute("BEGIN IMMEDIATE")
    try:
        row = c.execute(
            "SELECT email, done_seq, claimed_seq, attempts FROM email_users WHERE user_id = ? "
            "AND email IS NOT NULL AND lease_until <= ? AND next_ms <= ?",
            (user_id, now, now),
        ).fetchone()
        claim = None
        if row is not None:
            email, done, claimed, attempts = row
            if claimed <= done:
                claimed = c.execute(
                    "SELECT max(seq) FROM notifications WHERE user_id = ? AND seq > ? "
                    "AND created_ms <= ?",
                    (user_id, done, now - after_ms),
                ).fetchone()[0]
            if claimed is not None:
                c.execute(
                    "UPDATE email_users SET lease_owner = ?, lease_until = ?, claimed_seq = ? "
                    "WHERE user_id = ?",
                    (owner, now + lease_ms, claimed, user_id),
                )
                claim = EmailClaim(user_id, email, done, claimed, owner, attempts)
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return claim


def _add_subscription(
    c: sqlite3.Connection, sub: PushSubscription, limit: int, stamp: int
) -> Subscribed:
    """One subscription, inside the caller's transaction (see `Store.add_push_subscription`)."""
    found = c.execute(
        "SELECT user_id FROM push_subscriptions WHERE endpoint = ?", (sub.endpoint,)
    ).fetchone()
    if found is not None and found[0] == sub.user_id:
        c.execute(
            "UPDATE push_subscriptions SET p256dh = ?, auth = ? WHERE endpoint = ?",
            (sub.p256dh, sub.auth, sub.endpoint),
        )
        return "updated"
    (count,) = c.execute(
        "SELECT count(*) FROM push_subscriptions WHERE user_id = ?", (sub.user_id,)
    ).fetchone()
    if count >= limit:
        return "full"
    last = c.execute("SELECT last_seq FROM users WHERE user_id = ?", (sub.user_id,)).fetchone()
    c.execute("DELETE FROM push_subscriptions WHERE endpoint = ?", (sub.endpoint,))
    c.execute(
        "INSERT INTO push_subscriptions (endpoint, user_id, p256dh, auth, created_ms, done_seq) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (sub.endpoint, sub.user_id, sub.p256dh, sub.auth, stamp, 0 if last is None else last[0]),
    )
    return "created" if found is None else "updated"
