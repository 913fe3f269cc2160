"""PostgreSQL store: asyncpg, pooled; the users row is the per-user lock.

A publish increments `users.last_seq` with `INSERT … ON CONFLICT DO UPDATE … RETURNING`. That
takes the user's row lock and holds it to commit, so a second publisher to the same user (in any
process) waits for the first to commit before it can read the counter: commit order is seq order.
A batch locks its users in user_id order, and so does pruning, so they never deadlock; should
PostgreSQL still abort a transaction as a deadlock or serialization failure, it is retried, and
past the retries answered as `StoreUnavailable` (503), never as an internal error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg

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
    by_skip,
    check_fingerprint,
    check_schema,
    decode_preferences,
    deliver_by_key,
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

__all__ = ["PostgresStore"]

# Every network await is bounded: connecting, waiting for a pooled connection, each statement.
CONNECT_TIMEOUT = 5.0
ACQUIRE_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
POOL_MIN = 1
POOL_MAX = 10
# An arbitrary constant: one schema migration at a time across nodes starting together.
MIGRATION_LOCK = 0x7469_6469_6E67
# A transaction PostgreSQL aborted (deadlock, serialization failure) is run again this often.
ROLLBACK_ATTEMPTS = 3
# The first key of the per-user advisory lock a subscribe takes (the second is the user's hash).
PUSH_LOCK = 0x7075_7368
# One-user publishes committed in one statement at most (group commit, `PostgresStore.add`).
MAX_BATCH = 256

T = TypeVar("T")

MIGRATIONS: dict[Step, str] = {
    ("log", 1): """
