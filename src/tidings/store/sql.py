"""The SQL the SQLite and PostgreSQL stores share: each query rule written once.

What a list, a count or a replay shows (not archived unless asked, not snoozed unless asked,
never expired), what marking up to a seq touches, where expiry and snooze times are found, and
the shape of a claim (lease rows whose time has come, oldest first) are the same on both; the
dialects differ only in how a statement is spelled: placeholders (`?` or `$1`), the tables'
prefix, a list parameter (`IN (?, ?)` or `= ANY($1::bigint[])`) and what a claim adds so that
concurrent claimers take different rows. That difference is a `Dialect`, as ntfy's webpush
store keeps one statement table per dialect. Each function returns `(sql, params)`; the
backend runs it its own way (a thread and a connection for SQLite, a pool for PostgreSQL).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tidings.clock import Clock
from tidings.models import Counts, Notification, Snooze
from tidings.store.common import COLUMNS, chunks, counts_of, notification

__all__ = [
    "POSTGRES",
    "SCHEDULED",
    "SNOOZED",
    "SQLITE",
    "Claimable",
    "Dialect",
    "Query",
    "SqlQueries",
    "Statement",
    "after",
    "claim",
    "counts",
    "expired_between",
    "group_heads",
    "mark_up_to",
    "next_expiry",
    "next_snoozed",
    "page",
    "unread_count",
]

# A statement and its parameters, in the order its placeholders stand.
Query = tuple[str, list[Any]]


@dataclass(frozen=True)
class Dialect:
    """How one database spells what the rules say."""

    # The tables' prefix (PostgreSQL's share a database with the application's).
    prefix: str
    # Placeholders `$1, $2, …` (each parameter once, in order) rather than `?`.
    numbered: bool
    # What a claim's inner SELECT adds: PostgreSQL's nodes claiming at once each take rows the
    # others are not taking; SQLite runs the whole UPDATE under its one write lock.
    skip_locked: str

    def table(self, name: str) -> str:
        return self.prefix + name


SQLITE = Dialect(prefix="", numbered=False, skip_locked="")
POSTGRES = Dialect(prefix="tidings_", numbered=True, skip_locked=" FOR UPDATE SKIP LOCKED")


class Statement:
    """One statement's parameters: `q(value)` adds one and is its placeholder, written where
    the value is used, so the order of the parameters is the order of the text."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.params: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}" if self.dialect.numbered else "?"

    def any_of(self, column: str, values: Sequence[Any], kind: Literal["text", "bigint"]) -> str:
        """`column` is one of `values` (a SQLite caller keeps them under its bound-parameter
        limit, in chunks)."""
        if self.dialect.numbered:
            return f"{column} = ANY({self(list(values))}::{kind}[])"
        return f"{column} IN ({', '.join(self(v) for v in values)})"

    def query(self, sql: str) -> Query:
        return sql, self.params


def unexpired(q: Statement, now: int) -> str:
    """Past its `expires_at` a notification is gone from every list, count and replay."""
    return f" AND (expires_ms IS NULL OR expires_ms > {q(now)})"


def live(q: Statement, now: int) -> str:
    """What every list, count and replay adds: not expired, and a snoozed notification is gone
    until it wakes (`wake_snoozed` clears `snoozed_ms`)."""
    return " AND snoozed_ms IS NULL" + unexpired(q, now)


def shelf(archived: bool) -> str:
    """The archived ones, or the others."""
    return " AND archived_ms IS NOT NULL" if archived else " AND archived_ms IS NULL"


def listed(q: Statement, *, category: str | None, archived: bool, snoozed: bool, now: int) -> str:
    """What a list shows: of `category` when given; the archived ones or the others; the
    snoozed ones or the others; never an expired one."""
    where = "" if category is None else f" AND category = {q(category)}"
    where += shelf(archived)
    return where + (" AND snoozed_ms IS NOT NULL" + unexpired(q, now) if snoozed else live(q, now))


def after(d: Dialect, columns: str, user_id: str, seq: int, limit: int, now: int) -> Query:
    """The replay: what follows `seq`, ascending (`Store.after`), each row `columns`."""
    q = Statement(d)
    return q.query(
        f"SELECT {columns} FROM {d.table('notifications')} WHERE user_id = {q(user_id)} "
        f"AND seq > {q(seq)}{live(q, now)} ORDER BY seq LIMIT {q(limit)}"
    )