CREATE TABLE IF NOT EXISTS tidings_users (
    user_id     text PRIMARY KEY,
    last_seq    bigint NOT NULL,
    pruned_upto bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tidings_notifications (
    user_id    text NOT NULL,
    seq        bigint NOT NULL,
    message    text NOT NULL,
    link       text,
    kind       text,
    data       text NOT NULL,
    created_ms bigint NOT NULL,
    read_ms    bigint,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX IF NOT EXISTS tidings_notifications_unread
    ON tidings_notifications (user_id, seq) WHERE read_ms IS NULL;
CREATE INDEX IF NOT EXISTS tidings_notifications_created
    ON tidings_notifications (created_ms);
CREATE TABLE IF NOT EXISTS tidings_idempotency (
    key        text PRIMARY KEY,
    created_ms bigint NOT NULL,
    refs       text NOT NULL
);
CREATE INDEX IF NOT EXISTS tidings_idempotency_created ON tidings_idempotency (created_ms);
""",
    ("log", 2): "ALTER TABLE tidings_idempotency ADD COLUMN IF NOT EXISTS fingerprint text;",
    ("inbox", 1): """
ALTER TABLE tidings_notifications
    ADD COLUMN IF NOT EXISTS category text,
    ADD COLUMN IF NOT EXISTS actor text,
    ADD COLUMN IF NOT EXISTS actions text,
    ADD COLUMN IF NOT EXISTS grp text,
    ADD COLUMN IF NOT EXISTS expires_ms bigint,
    ADD COLUMN IF NOT EXISTS seen_ms bigint,
    ADD COLUMN IF NOT EXISTS archived_ms bigint;
CREATE TABLE IF NOT EXISTS tidings_preferences (
    user_id  text PRIMARY KEY,
    muted    text NOT NULL,
    channels text NOT NULL
);
""",
    ("scheduling", 1): """
CREATE TABLE IF NOT EXISTS tidings_scheduled (
    key         text NOT NULL,
    user_id     text NOT NULL,
    deliver_ms  bigint NOT NULL,
    draft       text NOT NULL,
    fingerprint text NOT NULL,
    created_ms  bigint NOT NULL,
    state       text NOT NULL DEFAULT 'pending',
    lease_until bigint NOT NULL DEFAULT 0,
    done_ms     bigint,
    PRIMARY KEY (key, user_id)
);
CREATE INDEX IF NOT EXISTS tidings_scheduled_due
    ON tidings_scheduled (deliver_ms) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS tidings_scheduled_done
    ON tidings_scheduled (done_ms) WHERE done_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS tidings_notifications_expires
    ON tidings_notifications (expires_ms) WHERE expires_ms IS NOT NULL;
""",
    ("push", 1): """
CREATE TABLE IF NOT EXISTS tidings_push_subscriptions (
    endpoint    text PRIMARY KEY,
    user_id     text NOT NULL,
    p256dh      text NOT NULL,
    auth        text NOT NULL,
    created_ms  bigint NOT NULL,
    done_seq    bigint NOT NULL,
    lease_owner text,
    lease_until bigint NOT NULL DEFAULT 0,
    retry_ms    bigint NOT NULL DEFAULT 0,
    failures    integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tidings_push_subscriptions_user
    ON tidings_push_subscriptions (user_id);
CREATE TABLE IF NOT EXISTS tidings_push_presence (
    user_id   text NOT NULL,
    node_id   text NOT NULL,
    closed_ms bigint,
    PRIMARY KEY (user_id, node_id)
);
CREATE INDEX IF NOT EXISTS tidings_push_presence_node ON tidings_push_presence (node_id);
CREATE TABLE IF NOT EXISTS tidings_push_nodes (
    node_id  text PRIMARY KEY,
    alive_ms bigint NOT NULL
);
""",
    ("email", 1): """
CREATE TABLE IF NOT EXISTS tidings_email_users (
    user_id     text PRIMARY KEY,
    email       text,
    updated_ms  bigint NOT NULL,
    done_seq    bigint NOT NULL DEFAULT 0,
    claimed_seq bigint NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until bigint NOT NULL DEFAULT 0,
    next_ms     bigint NOT NULL DEFAULT 0,
    attempts    integer NOT NULL DEFAULT 0
);
""",
    ("snooze", 1): """
ALTER TABLE tidings_notifications ADD COLUMN IF NOT EXISTS snoozed_ms bigint;
ALTER TABLE tidings_notifications ADD COLUMN IF NOT EXISTS snooze_lease bigint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS tidings_notifications_snoozed
    ON tidings_notifications (snoozed_ms) WHERE snoozed_ms IS NOT NULL;
""",
}

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]

# What a lost or refused connection looks like through asyncpg. InternalClientError covers the
# protocol state errors met when the server goes away mid-operation ("cannot switch to state
# 15; another operation is in progress"): the connection is unusable, the database unreachable.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


class _RolledBack(StoreUnavailable):
    """PostgreSQL aborted the transaction (deadlock or serialization failure); nothing was
    written, and running it again may well succeed."""


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """What the pool runs on a connection coming back, after asyncpg rolls back any open
    transaction: nothing. Its default (`Connection.reset`) is one more round trip per store call
    (`RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()`), ~10 % of a node's CPU per
    publish in `bench/run cluster`'s profile, undoing what these connections never do: they set
    no session settings, LISTEN on none (the PostgreSQL bus has its own), keep no cursor past a
    transaction and take only transaction-scoped advisory locks."""


def _lost(conn: Conn) -> bool:
    """Whether a kept connection is gone: closed, or (after the server closed it) already taken
    back by the pool, whose proxy then refuses every call."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


async def _retrying(run: Callable[[], Awaitable[T]]) -> T:
    for attempt in range(ROLLBACK_ATTEMPTS):
        try:
            return await run()
        except _RolledBack:
            if attempt == ROLLBACK_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@dataclasses.dataclass(eq=False)
class _Queued:
    """A one-user publish waiting for the group commit: `wake` is set when it has its
    `outcome`, or, with none, when its caller is to commit the queue (it leads)."""

    draft: Draft
    key: str | None
    wake: asyncio.Future[None]
    outcome: Stored | BaseException | None = None


class PostgresStore(sql.SqlQueries):
    # The operations that are one shared statement come from `sql.SqlQueries`, in this spelling.
    dialect = sql.POSTGRES

    def __init__(self, url: str, *, pool_max: int = POOL_MAX, clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or Clock()
        self._pool_max = pool_max
        self._pool: asyncpg.Pool | None = None
        # Group commit: one-user publishes that arrive while a batch is being written wait here
        # and go together into the next statement; `_leading` while some caller is writing.
        self._queue: collections.deque[_Queued] = collections.deque()
        self._leading = False
        # The group commit's connection, kept between its batches (`_writing`).
        self._writer: Conn | None = None
        self._order = OrderStamps()

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        if self._pool is None:
            raise StoreUnavailable("PostgreSQL: the store is not open")
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                yield conn
        except asyncpg.TransactionRollbackError as exc:
            raise _RolledBack(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[Conn]:
        """The group commit's own connection: taken from the pool once and kept, so a batch
        (on a node of a cluster most often one publish) pays no pool acquire and release, ~15 %
        of a one-publish statement's CPU in `bench/run cluster`'s profile. One caller leads
        the group commit at a time, so it is never shared. Whatever escapes a statement (a
        lost server, a rollback, a cancelled caller) leaves it in an unknown state: it goes
        back to the pool, which resets or replaces it, and the next batch takes another."""
        conn = self._writer
        if conn is None or _lost(conn):
            conn = await self._take_writer()
        try:
            yield conn
        except BaseException as exc:
            raise await self._writer_failed(conn, exc)  # noqa: B904 (chained inside)

    async def _add_writing(self, draft: Draft, idempotency_key: str | None) -> Stored:
        """`_add` on the group commit's connection (`_writing`), for the lone publish a
        node of a cluster mostly writes: without a context manager's frames around it."""
        conn = self._writer
        if conn is None or _lost(conn):
            conn = await self._take_writer()
        try:
            return await _add_in(conn, draft, idempotency_key, self.clock.now_ms())
        except BaseException as exc:
            raise await self._writer_failed(conn, exc)  # noqa: B904 (chained inside)

    async def _take_writer(self) -> Conn:
        self._writer = None
        if self._pool is None:
            raise StoreUnavailable("PostgreSQL: the store is not open")
        try:
            conn = await self._pool.acquire(timeout=ACQUIRE_TIMEOUT)
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
        self._writer = conn
        return conn

    async def _writer_failed(self, conn: Conn, exc: BaseException) -> BaseException:
        """The writer's connection is in an unknown state: give it back; what to raise."""
        self._writer = None
        await self._give_back(conn)
        if isinstance(exc, asyncpg.TransactionRollbackError):
            error: BaseException = _RolledBack(f"PostgreSQL: {type(exc).__name__}: {exc}")
        elif isinstance(exc, UNAVAILABLE):
            error = StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}")
        else:
            return exc
        error.__cause__ = exc
        return error

    async def _give_back(self, conn: Conn) -> None:
        pool = self._pool
        if pool is None:
            conn.terminate()
            return
        try:
            await asyncio.shield(pool.release(conn, timeout=ACQUIRE_TIMEOUT))
        except BaseException:
            conn.terminate()

    async def _read(self, query: sql.Query) -> list[Any]:
        """Run one of the shared statements (`store/sql.py`) on a pooled connection (a write
        too: each is one statement, its own transaction)."""
        text, params = query
        async with self._conn() as conn:
            return list(await conn.fetch(text, *params))

    _write = _read

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=POOL_MIN,
                max_size=self._pool_max,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                # Prepared statements survive in the pool; no JIT for short OLTP queries.
                server_settings={"jit": "off", "application_name": "tidings"},
                reset=_keep_session,
            )
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
        async with self._conn() as conn:
            await _migrate(conn, self.clock.now_ms())

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            # The pool's close waits for every connection it lent.
            await self._give_back(writer)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close()
            except UNAVAILABLE:
                pool.terminate()

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1")

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        """One-user publishes are committed in groups, as the SQLite writer does: a publish
        that finds none being written writes itself at once (one statement); those arriving
        meanwhile queue, and the first of them, woken when that write is done, writes all the
        queued ones in one statement and one round trip (`_PUBLISH_BATCH`), and so on. Nothing
        waits for company, and under load a node sends one statement per batch, not per
        publish. The caller that writes is one of the publishers (no task of its own), so an
        answer costs no extra task switch. A batch to many users is one statement already."""
        if len(draft.user_ids) != 1:
            return await _retrying(lambda: self._add(draft, idempotency_key))
        mine = _Queued(draft, idempotency_key, asyncio.get_running_loop().create_future())
        self._queue.append(mine)
        if self._leading:
            try:
                await mine.wake
            except asyncio.CancelledError:
                self._abandon(mine)
                raise
            if mine.outcome is not None:
                return _answer(mine.outcome)
        self._leading = True
        batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
        try:
            await self._commit_batch(batch)
        finally:
            self._hand_on()
        assert mine.outcome is not None
        return _answer(mine.outcome)

    def _abandon(self, mine: _Queued) -> None:
        """A queued caller was cancelled: its publish leaves the queue unwritten, and if it had
        just been given the lead, the lead passes on."""
        if mine in self._queue:
            self._queue.remove(mine)
            if mine.wake.done() and not mine.wake.cancelled():
                self._hand_on()

    def _hand_on(self) -> None:
        """Wake the first queued caller to write the next batch, or let the next one lead."""
        while self._queue and self._queue[0].wake.done():
            # Its caller was cancelled and has not yet taken it out (`_abandon`).
            self._queue.popleft()
        if self._queue:
            self._queue[0].wake.set_result(None)
        else:
            self._leading = False

    async def _commit_batch(self, batch: list[_Queued]) -> None:
        outcomes: list[Stored | BaseException]
        try:
            stored = None
            if len(batch) > 1:
                stored = await _retrying(lambda: self._add_batch(batch))
            # One publish, or a batch that wrote nothing (a key in it used before, or a value
            # the database refused): each on its own, so each gets its own answer.
            outcomes = list(stored) if stored is not None else [await self._one(q) for q in batch]
        except StoreUnavailable as exc:
            outcomes = [exc] * len(batch)
        except BaseException as exc:
            # The writing caller was cancelled mid-statement (whether it committed is unknown,
            # as with a connection lost then: the others are told to retry, 503), or failed
            # unexpectedly: none of the others may wait for ever.
            lost = exc
            if isinstance(exc, asyncio.CancelledError):
                lost = StoreUnavailable("PostgreSQL: the group commit was interrupted; retry")
            _settle(batch, [lost] * len(batch))
            raise
        _settle(batch, outcomes)

    async def _one(self, q: _Queued) -> Stored | BaseException:
        try:
            return await _retrying(functools.partial(self._add_writing, q.draft, q.key))
        except Exception as exc:
            # Its own failure (a key reused for another publish, a value refused) is its
            # caller's answer alone.
            return exc

    async def _add_batch(self, batch: list[_Queued]) -> list[Stored] | None:
        """The batch in one statement, or None when the database refused it (nothing
        written): a key in it taken, or a value one of the publishes carries."""
        stamp = self.clock.now_ms()
        drafts = [q.draft for q in batch]
        inbox = [inbox_values(d) for d in drafts]
        columns = (
            [d.user_ids[0] for d in drafts],
            [d.message for d in drafts],
            [d.link for d in drafts],
            [d.kind for d in drafts],
            [encode_data(d.data) for d in drafts],
            *([v[i] for v in inbox] for i in range(5)),
            [q.key for q in batch],
            [None if q.key is None else q.draft.fingerprint() for q in batch],
        )
        async with self._writing() as conn:
            try:
                rows = await conn.fetch(_PUBLISH_BATCH, *columns, stamp)
            except asyncpg.PostgresError as exc:
                # A rollback is retried and a lost server answered 503, the batch as a whole;
                # what else the database refuses (a key taken, a value) is one publish's.
                if isinstance(exc, (asyncpg.TransactionRollbackError, *UNAVAILABLE)):
                    raise
                return None
        seqs = {r["i"]: r["seq"] for r in rows}
        return [
            Stored(made(d, ((d.user_ids[0], seqs[i]),), stamp))
            for i, d in enumerate(drafts, start=1)
        ]

    async def _add(self, draft: Draft, idempotency_key: str | None) -> Stored:
        stamp = self.clock.now_ms()
        async with self._conn() as conn:
            return await _add_in(conn, draft, idempotency_key, stamp)

    async def position(self, user_id: str) -> Position:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT last_seq, pruned_upto FROM tidings_users WHERE user_id = $1", user_id
            )
        if row is None:
            return Position()
        return Position(last_seq=row["last_seq"], pruned_upto=row["pruned_upto"])

    async def archive(self, user_id: str, ids: Sequence[int], archived: bool) -> list[int]:
        state = "archived_ms IS NULL" if archived else "archived_ms IS NOT NULL"
        async with self._conn() as conn:
            rows = await conn.fetch(
                "UPDATE tidings_notifications SET archived_ms = $1 "
                f"WHERE user_id = $2 AND seq = ANY($3::bigint[]) AND {state} RETURNING seq",
                self.clock.now_ms() if archived else None,
                user_id,
                sorted(set(ids)),
            )
        return sorted(r["seq"] for r in rows)

    async def mark_read(
        self, user_id: str, *, ids: Sequence[int] | None = None, up_to: int | None = None
    ) -> list[int]:
        stamp = self.clock.now_ms()
        async with self._conn() as conn:
            if up_to is not None:
                text, params = sql.mark_up_to(self.dialect, "read_ms", user_id, up_to, stamp)
                rows = await conn.fetch(text, *params)
            else:
                rows = await conn.fetch(
                    "UPDATE tidings_notifications SET read_ms = $1 "
                    "WHERE user_id = $2 AND seq = ANY($3::bigint[]) AND read_ms IS NULL "
                    "RETURNING seq",
                    stamp,
                    user_id,
                    sorted(set(ids or ())),
                )
        return sorted(r["seq"] for r in rows)

    async def preferences(self, user_id: str) -> Preferences:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT muted, channels FROM tidings_preferences WHERE user_id = $1", user_id
            )
        return Preferences() if row is None else decode_preferences(row["muted"], row["channels"])

    async def set_preferences(self, user_id: str, preferences: Preferences) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO tidings_preferences (user_id, muted, channels) VALUES ($1, $2, $3) "
                "ON CONFLICT (user_id) DO UPDATE SET muted = excluded.muted, "
                "channels = excluded.channels",
                user_id,
                *encode_preferences(preferences),
            )

    async def muting(self, user_ids: Sequence[str], category: str) -> set[str]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT user_id, muted FROM tidings_preferences "
                "WHERE user_id = ANY($1::text[]) AND muted <> '[]'",
                list(user_ids),
            )
        return {r["user_id"] for r in rows if category in json.loads(r["muted"])}

    async def delete(self, user_id: str, seq: int) -> bool:
        async with self._conn() as conn:
            status = await conn.execute(
                "DELETE FROM tidings_notifications WHERE user_id = $1 AND seq = $2", user_id, seq
            )
        return bool(status != "DELETE 0")

    async def prune(self, older_than_ms: int, batch: int) -> int:
        return await _retrying(lambda: self._prune(older_than_ms, batch))

    async def _prune(self, older_than_ms: int, batch: int) -> int:
        async with self._conn() as conn, conn.transaction():
            # Delete the oldest batch, and per touched user the highest seq deleted.
            gone = await conn.fetch(
                "WITH gone AS ("
                "  DELETE FROM tidings_notifications WHERE (user_id, seq) IN ("
                "    SELECT user_id, seq FROM tidings_notifications WHERE created_ms < $1 "
                "    ORDER BY created_ms LIMIT $2 FOR UPDATE SKIP LOCKED) "
                "  RETURNING user_id, seq) "
                "SELECT user_id, max(seq) AS seq, count(*) AS n FROM gone "
                "GROUP BY user_id ORDER BY user_id",
                older_than_ms,
                batch,
            )
            if gone:
                users = [r["user_id"] for r in gone]
                # Lock the users in user_id order, as a multi-user publish does: an UPDATE …
                # FROM locks them in whatever order its join produces, and two transactions
                # locking the same rows in different orders deadlock.
                await conn.execute(
                    "SELECT 1 FROM tidings_users WHERE user_id = ANY($1::text[]) "
                    "ORDER BY user_id FOR UPDATE",
                    users,
                )
                # In the same transaction as the delete, so a stream resuming below the new
                # pruned_upto is told to reset.
                await conn.execute(
                    "UPDATE tidings_users AS u SET pruned_upto = greatest(u.pruned_upto, t.seq) "
                    "FROM unnest($1::text[], $2::bigint[]) AS t (user_id, seq) "
                    "WHERE u.user_id = t.user_id",
                    users,
                    [r["seq"] for r in gone],
                )
            await conn.execute(
                "DELETE FROM tidings_idempotency WHERE key IN (SELECT key FROM "
                "tidings_idempotency WHERE created_ms < $1 ORDER BY created_ms LIMIT $2 "
                "FOR UPDATE SKIP LOCKED)",
                older_than_ms,
                batch,
            )
            # Scheduled rows that are done (delivered, cancelled, skipped); pending ones stay.
            await conn.execute(
                "DELETE FROM tidings_scheduled WHERE (key, user_id) IN (SELECT key, user_id "
                "FROM tidings_scheduled WHERE done_ms < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                older_than_ms,
                batch,
            )
        return sum(int(r["n"]) for r in gone)

    # --- scheduled notifications (deliver_at) and expiry ------------------------------------

    async def schedule(self, draft: Draft, key: str) -> Scheduled | None:
        assert draft.deliver_ms is not None
        stamp = self.clock.now_ms()
        order = self._order.next(stamp)
        fingerprint = draft.fingerprint()
        async with self._conn() as conn, conn.transaction():
            found = await conn.fetchval(
                "SELECT fingerprint FROM tidings_scheduled WHERE key = $1 LIMIT 1", key
            )
            if found is None:
                if draft.deliver_ms <= stamp:
                    return None
                if await conn.fetchval("SELECT true FROM tidings_idempotency WHERE key = $1", key):
                    raise used_now(key)
                # A concurrent first call with the key holds its rows' index entries until it
                # commits: this insert waits for it, then inserts nothing.
                await conn.execute(
                    "INSERT INTO tidings_scheduled "
                    "(key, user_id, deliver_ms, draft, fingerprint, created_ms) "
                    "SELECT $1, id, $3, $4, $5, $6 FROM unnest($2::text[]) AS id "
                    "ON CONFLICT (key, user_id) DO NOTHING",
                    key,
                    list(draft.user_ids),
                    draft.deliver_ms,
                    encode_draft(draft),
                    fingerprint,
                    order,
                )
                # Whoever got there first, every row of the key must be this publish.
                found = await conn.fetchval(
                    "SELECT fingerprint FROM tidings_scheduled "
                    "WHERE key = $1 AND fingerprint <> $2 LIMIT 1",
                    key,
                    fingerprint,
                )
                check_fingerprint(key, found, draft)
                return Scheduled(key, draft.deliver_ms, draft.user_ids)
            check_fingerprint(key, found, draft)
        return Scheduled(key, draft.deliver_ms, draft.user_ids, replayed=True)

    async def claim_due(self, lease_ms: int, limit: int) -> list[Due]:
        # SKIP LOCKED (the dialect's): nodes claiming at once each take rows the others are not.
        query = sql.claim(self.dialect, sql.SCHEDULED, self.clock.now_ms(), lease_ms, limit)
        rows = await self._write(query)
        ordered = sorted(rows, key=lambda r: (r["deliver_ms"], r["created_ms"], r["key"]))
        return [due(r["key"], r["user_id"], r["deliver_ms"], r["draft"]) for r in ordered]

    async def renew_due(self, rows: Sequence[Due], lease_ms: int) -> int:
        match = {
            "key": ("text", [r.key for r in rows]),
            "user_id": ("text", [r.user_id for r in rows]),
        }
        return await self._renew(sql.SCHEDULED, match, lease_ms)

    async def deliver(self, rows: Sequence[Due]) -> list[Stored]:
        return await deliver_by_key(
            rows, lambda group: _retrying(functools.partial(self._deliver, group))
        )

    async def _deliver(self, group: Sequence[Due]) -> Stored | None:
        key = group[0].key
        stamp = self.clock.now_ms()
        async with self._conn() as conn, conn.transaction():
            skipped, users = by_skip(group)
            for skip, marked in skipped.items():
                await _mark(conn, key, marked, skip, stamp)
            # The rows first, locked to commit: a cancel waits for this transaction and then
            # finds them delivered; a cancel (or another node) that came first leaves nothing.
            changed = set(await _mark(conn, key, users, DELIVERED, stamp))
            if not changed:
                return None
            draft = dataclasses.replace(
                group[0].draft, user_ids=tuple(u for u in users if u in changed)
            )
            return await _add_in(conn, draft, None, stamp)

    async def cancel_scheduled(self, key: str) -> tuple[int, tuple[str, ...]]:
        async with self._conn() as conn, conn.transaction():
            cancelled = await conn.fetch(
                "UPDATE tidings_scheduled SET state = $1, done_ms = $2 "
                "WHERE key = $3 AND state = $4 RETURNING 1",
                CANCELLED,
                self.clock.now_ms(),
                key,
                PENDING,
            )
            states = await conn.fetch(
                "SELECT DISTINCT state FROM tidings_scheduled WHERE key = $1", key
            )
        return len(cancelled), tuple(sorted(r["state"] for r in states))

    # -- snooze --------------------------------------------------------------------------------

    async def snooze(self, user_id: str, ids: Sequence[int], until_ms: int) -> list[int]:
        async with self._conn() as conn:
            # `snooze_lease` back to 0: a new time is a new claim, whoever held the old one.
            rows = await conn.fetch(
                "UPDATE tidings_notifications SET snoozed_ms = $1, snooze_lease = 0 "
                "WHERE user_id = $2 AND seq = ANY($3::bigint[]) RETURNING seq",
                until_ms,
                user_id,
                sorted(set(ids)),
            )
        return sorted(r["seq"] for r in rows)

    async def unsnooze(self, user_id: str, ids: Sequence[int]) -> list[Notification]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"UPDATE tidings_notifications SET snoozed_ms = NULL{WOKEN} "
                "WHERE user_id = $1 AND seq = ANY($2::bigint[]) AND snoozed_ms IS NOT NULL "
                f"RETURNING {COLUMNS}",
                user_id,
                sorted(set(ids)),
            )
        return sorted((notification(r) for r in rows), key=lambda n: n.seq)

    async def renew_snoozed(self, claimed: Sequence[Snooze], lease_ms: int) -> int:
        # Only the snooze that was claimed (`snoozed_ms` too): one the user changed meanwhile is
        # no longer this claim's to hold.
        match: dict[str, tuple[str, list[Any]]] = {
            "user_id": ("text", [c.user_id for c in claimed]),
            "seq": ("bigint", [c.seq for c in claimed]),
            "snoozed_ms": ("bigint", [c.until_ms for c in claimed]),
        }
        return await self._renew(sql.SNOOZED, match, lease_ms)

    async def _renew(
        self, rows: sql.Claimable, match: dict[str, tuple[str, list[Any]]], lease_ms: int
    ) -> int:
        """Move the lease of the claimed `rows` to `lease_ms` from now: those among `rows`
        whose columns equal one entry of `match` (column: its type and one value a row) and
        that are still claimable; how many it renewed."""
        count = len(next(iter(match.values()))[1])
        if not count:
            return 0
        name = self.dialect.table(rows.table)
        keys = [k.strip() for k in rows.key.split(",")]
        # The claimed values as one row each (`c.v0, c.v1, ...`: unnest's own names, so that
        # `rows.where` can only mean the table's columns).
        arrays = ", ".join(f"${i}::{kind}[]" for i, (kind, _) in enumerate(match.values(), 2))
        named = ", ".join(f"v{i}" for i in range(len(match)))
        on = " AND ".join(f"t.{column} = c.v{i}" for i, column in enumerate(match))
        async with self._conn() as conn:
            # SKIP LOCKED: a row this node's delivery has locked is being committed; waiting for
            # it would hold a connection for nothing.
            found = await conn.fetch(
                f"UPDATE {name} AS t SET {rows.lease} = $1 FROM ("
                f"  SELECT {', '.join(f't.{k}' for k in keys)} FROM {name} AS t "
                f"  JOIN unnest({arrays}) AS c ({named}) ON {on} "
                f"  WHERE {rows.where} FOR UPDATE OF t SKIP LOCKED) AS mine "
                f"WHERE {' AND '.join(f't.{k} = mine.{k}' for k in keys)} RETURNING 1",
                self.clock.now_ms() + lease_ms,
                *(values for _, values in match.values()),
            )
        return len(found)

    async def wake_snoozed(self, claimed: Sequence[Snooze]) -> list[Notification]:
        if not claimed:
            return []
        async with self._conn() as conn:
            # Only the snooze that was claimed: one the user changed or ended meanwhile is
            # theirs, not this claim's.
            columns = ", ".join(f"n.{c.strip()}" for c in COLUMNS.split(","))
            rows = await conn.fetch(
                f"UPDATE tidings_notifications AS n SET snoozed_ms = NULL{WOKEN} "
                "FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS c (user_id, seq, until) "
                "WHERE n.user_id = c.user_id AND n.seq = c.seq AND n.snoozed_ms = c.until "
                f"RETURNING {columns}",
                [c.user_id for c in claimed],
                [c.seq for c in claimed],
                [c.until_ms for c in claimed],
            )
        return sorted((notification(r) for r in rows), key=lambda n: (n.user_id, n.seq))

    async def next_due(self) -> int | None:
        async with self._conn() as conn:
            found = await conn.fetchval(
                "SELECT min(deliver_ms) FROM tidings_scheduled WHERE state = 'pending'"
            )
        return None if found is None else int(found)

    async def delivered_between(self, after_ms: int, upto_ms: int, limit: int) -> list[str]:
        async with self._conn() as conn:
            # The partial index on done_ms finds them.
            rows = await conn.fetch(
                "SELECT DISTINCT user_id FROM tidings_scheduled "
                "WHERE done_ms > $1 AND done_ms <= $2 AND state = 'delivered' LIMIT $3",
                after_ms,
                upto_ms,
                limit,
            )
        return [r["user_id"] for r in rows]

    # -- the email digest -------------------------------------------------------------------------

    async def user(self, user_id: str) -> UserRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT user_id, email, updated_ms FROM tidings_email_users WHERE user_id = $1",
                user_id,
            )
        return None if row is None else UserRecord(row[0], row[1], row[2])

    async def set_user_email(self, user_id: str, email: str | None) -> UserRecord:
        stamp = self.clock.now_ms()
        async with self._conn() as conn:
            # A new address starts after what is there now; a changed one keeps its cursor.
            await conn.execute(
                "INSERT INTO tidings_email_users AS e (user_id, email, updated_ms, done_seq, "
                "claimed_seq) SELECT $1, $2, $3, l.last, l.last FROM (SELECT coalesce(("
                "SELECT last_seq FROM tidings_users WHERE user_id = $1), 0) AS last) AS l "
                "ON CONFLICT (user_id) DO UPDATE SET "
                "done_seq = CASE WHEN e.email IS NULL THEN greatest(e.done_seq, excluded.done_seq) "
                "ELSE e.done_seq END, "
                "claimed_seq = CASE WHEN e.email IS NULL "
                "THEN greatest(e.claimed_seq, excluded.done_seq) ELSE e.claimed_seq END, "
                "email = excluded.email, updated_ms = excluded.updated_ms",
                user_id,
                email,
                stamp,
            )
        return UserRecord(user_id, email, stamp)

    async def email_due(self, after_ms: int, limit: int) -> list[str]:
        now = self.clock.now_ms()
        async with self._conn() as conn:
            rows = await conn.fetch(
                # Users with nothing new since their cursor are ruled out by comparing two
                # numbers, before any look at their notifications.
                "SELECT e.user_id FROM tidings_email_users AS e "
                "JOIN tidings_users AS u ON u.user_id = e.user_id WHERE e.email IS NOT NULL "
                "AND e.lease_until <= $1 AND e.next_ms <= $1 AND (e.claimed_seq > e.done_seq OR "
                "(u.last_seq > e.done_seq AND EXISTS (SELECT 1 FROM tidings_notifications AS n "
                "WHERE n.user_id = e.user_id AND n.seq > e.done_seq AND n.created_ms <= $2))) "
                "ORDER BY e.next_ms LIMIT $3",
                now,
                now - after_ms,
                limit,
            )
        return [r[0] for r in rows]

    async def claim_email(
        self, user_id: str, owner: str, after_ms: int, lease_ms: int
    ) -> EmailClaim | None:
        now = self.clock.now_ms()
        async with self._conn() as conn:
            # One statement: a concurrent claim of the same row waits for this one's commit
            # and then finds the lease taken (READ COMMITTED re-checks the WHERE on the new row).
            row = await conn.fetchrow(
                "WITH due AS (SELECT e.user_id, CASE WHEN e.claimed_seq > e.done_seq "
                "THEN e.claimed_seq ELSE (SELECT max(n.seq) FROM tidings_notifications AS n "
                "WHERE n.user_id = e.user_id AND n.seq > e.done_seq AND n.created_ms <= $3) END "
                "AS upto FROM tidings_email_users AS e WHERE e.user_id = $1) "
                "UPDATE tidings_email_users AS e SET lease_owner = $2, lease_until = $4, "
                "claimed_seq = due.upto FROM due WHERE e.user_id = due.user_id "
                "AND due.upto IS NOT NULL AND e.email IS NOT NULL AND e.lease_until <= $5 "
                "AND e.next_ms <= $5 RETURNING e.email, e.done_seq, e.claimed_seq, e.attempts",
                user_id,
                owner,
                now - after_ms,
                now + lease_ms,
                now,
            )
        if row is None:
            return None
        return EmailClaim(user_id, row[0], row[1], row[2], owner, row[3])

    async def finish_email(self, claim: EmailClaim, next_ms: int) -> bool:
        async with self._conn() as conn:
            status = await conn.execute(
                "UPDATE tidings_email_users SET done_seq = greatest(done_seq, $1), "
                "claimed_seq = greatest(done_seq, $1), lease_owner = NULL, lease_until = 0, "
                "next_ms = $2, attempts = 0 WHERE user_id = $3 AND lease_owner = $4",
                claim.claimed_seq,
                next_ms,
                claim.user_id,
                claim.owner,
            )
        return bool(status != "UPDATE 0")

    async def release_email(self, claim: EmailClaim, next_ms: int, *, keep_claim: bool) -> bool:
        async with self._conn() as conn:
            status = await conn.execute(
                "UPDATE tidings_email_users SET lease_owner = NULL, lease_until = 0, "
                "next_ms = $1, attempts = attempts + 1, "
                "claimed_seq = CASE WHEN $2 THEN claimed_seq ELSE done_seq END "
                "WHERE user_id = $3 AND lease_owner = $4",
                next_ms,
                keep_claim,
                claim.user_id,
                claim.owner,
            )
        return bool(status != "UPDATE 0")

    # --- Web Push (issue 11) ------------------------------------------------------------------

    async def add_push_subscription(self, sub: PushSubscription, limit: int) -> Subscribed:
        return await _retrying(lambda: self._add_push_subscription(sub, limit))

    async def _add_push_subscription(self, sub: PushSubscription, limit: int) -> Subscribed:
        async with self._conn() as conn, conn.transaction():
            # One subscribe of a user at a time: the cap is counted, then kept.
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", PUSH_LOCK, sub.user_id
            )
            owner = await conn.fetchval(
                "SELECT user_id FROM tidings_push_subscriptions WHERE endpoint = $1 FOR UPDATE",
                sub.endpoint,
            )
            if owner == sub.user_id:
                await conn.execute(
                    "UPDATE tidings_push_subscriptions SET p256dh = $2, auth = $3 "
                    "WHERE endpoint = $1",
                    sub.endpoint,
                    sub.p256dh,
                    sub.auth,
                )
                return "updated"
            count = await conn.fetchval(
                "SELECT count(*) FROM tidings_push_subscriptions WHERE user_id = $1", sub.user_id
            )
            if count >= limit:
                return "full"
            last = await conn.fetchval(
                "SELECT last_seq FROM tidings_users WHERE user_id = $1", sub.user_id
            )
            await conn.execute(
                "DELETE FROM tidings_push_subscriptions WHERE endpoint = $1", sub.endpoint
            )
            await conn.execute(
                "INSERT INTO tidings_push_subscriptions "
                "(endpoint, user_id, p256dh, auth, created_ms, done_seq) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                sub.endpoint,
                sub.user_id,
                sub.p256dh,
                sub.auth,
                self.clock.now_ms(),
                last or 0,
            )
        return "created" if owner is None else "updated"

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> bool:
        async with self._conn() as conn:
            status = await conn.execute(
                "DELETE FROM tidings_push_subscriptions WHERE endpoint = $1 AND user_id = $2",
                endpoint,
                user_id,
            )
        return bool(status != "DELETE 0")

    async def push_subscriptions(self, user_id: str) -> list[PushSubscription]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {PUSH_COLUMNS} FROM tidings_push_subscriptions WHERE user_id = $1 "
                "ORDER BY created_ms, endpoint",
                user_id,
            )
        return [push_subscription(tuple(r)) for r in rows]

    async def drop_push_subscription(self, endpoint: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "DELETE FROM tidings_push_subscriptions WHERE endpoint = $1", endpoint
            )

    async def push_due(self, cutoff_ms: int, limit: int) -> list[PushSubscription]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {PUSH_COLUMNS} FROM tidings_push_subscriptions s "
                "WHERE s.lease_until <= $1 AND s.retry_ms <= $1 AND EXISTS (SELECT 1 FROM "
                "tidings_notifications n WHERE n.user_id = s.user_id AND n.seq > s.done_seq "
                "AND n.created_ms <= $2) LIMIT $3",
                self.clock.now_ms(),
                cutoff_ms,
                limit,
            )
        return [push_subscription(tuple(r)) for r in rows]

    async def claim_push(self, endpoint: str, owner: str, lease_ms: int) -> PushSubscription | None:
        now = self.clock.now_ms()
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "UPDATE tidings_push_subscriptions SET lease_owner = $2, lease_until = $3 "
                f"WHERE endpoint = $1 AND lease_until <= $4 RETURNING {PUSH_COLUMNS}",
                endpoint,
                owner,
                now + lease_ms,
                now,
            )
        return None if row is None else push_subscription(tuple(row))

    async def advance_push(self, endpoint: str, owner: str, done_seq: int) -> bool:
        async with self._conn() as conn:
            status = await conn.execute(
                "UPDATE tidings_push_subscriptions SET done_seq = greatest(done_seq, $3) "
                "WHERE endpoint = $1 AND lease_owner = $2 AND lease_until > $4",
                endpoint,
                owner,
                done_seq,
                self.clock.now_ms(),
            )
        return bool(status != "UPDATE 0")

    async def release_push(
        self, endpoint: str, owner: str, done_seq: int, *, retry_ms: int = 0, failures: int = 0
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE tidings_push_subscriptions SET done_seq = greatest(done_seq, $3), "
                "retry_ms = $4, failures = $5, lease_owner = NULL, lease_until = 0 "
                "WHERE endpoint = $1 AND lease_owner = $2 AND lease_until > $6",
                endpoint,
                owner,
                done_seq,
                retry_ms,
                failures,
                self.clock.now_ms(),
            )

    async def record_presence(
        self, node: str, alive_ms: int, opened: Sequence[str], closed: Sequence[tuple[str, int]]
    ) -> None:
        # Rows of this node only: no other writer touches them, so no lock order to keep.
        users = [*opened, *(u for u, _ in closed)]
        closed_at: list[int | None] = [None] * len(opened) + [ms for _, ms in closed]
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO tidings_push_nodes AS n (node_id, alive_ms) VALUES ($1, $2) "
                "ON CONFLICT (node_id) DO UPDATE SET alive_ms = greatest(n.alive_ms, $2)",
                node,
                alive_ms,
            )
            if users:
                await conn.execute(
                    "INSERT INTO tidings_push_presence (user_id, node_id, closed_ms) "
                    "SELECT u, $1, c FROM unnest($2::text[], $3::bigint[]) AS t (u, c) "
                    "ON CONFLICT (user_id, node_id) DO UPDATE SET closed_ms = excluded.closed_ms",
                    node,
                    users,
                    closed_at,
                )

    async def presence(self, user_id: str) -> int:
        async with self._conn() as conn:
            seen = await conn.fetchval(
                "SELECT max(coalesce(p.closed_ms, n.alive_ms, 0)) FROM tidings_push_presence p "
                "LEFT JOIN tidings_push_nodes n ON n.node_id = p.node_id WHERE p.user_id = $1",
                user_id,
            )
        return 0 if seen is None else int(seen)

    async def forget_presence(self, before_ms: int) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM tidings_push_presence WHERE closed_ms < $1 OR node_id IN "
                "(SELECT node_id FROM tidings_push_nodes WHERE alive_ms < $1)",
                before_ms,
            )
            await conn.execute("DELETE FROM tidings_push_nodes WHERE alive_ms < $1", before_ms)


async def _mark(conn: Conn, key: str, users: Sequence[str], state: str, stamp: int) -> list[str]:
    """Mark the key's pending rows of `users` `state`; return the users whose row it was."""
    if not users:
        return []
    rows = await conn.fetch(
        "UPDATE tidings_scheduled SET state = $1, done_ms = $2 "
        "WHERE key = $3 AND user_id = ANY($4::text[]) AND state = $5 RETURNING user_id",
        state,
        stamp,
        key,
        list(users),
        PENDING,
    )
    return [r["user_id"] for r in rows]


# One publish is one statement, so one round trip and, outside an explicit transaction, its own
# implicit one (no BEGIN and COMMIT round trips): the users rows are counted up (each row's lock
# held to the statement's commit, so commit order is seq order), the notifications inserted from
# what that returned, and, with a key, the key's row inserted with the refs. The key is inserted
# last and without ON CONFLICT: a key already committed is a unique violation that undoes the
# whole statement (nothing counted up), and a concurrent first call's key is waited for and then
# the same; `_add_in` then answers the replay from the committed row.
_COUNT_UP = (
    "WITH s AS (INSERT INTO tidings_users AS u (user_id, last_seq) "
    "SELECT id, 1 FROM unnest($1::text[]) AS id ORDER BY id "
    "ON CONFLICT (user_id) DO UPDATE SET last_seq = u.last_seq + 1 "
    "RETURNING user_id, last_seq), "
    f"n AS (INSERT INTO tidings_notifications ({COLUMNS}) "
    "SELECT user_id, last_seq, $2, $3, $4, $5, $6, NULL, $7, $8, $9, $10, $11, NULL, NULL, NULL "
    "FROM s RETURNING user_id, seq)"
)
_PUBLISH = f"{_COUNT_UP} SELECT user_id, seq FROM n"
_PUBLISH_KEYED = (
    f"{_COUNT_UP}, k AS (INSERT INTO tidings_idempotency (key, created_ms, refs, fingerprint) "
    "SELECT $12, $6, (SELECT json_agg(json_build_array(n.user_id, n.seq) ORDER BY o.i)::text "
    "FROM n JOIN unnest($1::text[]) WITH ORDINALITY AS o (id, i) ON o.id = n.user_id), $13) "
    "SELECT user_id, seq FROM n"
)