def page(
    d: Dialect,
    columns: str,
    user_id: str,
    *,
    limit: int,
    before: int | None,
    unread_only: bool,
    category: str | None,
    archived: bool,
    snoozed: bool,
    now: int,
) -> Query:
    """The list, newest first (`Store.page`), each row `columns`."""
    q = Statement(d)
    where = f"user_id = {q(user_id)}"
    if before is not None:
        where += f" AND seq < {q(before)}"
    if unread_only:
        where += " AND read_ms IS NULL"
    where += listed(q, category=category, archived=archived, snoozed=snoozed, now=now)
    return q.query(
        f"SELECT {columns} FROM {d.table('notifications')} WHERE {where} "
        f"ORDER BY seq DESC LIMIT {q(limit)}"
    )


def unread_count(d: Dialect, user_id: str, now: int) -> Query:
    q = Statement(d)
    return q.query(
        f"SELECT count(*) FROM {d.table('notifications')} WHERE user_id = {q(user_id)} "
        f"AND read_ms IS NULL{shelf(False)}{live(q, now)}"
    )


def counts(d: Dialect, user_id: str, now: int) -> Query:
    """Per category: unread, unseen (rows: category, unread, unseen)."""
    q = Statement(d)
    return q.query(
        "SELECT category, count(*) FILTER (WHERE read_ms IS NULL), "
        f"count(*) FILTER (WHERE seen_ms IS NULL) FROM {d.table('notifications')} "
        f"WHERE user_id = {q(user_id)}{shelf(False)} AND (read_ms IS NULL OR seen_ms IS NULL)"
        f"{live(q, now)} GROUP BY category"
    )


def group_heads(
    d: Dialect,
    user_id: str,
    groups: Sequence[str],
    *,
    category: str | None,
    archived: bool,
    now: int,
) -> Query:
    """Per group among the unread ones: the newest seq and how many (rows: grp, head, n)."""
    q = Statement(d)
    where = f"user_id = {q(user_id)} AND read_ms IS NULL AND {q.any_of('grp', groups, 'text')}"
    where += listed(q, category=category, archived=archived, snoozed=False, now=now)
    return q.query(
        f"SELECT grp, max(seq), count(*) FROM {d.table('notifications')} WHERE {where} GROUP BY grp"
    )


def mark_up_to(
    d: Dialect, column: Literal["seen_ms", "read_ms"], user_id: str, up_to: int, stamp: int
) -> Query:
    """Seen (or read) up to `up_to`, never a snoozed one (rows: seq)."""
    q = Statement(d)
    return q.query(
        f"UPDATE {d.table('notifications')} SET {column} = {q(stamp)} "
        f"WHERE user_id = {q(user_id)} AND seq <= {q(up_to)} AND {column} IS NULL "
        "AND snoozed_ms IS NULL RETURNING seq"
    )


def next_expiry(d: Dialect, after_ms: int) -> Query:
    q = Statement(d)
    return q.query(
        f"SELECT min(expires_ms) FROM {d.table('notifications')} WHERE expires_ms > {q(after_ms)}"
    )


def expired_between(d: Dialect, after_ms: int, upto_ms: int, limit: int) -> Query:
    """(rows: user_id, seq), on the expires_ms index."""
    q = Statement(d)
    return q.query(
        f"SELECT user_id, seq FROM {d.table('notifications')} "
        f"WHERE expires_ms > {q(after_ms)} AND expires_ms <= {q(upto_ms)} "
        f"ORDER BY expires_ms LIMIT {q(limit)}"
    )


def next_snoozed(d: Dialect) -> Query:
    q = Statement(d)
    return q.query(
        f"SELECT min(snoozed_ms) FROM {d.table('notifications')} WHERE snoozed_ms IS NOT NULL"
    )


@dataclass(frozen=True)
class Claimable:
    """Rows a node claims with a lease: what names one (`key`, a column list), which are
    candidates (`where`), when one is due, its lease column, the claim order, what is returned."""

    table: str
    key: str
    where: str
    due: str
    lease: str
    order: str
    returning: str


# `Store.claim_due`: pending scheduled rows, oldest due first, then in the order they were
# scheduled (rows: key, user_id, deliver_ms, draft, created_ms).
SCHEDULED = Claimable(
    table="scheduled",
    key="key, user_id",
    where="state = 'pending'",
    due="deliver_ms",
    lease="lease_until",
    order="deliver_ms, created_ms, key",
    returning="key, user_id, deliver_ms, draft, created_ms",
)
# `Store.claim_snoozed`: snoozed notifications, earliest first (rows: user_id, seq, snoozed_ms).
SNOOZED = Claimable(
    table="notifications",
    key="user_id, seq",
    where="snoozed_ms IS NOT NULL",
    due="snoozed_ms",
    lease="snooze_lease",
    order="snoozed_ms",
    returning="user_id, seq, snoozed_ms",
)