# Group commit's statement: one-user publishes, the i-th publish's fields in the i-th element of
# each array. A user with several of them is counted up by as many at once, and they take the
# seqs below the new count in the order they came; the keys go in last, as in `_COUNT_UP`.
_PUBLISH_BATCH = (
    "WITH d AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[], "
    "$12::text[]) WITH ORDINALITY AS d (user_id, message, link, kind, data, category, actor, "
    "actions, grp, expires_ms, key, fingerprint, i)), "
    "c AS (SELECT user_id, count(*) AS n FROM d GROUP BY user_id), "
    "s AS (INSERT INTO tidings_users AS u (user_id, last_seq) "
    "SELECT user_id, n FROM c ORDER BY user_id "
    "ON CONFLICT (user_id) DO UPDATE SET last_seq = u.last_seq + excluded.last_seq "
    "RETURNING user_id, last_seq), "
    "r AS (SELECT d.*, s.last_seq - c.n + row_number() OVER (PARTITION BY d.user_id "
    "ORDER BY d.i) AS seq FROM d JOIN c USING (user_id) JOIN s USING (user_id)), "
    f"n AS (INSERT INTO tidings_notifications ({COLUMNS}) "
    "SELECT user_id, seq, message, link, kind, data, $13, NULL, category, actor, actions, grp, "
    "expires_ms, NULL, NULL, NULL FROM r), "
    "k AS (INSERT INTO tidings_idempotency (key, created_ms, refs, fingerprint) "
    "SELECT key, $13, json_build_array(json_build_array(user_id, seq))::text, fingerprint "
    "FROM r WHERE key IS NOT NULL) "
    "SELECT i, seq FROM r"
)