def claim(d: Dialect, rows: Claimable, now: int, lease_ms: int, limit: int) -> Query:
    """Lease, for `lease_ms`, up to `limit` of `rows` whose time has come and whose lease (if
    any) ran out, in their order; one statement, so no two claimers take a row while its lease
    runs."""
    q = Statement(d)
    name = d.table(rows.table)
    return q.query(
        f"UPDATE {name} SET {rows.lease} = {q(now + lease_ms)} WHERE ({rows.key}) IN ("
        f"SELECT {rows.key} FROM {name} WHERE {rows.where} AND {rows.due} <= {q(now)} "
        f"AND {rows.lease} < {q(now)} ORDER BY {rows.order} LIMIT {q(limit)}{d.skip_locked}) "
        f"RETURNING {rows.returning}"
    )


class SqlQueries(abc.ABC):
    """The store operations that are one shared statement and its reading, for a SQL backend
    to inherit: it says its `dialect`, how it runs a read and a write (`_read`, `_write`), and
    (SQLite) how many list items one statement may bind (`in_chunk`)."""

    dialect: Dialect
    clock: Clock
    # Items of a list parameter per statement; None: any number (PostgreSQL binds one array).
    in_chunk: int | None = None

    @abc.abstractmethod
    async def _read(self, query: Query) -> list[Any]:
        """Run `query` as a read; its rows."""

    @abc.abstractmethod
    async def _write(self, query: Query) -> list[Any]:
        """Run `query` as a write (one statement, its own transaction); the rows it returns."""

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        query = after(self.dialect, COLUMNS, user_id, seq, limit, self.clock.now_ms())
        return [notification(r) for r in await self._read(query)]

    async def page(
        self,
        user_id: str,
        *,
        limit: int,
        before: int | None,
        unread_only: bool,
        category: str | None = None,
        archived: bool = False,
        snoozed: bool = False,
    ) -> list[Notification]:
        query = page(
            self.dialect,
            COLUMNS,
            user_id,
            limit=limit,
            before=before,
            unread_only=unread_only,
            category=category,
            archived=archived,
            snoozed=snoozed,
            now=self.clock.now_ms(),
        )
        return [notification(r) for r in await self._read(query)]

    async def unread_count(self, user_id: str) -> int:
        rows = await self._read(unread_count(self.dialect, user_id, self.clock.now_ms()))
        return int(rows[0][0])

    async def counts(self, user_id: str) -> Counts:
        rows = await self._read(counts(self.dialect, user_id, self.clock.now_ms()))
        return counts_of((r[0], int(r[1]), int(r[2])) for r in rows)

    async def group_heads(
        self, user_id: str, groups: Sequence[str], *, category: str | None, archived: bool
    ) -> dict[str, tuple[int, int]]:
        heads: dict[str, tuple[int, int]] = {}
        now = self.clock.now_ms()
        wanted = list(dict.fromkeys(groups))
        for chunk in chunks(wanted, self.in_chunk or max(1, len(wanted))):
            query = group_heads(
                self.dialect, user_id, chunk, category=category, archived=archived, now=now
            )
            heads.update((r[0], (int(r[1]), int(r[2]))) for r in await self._read(query))
        return heads

    async def mark_seen(self, user_id: str, up_to: int) -> list[int]:
        query = mark_up_to(self.dialect, "seen_ms", user_id, up_to, self.clock.now_ms())
        return sorted(r[0] for r in await self._write(query))

    async def claim_snoozed(self, lease_ms: int, limit: int) -> list[Snooze]:
        query = claim(self.dialect, SNOOZED, self.clock.now_ms(), lease_ms, limit)
        found = (Snooze(r[0], r[1], r[2]) for r in await self._write(query))
        return sorted(found, key=lambda s: (s.until_ms, s.seq))

    async def next_snoozed(self) -> int | None:
        return _number((await self._read(next_snoozed(self.dialect)))[0][0])

    async def next_expiry(self, after_ms: int) -> int | None:
        return _number((await self._read(next_expiry(self.dialect, after_ms)))[0][0])

    async def expired_between(
        self, after_ms: int, upto_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        rows = await self._read(expired_between(self.dialect, after_ms, upto_ms, limit))
        return [(r[0], r[1]) for r in rows]


def _number(found: Any) -> int | None:
    return None if found is None else int(found)