def _settle(batch: list[_Queued], outcomes: Sequence[Stored | BaseException]) -> None:
    for q, outcome in zip(batch, outcomes, strict=True):
        q.outcome = outcome
        if not q.wake.done():
            q.wake.set_result(None)


def _answer(outcome: Stored | BaseException) -> Stored:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def _add_in(conn: Conn, draft: Draft, idempotency_key: str | None, stamp: int) -> Stored:
    """One publish: on its own in an implicit transaction, or inside the caller's (without a
    key only: a replayed key aborts the statement, and with it an explicit transaction)."""
    user_ids = list(dict.fromkeys(draft.user_ids))
    values = (
        user_ids,
        draft.message,
        draft.link,
        draft.kind,
        encode_data(draft.data),
        stamp,
        *inbox_values(draft),
    )
    if idempotency_key is None:
        rows = await conn.fetch(_PUBLISH, *values)
    else:
        try:
            rows = await conn.fetch(_PUBLISH_KEYED, *values, idempotency_key, draft.fingerprint())
        except asyncpg.UniqueViolationError as exc:
            if exc.table_name != "tidings_idempotency":
                raise
            return await _replay(conn, draft, idempotency_key)
    seqs = {r["user_id"]: r["seq"] for r in rows}
    return Stored(made(draft, ((u, seqs[u]) for u in user_ids), stamp))


async def _replay(conn: Conn, draft: Draft, idempotency_key: str) -> Stored:
    """What the first publish under `idempotency_key` stored (it has committed)."""
    row = await conn.fetchrow(
        "SELECT refs, fingerprint FROM tidings_idempotency WHERE key = $1", idempotency_key
    )
    if row is None:  # pruned since the insert met it
        raise StoreUnavailable("PostgreSQL: the idempotency key changed; retry")
    check_fingerprint(idempotency_key, row["fingerprint"], draft)
    found = await _fetch_refs(conn, json.loads(row["refs"]))
    return Stored(tuple(found), replayed=True)


async def _migrate(conn: Conn, stamp: int) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS tidings_schema (version integer NOT NULL, "
            "applied_ms bigint NOT NULL)"
        )
        version = await conn.fetchval("SELECT max(version) FROM tidings_schema") or 0
        check_schema("PostgreSQL", version)
        recorded: dict[str, int] = {}
        if version >= SCHEMA_VERSION:
            rows = await conn.fetch("SELECT feature, version FROM tidings_schema_features")
            recorded = {r[0]: r[1] for r in rows}
        steps = pending_steps("PostgreSQL", features_of(version, recorded))
        if not steps and version == SCHEMA_VERSION:
            return
        for step in steps:
            await conn.execute(MIGRATIONS[step])
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS tidings_schema_features (feature text PRIMARY KEY, "
            "version integer NOT NULL, applied_ms bigint NOT NULL)"
        )
        await conn.executemany(
            "INSERT INTO tidings_schema_features VALUES ($1, $2, $3) ON CONFLICT (feature) "
            "DO UPDATE SET version = excluded.version, applied_ms = excluded.applied_ms "
            "WHERE tidings_schema_features.version <> excluded.version",
            [(feature, number, stamp) for feature, number in FEATURES.items()],
        )
        if version < SCHEMA_VERSION:
            await conn.execute("INSERT INTO tidings_schema VALUES ($1, $2)", SCHEMA_VERSION, stamp)


async def _fetch_refs(conn: Conn, refs: list[list[Any]]) -> list[Notification]:
    if not refs:
        return []
    columns = ", ".join(f"n.{c.strip()}" for c in COLUMNS.split(","))
    rows = await conn.fetch(
        f"SELECT {columns} "
        "FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r (user_id, seq, i) "
        "JOIN tidings_notifications AS n ON n.user_id = r.user_id AND n.seq = r.seq ORDER BY r.i",
        [r[0] for r in refs],
        [r[1] for r in refs],
    )
    return [notification(r) for r in rows]
