"""MongoDB store on PyMongo's async API; also runs on FerretDB v1 (no transactions there).

Seq order without transactions: the unique index on (user_id, seq) is the per-user lock. A
publisher computes the user's next seq from what is visible (the newest notification, or the
`users` floor that deleting and pruning raise before they remove one) and inserts it; when
another publisher took that seq first, the insert fails on the unique index and the loser
recomputes and tries again. So N+1 can only be claimed after N was visible, and a seq is visible
the moment it is claimed: commit order equals seq order, and a reader never meets a hole that
fills later. No counter to update, no grace period for readers; the same code runs on a MongoDB
replica set, where a transaction would add nothing to the order.

Deleting leaves a tombstone: the document keeps its user_id and seq (and so its place in the
unique index) with the payload stripped and `deleted` set, and every read filters tombstones out.
Removing the document would free its seq for a publisher that computed it before the delete.

Idempotency: a publish with a key tags its documents with the key. Once an insert may have been
sent the key is never freed; a failed attempt marks it abandoned, and the retry (or, after a
crash, the takeover) finds the documents already tagged, inserts only for the users still
missing, and returns the whole set as a first publish (so it is announced). Removing the
documents instead is not safe without transactions: they were visible the moment they were
inserted, and the removal would fail in the very outage that failed the publish.

The fence: a keyed document's `_id` is made of the key and the user, so the unique `_id` index
refuses a second document for one key and user at insert time, whoever sends it. A slow node
whose claim was taken over meanwhile loses that insert, finds the document the new owner
stored, and answers with it: one notification per key and user, whatever the timing. That is
what lets the takeover age be seconds instead of a minute.

Write concern: `w=majority` with journaling unless the URL sets `w` or `journal`, so an
acknowledged publish is on disk (and on most replica-set members) before it is answered.

Retention: `prune` deletes in bounded batches and first raises the users' `pruned_upto`, so a
stream resuming below it is told to reset. The TTL index is only a safety net for a deployment
whose nodes stopped pruning: it expires a day after the retention, and deletes silently.
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
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WaitQueueTimeoutError,
)

from tidings.clock import Clock
from tidings.models import (
    Counts,
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
from tidings.store.base import StoreUnavailable, Subscribed
from tidings.store.common import (
    CANCELLED,
    DELIVERED,
    FEATURES,
    PENDING,
    SCHEMA_VERSION,
    OrderStamps,
    by_key,
    by_skip,
    check_fingerprint,
    check_schema,
    chunks,
    counts_of,
    decode_preferences,
    deliver_by_key,
    delivery_key,
    due,
    encode_data,
    encode_draft,
    encode_preferences,
    features_of,
    inbox_values,
    made,
    notification,
    pending_steps,
    used_now,
)

__all__ = ["MongoStore"]

Doc = dict[str, Any]
T = TypeVar("T")

log = logging.getLogger("tidings.store.mongo")

# Every network await is bounded (pymongo applies these to each operation).
CONNECT_TIMEOUT_MS = 5_000
SERVER_SELECTION_TIMEOUT_MS = 5_000
SOCKET_TIMEOUT_MS = 30_000
POOL_MAX = 20
# `$in` lists and bulk writes are sent in chunks of this many users.
CHUNK = 1000
# A publish to at most this many users raises their floors, the next publish's first guess (see
# `_taken`); a larger one leaves them (see `_add`'s end).
FLOOR_HINTS_MAX = 100
# How many users' latest seq a process remembers as the next publish's first guess.
RECENT_MAX = 100_000
# Point lookups (`_recover`, `_newest`) run this many at a time.
LOOKUPS = 8
# A publisher that keeps losing the race for a seq gives up (it answers 503) instead of spinning.
CLAIM_ATTEMPTS = 200
# A repeated idempotency key waits this long for the first call to finish; a claim older than
# the takeover age is a crashed (or very slow) publisher's and is taken over. Short, because the
# `_id` fence makes a takeover of a live publisher harmless; the wait outlasts the takeover age,
# so a retry after a crash completes the publish itself instead of answering 503.
IDEMPOTENCY_WAIT = 4.0
IDEMPOTENCY_POLL = 0.1
IDEMPOTENCY_TAKEOVER_MS = 3_000
TTL_MARGIN_DAYS = 1.0
DUPLICATE_KEY = 11000
BULK_UPDATES = 50
# FerretDB: a process's turn to write users' documents (`_turn`) is taken from it after this
# long (it crashed holding it); a turn is one prune batch's few bulk writes, milliseconds.
TURN_LEASE_MS = 30_000
TURN_POLL = 0.02
NOT_IMPLEMENTED = 238
# A batched catch-up read (`after_many`, `position_many`) reads one range of seqs for all its
# users. On MongoDB, requests further apart than this are read in separate ranges (each an index
# range, so reading beyond what was asked costs); on FerretDB every read is a scan of the whole
# collection, so all are read in one.
BATCH_SPAN = 2_000
# `position_many` reads this many seqs above each user's floor (on MongoDB; on FerretDB, all
# of them: the read is a scan either way); a user with more is searched alone (`_newest`).
SEARCH_SPAN = 100
# What every read adds to its filter: tombstones are invisible.
LIVE: Doc = {"deleted": {"$ne": True}}

UNAVAILABLE: tuple[type[BaseException], ...] = (
    ConnectionFailure,
    ExecutionTimeout,
    WaitQueueTimeoutError,
    TimeoutError,
    OSError,
)


# The document fields of `inbox_values`, in its order (`group` is no reserved word here).
INBOX_FIELDS = ("category", "actor", "actions", "group", "expires_ms")


# What lists and counts add: a snoozed notification is gone from them until it wakes
# (`wake_snoozed` unsets `snoozed_ms`; a missing field matches too).
AWAKE: Doc = {"snoozed_ms": None}
# What waking sets (the SQL stores' `WOKEN`): back unread and unseen, the lease dropped.
_WOKEN: Doc = {"snoozed_ms": None, "read_ms": None, "seen_ms": None, "snooze_lease": 0}


def _archived(archived: bool) -> Doc:
    """The filter for archived notifications, or for the others (`None` also matches a
    document stored before schema 3, which has no such field)."""
    return {"archived_ms": {"$ne": None}} if archived else {"archived_ms": None}


def _unexpired(now: int) -> Doc:
    """What every list and count adds: past `expires_at`, gone (no field: never expires)."""
    return {"$and": [{"$or": [{"expires_ms": None}, {"expires_ms": {"$gt": now}}]}]}


def _fence(key: str, user_id: str) -> str:
    """The `_id` of the one document a key may have for a user."""
    return json.dumps([key, user_id], ensure_ascii=False, separators=(",", ":"))


def _doc(user_id: str, seq: int, draft: Draft, data: str, stamp: int, key: str | None) -> Doc:
    doc: Doc = {
        "user_id": user_id,
        "seq": seq,
        "message": draft.message,
        "link": draft.link,
        "kind": draft.kind,
        "data": data,
        "created_ms": stamp,
        "read_ms": None,
        # For the TTL index, which only expires on dates.
        "created_at": datetime.fromtimestamp(stamp / 1000, UTC),
    }
    # The inbox fields only when set: a document stays as small as schema 2 wrote it otherwise.
    for name, value in zip(INBOX_FIELDS, inbox_values(draft), strict=True):
        if value is not None:
            doc[name] = value
    if key is not None:
        doc["_id"] = _fence(key, user_id)
        doc["ikey"] = key
    return doc


def _notification(doc: Doc) -> Notification:
    return notification(
        (
            doc["user_id"],
            doc["seq"],
            doc["message"],
            doc.get("link"),
            doc.get("kind"),
            doc["data"],
            doc["created_ms"],
            doc.get("read_ms"),
            *(doc.get(name) for name in INBOX_FIELDS),
            doc.get("seen_ms"),
            doc.get("archived_ms"),
            doc.get("snoozed_ms"),
        )
    )


def _spans(ranges: Sequence[tuple[int, float, T]], span: float) -> list[list[T]]:
    """The ranges' items in groups, each group's ranges within one of at most `span` seqs."""
    groups: list[list[T]] = []
    start: float = 0
    end: float = 0
    for low, high, item in sorted(ranges, key=lambda r: r[0]):
        if groups and max(end, high) - start <= span:
            groups[-1].append(item)
            end = max(end, high)
        else:
            groups.append([item])
            start, end = low, high
    return groups


def _caught_up(docs: list[Doc], seq: int, limit: int, now: int) -> list[Notification] | None:
    """`after(…, seq, limit)` from every document of the user with `seq < seq' <= seq + limit`,
    or None when they cannot say for certain: the seqs above a user's floor are dense (a delete
    leaves a tombstone, pruning removes from the bottom), so when the range holds no hole and
    does not reach its end, nothing lies beyond it."""
    docs.sort(key=lambda d: d["seq"])
    if [d["seq"] for d in docs] != list(range(seq + 1, seq + 1 + len(docs))):
        return None
    live = [
        d
        for d in docs
        if d.get("deleted") is not True
        and d.get("snoozed_ms") is None
        and (d.get("expires_ms") is None or d["expires_ms"] > now)
    ]
    if len(docs) == limit and len(live) < limit:
        return None  # the range is full: live ones may lie beyond it
    return [_notification(d) for d in live]


def _write_concern(url: str) -> dict[str, Any]:
    """Durable by default; a URL that sets `w` or `journal` itself is taken as it is."""
    given = {k.lower() for k in parse_qs(urlsplit(url).query)}
    concern: dict[str, Any] = {}
    if "w" not in given:
        concern["w"] = "majority"
    if "journal" not in given:
        concern["journal"] = True
    return concern


class MongoStore:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_days: float | None = None,
        clock: Clock | None = None,
        takeover_ms: int = IDEMPOTENCY_TAKEOVER_MS,
    ) -> None:
        self.url = url
        self.database = database
        self.retention_days = retention_days
        self.clock = clock or Clock()
        self.takeover_ms = takeover_ms
        self._client: AsyncMongoClient[Doc] | None = None
        self._group_max = True
        self._order = OrderStamps()
        # FerretDB v1 runs an update as a read of the whole document and an unconditional write
        # of it, whatever the filter (a compare-and-set by filter does not hold there either), so
        # two writers of one user document, in any process, can write back a `pruned_upto` the
        # other raised (a hole no stream is told of). There (`_ferret`), the publishers' floor
        # hints go to documents of their own (`floors`), and a prune raises the users' documents
        # only in its turn (`_turn`), one process at a time. MongoDB applies each `$max`
        # atomically and needs neither.
        self._ferret = False
        # Whether every user's floor is a publish's first guess (see `_taken`): a store made by
        # this version. One made before holds notifications no floor knows of.
        self._hinted = False
        # The seqs this process handed out lately, per user: a better first guess than a floor
        # a broadcast left behind (see `_taken`). Bounded, oldest forgotten first.
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()
        # How far apart a batch's requests may be and still be read in one range (see
        # BATCH_SPAN): unbounded on a server that scans anyway (found at open).
        self._batch_span: float = BATCH_SPAN
        self._search_span: float = SEARCH_SPAN

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def _db(self) -> AsyncDatabase[Doc]:
        if self._client is None:
            raise StoreUnavailable("MongoDB: the store is not open")
        return self._client[self.database]

    @property
    def _notifications(self) -> AsyncCollection[Doc]:
        return self._db["notifications"]

    @property
    def _users(self) -> AsyncCollection[Doc]:
        return self._db["users"]

    @property
    def _hints(self) -> AsyncCollection[Doc]:
        # FerretDB only: the publishers' floor hints, one document per user (see `_ferret`).
        return self._db["floors"]

    @property
    def _turns(self) -> AsyncCollection[Doc]:
        # FerretDB only: whose turn it is to raise users' documents (see `_turn`).
        return self._db["turns"]

    @property
    def _idempotency(self) -> AsyncCollection[Doc]:
        return self._db["idempotency"]

    @property
    def _scheduled(self) -> AsyncCollection[Doc]:
        return self._db["scheduled"]

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"MongoDB: {type(exc).__name__}: {exc}") from exc

    async def open(self) -> None:
        self._client = AsyncMongoClient(
            self.url,
            connectTimeoutMS=CONNECT_TIMEOUT_MS,
            serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
            socketTimeoutMS=SOCKET_TIMEOUT_MS,
            waitQueueTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
            maxPoolSize=POOL_MAX,
            tz_aware=True,
            # The claim protocol needs each write's own outcome; a blind retry could report a
            # duplicate for our own insert.
            retryWrites=False,
            appname="tidings",
            **_write_concern(self.url),
        )
        async with self._guard():
            await self._migrate()
            info = await self._client.admin.command("buildInfo")
        if "ferretdbVersion" in info:
            self._batch_span = self._search_span = math.inf
            self._ferret = True

    async def _migrate(self) -> None:
        meta = self._db["meta"]
        found = await meta.find_one({"_id": "schema"})
        version = 0 if found is None else int(found["version"])
        check_schema("MongoDB", version)
        # Every feature's indexes are made below on each open (idempotent): the steps are only
        # checked, so a database a newer tidings gave a feature this one does not know is refused.
        recorded = {} if found is None else dict(found.get("features", {}))
        pending_steps("MongoDB", features_of(version, recorded))
        # A new store: every publish raises its users' floors from the first one on, so a floor
        # is a publish's first guess (see `_taken`). An older store keeps reading the newest
        # document of each user.
        if found is None:
            with contextlib.suppress(DuplicateKeyError):
                await meta.insert_one({"_id": "floors_hint", "since": self.clock.now_ms()})
        self._hinted = await meta.find_one({"_id": "floors_hint"}) is not None
        notifications = self._notifications
        # Each user query is a range scan of one of these.
        await notifications.create_index(
            [("user_id", ASCENDING), ("seq", ASCENDING)], unique=True, name="user_seq"
        )
        await notifications.create_index(
            [("user_id", ASCENDING), ("read_ms", ASCENDING), ("seq", ASCENDING)],
            name="user_unread_seq",
        )
        await notifications.create_index([("created_ms", ASCENDING)], name="created_ms")
        await self._idempotency.create_index([("created_ms", ASCENDING)], name="created_ms")
        # Schema 4: the due scan of scheduled notifications, cancelling by key, pruning done
        # rows; and the expiry sweep.
        scheduled = self._scheduled
        await scheduled.create_index([("state", ASCENDING), ("deliver_ms", ASCENDING)], name="due")
        await scheduled.create_index([("key", ASCENDING)], name="key")
        await scheduled.create_index([("done_ms", ASCENDING)], name="done_ms")
        await notifications.create_index([("expires_ms", ASCENDING)], name="expires_ms")
        # Step 7, snooze: the wake-up scan looks for the earliest snoozed_ms.
        await notifications.create_index([("snoozed_ms", ASCENDING)], name="snoozed_ms")
        # The email digest's leases, looked up by user and generation (schema 6).
        await self._db["email_claims"].create_index(
            [("user_id", ASCENDING), ("gen", ASCENDING), ("k", ASCENDING)], name="user_gen_k"
        )
        # Step 5, Web Push: a user's subscriptions are listed and counted by user.
        await self._db["push_subscriptions"].create_index([("user_id", ASCENDING)], name="user_id")
        if self.retention_days is not None:
            await self._ensure_ttl(notifications)
        await meta.update_one(
            {"_id": "schema"},
            {"$set": {"version": SCHEMA_VERSION, "features": FEATURES}},
            upsert=True,
        )

    async def _ensure_ttl(self, notifications: AsyncCollection[Doc]) -> None:
        assert self.retention_days is not None
        seconds = int((self.retention_days + TTL_MARGIN_DAYS) * 86400)
        try:
            current = await notifications.index_information()
            ttl = current.get("created_at_ttl")
            if ttl is not None and ttl.get("expireAfterSeconds") != seconds:
                # The retention changed; a TTL index is rebuilt rather than altered, because
                # collMod is not on every MongoDB-protocol server.
                await notifications.drop_index("created_at_ttl")
            await notifications.create_index(
                [("created_at", ASCENDING)], expireAfterSeconds=seconds, name="created_at_ttl"
            )
        except OperationFailure as exc:
            # Explicit pruning does the work; the TTL index is a safety net only.
            log.warning("MongoDB: no TTL index (%s); retention relies on pruning", exc)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(PyMongoError):
                await client.close()

    async def ping(self) -> None:
        async with self._guard():
            await self._db.command("ping")

    # -- publishing -------------------------------------------------------------------------------

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        user_ids = list(dict.fromkeys(draft.user_ids))
        async with self._guard():
            if idempotency_key is None:
                return Stored(tuple(await self._insert_unkeyed(user_ids, draft)))
            key = idempotency_key
            owner, replayed, recover = await self._claim_key(key, draft)
            if replayed is not None:
                return replayed
            try:
                done = await self._recover(key, user_ids) if recover else {}
                rest = [u for u in user_ids if u not in done]
                # A key this call created, and still owns, has no other owner's documents: a
                # lost insert is a lost seq, with nothing under the fence to read back.
                done.update(await self._insert(rest, draft, key, None if recover else owner))
                result = [n for u in user_ids if (n := done[u]) is not None]
                await self._record_refs(key, owner, result)
            except BaseException:
                # Never free the key once an insert may have been sent: a retry would store
                # again. Mark it abandoned so the retry takes it over at once and completes it;
                # if this fails too, the takeover age does the same later.
                with contextlib.suppress(PyMongoError, OSError):
                    await self._idempotency.update_one(
                        {"_id": key, "owner": owner, "refs": None}, {"$set": {"owner": None}}
                    )
                raise
        return Stored(tuple(result))

    async def _insert_unkeyed(self, user_ids: list[str], draft: Draft) -> list[Notification]:
        got = await self._insert(user_ids, draft, None)
        return [n for u in user_ids if (n := got[u]) is not None]

    async def _record_refs(self, key: str, owner: str, made: Sequence[Notification]) -> None:
        # The key is done; what it stored is found again by the fence (`_replay`), not listed
        # here: FerretDB v1 reads every document of a collection in full for a lookup in it, and
        # a list of a broadcast's users made each later publish's key lookups slower, in
        # proportion to all the notifications ever published with a key (issue 22, item 3).
        # Still a list, empty: a store made before this version reads it as done, and its own
        # non-empty lists stay readable (`_fetch_refs`).
        refs: list[Doc] = []
        # Filtered by `_id` alone, the owner checked here: FerretDB v1 scans the whole
        # collection for any other filter (one document per keyed publish), which made every
        # publish slower as the store grew. Should the key have been taken over meanwhile, the
        # new owner's refs name the same notifications (one per user under the key's fence).
        found = await self._idempotency.find_one({"_id": key}, {"owner": 1})
        if found is not None and found.get("owner") == owner:
            await self._idempotency.update_one({"_id": key}, {"$set": {"refs": refs}})

    async def _recover(self, key: str, user_ids: Sequence[str]) -> dict[str, Notification | None]:
        """What an abandoned attempt with this key stored, per user (None: deleted since)."""

        # By the fence, `_id`: FerretDB v1 scans the collection for `{user_id: {$in}, ikey}`.
        async def one(user_id: str) -> Doc | None:
            return await self._notifications.find_one({"_id": _fence(key, user_id)})

        found: dict[str, Notification | None] = {}
        for user_id, doc in zip(user_ids, await self._each(one, user_ids), strict=True):
            if doc is not None:
                found[user_id] = None if doc.get("deleted") else _notification(doc)
        return found

    async def _each(self, fn: Callable[[str], Awaitable[T]], user_ids: Sequence[str]) -> list[T]:
        """`fn` for every user, `LOOKUPS` at a time: point lookups, one round trip each."""
        gate = asyncio.Semaphore(LOOKUPS)

        async def gated(user_id: str) -> T:
            async with gate:
                return await fn(user_id)

        return list(await asyncio.gather(*(gated(u) for u in user_ids)))

    async def _claim_key(self, key: str, draft: Draft) -> tuple[str, Stored | None, bool]:
        """Own the key, or return what its first call stored.

        The flag says the key was taken over from an abandoned or crashed attempt, which may
        have stored for some of the users already.
        """
        owner = secrets.token_hex(8)
        fingerprint = draft.fingerprint()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IDEMPOTENCY_WAIT
        while True:
            stamp = self.clock.now_ms()
            try:
                await self._idempotency.insert_one(
                    {
                        "_id": key,
                        "created_ms": stamp,
                        "owner": owner,
                        "refs": None,
                        "fp": fingerprint,
                    }
                )
                return owner, None, False
            except DuplicateKeyError:
                pass
            found = await self._idempotency.find_one({"_id": key})
            if found is None:
                continue  # pruned meanwhile
            check_fingerprint(key, found.get("fp"), draft)
            if found.get("refs") is not None:
                refs = found["refs"]
                made = await self._fetch_refs(refs) if refs else await self._replay(key, draft)
                stored = Stored(tuple(made), replayed=True)
                return owner, stored, False
            abandoned = found.get("owner") is None
            if abandoned or stamp - int(found["created_ms"]) > self.takeover_ms:
                taken = await self._idempotency.update_one(
                    {"_id": key, "owner": found.get("owner"), "refs": None},
                    {"$set": {"owner": owner, "created_ms": stamp}},
                )
                if taken.modified_count:
                    return owner, None, True
                continue
            if loop.time() > deadline:
                raise StoreUnavailable(
                    "MongoDB: a publish with this idempotency key is still in progress"
                )
            await asyncio.sleep(IDEMPOTENCY_POLL)

    async def _replay(self, key: str, draft: Draft) -> list[Notification]:
        """What the key's first call stored, in its users' order: the same draft (the
        fingerprint matched), so the same users, each with one document under the fence."""
        users = list(dict.fromkeys(draft.user_ids))
        found = await self._recover(key, users)
        return [n for u in users if (n := found.get(u)) is not None]

    async def _fetch_refs(self, refs: list[Doc]) -> list[Notification]:
        found: list[Notification] = []
        for chunk in chunks([(r["u"], r["s"]) for r in refs], CHUNK):
            query = {"$or": [{"user_id": u, "seq": s} for u, s in chunk], **LIVE}
            docs = {(d["user_id"], d["seq"]): d async for d in self._notifications.find(query)}
            found.extend(_notification(docs[(u, s)]) for u, s in chunk if (u, s) in docs)
        return found

    async def _insert(
        self, user_ids: list[str], draft: Draft, key: str | None, owner: str | None = None
    ) -> dict[str, Notification | None]:
        """Per user, the notification stored (None: the key's document, deleted since).
        `owner`: the key's owner since it was created, so no one else stores under it while
        it still owns it."""
        if not user_ids:
            return {}
        data = encode_data(draft.data)
        last = await self._taken(user_ids, guess=self._hinted)
        result: dict[str, Notification | None] = {}
        pending = user_ids
        for _ in range(CLAIM_ATTEMPTS):
            stamp = self.clock.now_ms()
            docs = [_doc(u, last[u] + 1, draft, data, stamp, key) for u in pending]
            lost: list[str] = []
            for chunk in chunks(docs, CHUNK):
                lost.extend(await self._insert_chunk(chunk))
            lost_set = set(lost)
            mine = [(d["user_id"], d["seq"]) for d in docs if d["user_id"] not in lost_set]
            result.update((n.user_id, n) for n in made(draft, mine, stamp))
            if not lost:
                break
            if key is not None and not await self._owns(key, owner):
                # Lost to the fence: another owner of this key (one that took it over, or
                # the slow one it was taken from) stored for these users; theirs stands.
                fenced = await self._recover(key, lost)
                result.update(fenced)
                lost = [u for u in lost if u not in fenced]
                if not lost:
                    break
            # Another publisher claimed those seqs first (or a hint lagged): start again from
            # what is visible now, above the seq just refused (it is there).
            taken = await self._taken(lost, known={u: last[u] + 1 for u in lost})
            for u in lost:
                last[u] = max(last[u] + 1, taken[u])
            pending = lost
        else:
            raise StoreUnavailable("MongoDB: too much contention for the users' next seq")
        # The next publish's first guess, read by `_id` (see `_taken`). After the insert: a hint
        # that lags (a crash in between) costs that publish one lost insert, never a wrong seq.
        # Only for a publish to a few users: on FerretDB each update costs milliseconds, and a
        # broadcast to 10,000 users would spend minutes here. A floor a broadcast left behind
        # costs that user's next publish one refused insert (the unique index), never a wrong seq.
        hints = {n.user_id: n.seq for n in result.values() if n is not None}
        self._remember(hints)
        if hints and len(hints) <= FLOOR_HINTS_MAX:
            if self._ferret:
                await self._hint(hints)
            else:
                await self._raise(hints, ("floor",))
        return result

    def _remember(self, seqs: dict[str, int]) -> None:
        recent = self._recent
        for user_id, seq in seqs.items():
            recent[user_id] = max(seq, recent.pop(user_id, 0))
        while len(recent) > RECENT_MAX:
            recent.popitem(last=False)

    async def _insert_chunk(self, docs: Sequence[Doc]) -> list[str]:
        """Insert; return the users whose seq was taken by another publisher."""
        try:
            await self._notifications.insert_many(list(docs), ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if other:
                raise StoreUnavailable(f"MongoDB: insert failed: {other[0].get('errmsg')}") from exc
            return [docs[e["index"]]["user_id"] for e in errors]
        return []

    async def _owns(self, key: str, owner: str | None) -> bool:
        if owner is None:
            return False
        found = await self._idempotency.find_one({"_id": key}, {"owner": 1})
        return found is not None and found.get("owner") == owner

    async def _taken(
        self, user_ids: Sequence[str], *, guess: bool = False, known: dict[str, int] | None = None
    ) -> dict[str, int]:
        """Per user, the highest seq ever handed out (0 for a new user).

        With `guess`, the `users` floors, or the seq this process last handed out when higher:
        each publish to a few users raises their floor to the seq it stored, so the floor is the
        highest seq handed out but for publishes in flight, broadcasts (which leave floors as
        they are: an update per user costs milliseconds on FerretDB) and crashes; the unique
        index refuses such a guess and the retry reads the newest seq. Else the newest seq, found
        from the floor up by point lookups (`_newest`).

        On a MongoDB-protocol server on SQLite (FerretDB v1) only `_id` lookups and equality on
        both fields of the unique (user_id, seq) index use an index: the newest document of a
        user (a sort) or a count is a scan of every notification, which made each publish, and
        each stream's position, slower as the store grew (issue 22, item 3).
        """
        floors, pruned = await self._floors(user_ids)
        if guess:
            return {u: max(f, self._recent.get(u, 0)) for u, f in floors.items()}
        start = {u: max(f, (known or {}).get(u, 0)) for u, f in floors.items()}
        return await self._newest(start, pruned)

    async def _newest(self, floors: dict[str, int], pruned: dict[str, int]) -> dict[str, int]:
        """Per user, the newest seq handed out, from their floors (`_floors`) up.

        Every seq up to a floor was handed out, and the documents above it are there, one per
        seq (a delete leaves a tombstone; pruning raises the floor first and removes from the
        bottom), so an exponential then binary search of point lookups finds the newest in
        O(log n) lookups for n publishes since the floor, however large the store. Should
        pruning raise a floor meanwhile (removing documents this search may have missed), it
        searches that user again from the new floor. Only pruning (`pruned_upto` rising) calls
        for that: a floor raised by publishes meanwhile only means newer seqs, and chasing it
        never ends while a user is published to faster than a search takes.

        FerretDB v1 can lose one of two concurrent `$max` updates of a document, so a floor
        may lag below what pruning removed, leaving a hole above it that ends the search too
        early. A publisher therefore searches from the seq its insert just lost (a document
        that is there, above any hole), never from the floor alone; `position` does, and may
        then answer a last seq that is too low, which costs a stream its catch-up until the
        user's next notification, never a reused seq.
        """
        newest: dict[str, int] = {}
        pending = list(floors)
        while pending:
            found = await self._each(functools.partial(self._newest_from, floors), pending)
            newest.update(zip(pending, found, strict=True))
            again, now_pruned = await self._floors(pending)
            pending = [u for u in pending if now_pruned[u] > pruned[u]]
            floors = {**floors, **{u: max(floors[u], again[u]) for u in pending}}
            pruned = {**pruned, **now_pruned}
        return {u: max(newest[u], floors[u]) for u in newest}

    async def _newest_from(self, floors: dict[str, int], user_id: str) -> int:
        return await self._newest_above(user_id, floors[user_id])

    async def _newest_above(self, user_id: str, low: int) -> int:
        async def taken(seq: int) -> bool:
            query = {"user_id": user_id, "seq": seq}
            return await self._notifications.find_one(query, {"_id": 1}) is not None

        step, high = 1, low + 1
        while await taken(high):
            low, step = high, step * 2
            high = low + step
        while high - low > 1:
            middle = (low + high) // 2
            if await taken(middle):
                low = middle
            else:
                high = middle
        return low

    async def _newest_many(self, user_ids: list[str]) -> AsyncIterator[tuple[str, int]]:
        if self._group_max:
            pipeline: list[Doc] = [
                {"$match": {"user_id": {"$in": user_ids}}},
                {"$group": {"_id": "$user_id", "seq": {"$max": "$seq"}}},
            ]
            try:
                async for doc in await self._notifications.aggregate(pipeline):
                    yield doc["_id"], int(doc["seq"])
                return
            except OperationFailure as exc:
                if exc.code != NOT_IMPLEMENTED:
                    raise
                # FerretDB v1 has no $group accumulators: read the seqs and take the max here.
                self._group_max = False
        cursor = self._notifications.find({"user_id": {"$in": user_ids}}, {"user_id": 1, "seq": 1})
        async for doc in cursor:
            yield doc["user_id"], int(doc["seq"])

    async def _floors(self, user_ids: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
        """Per user, the floor (every seq up to it was handed out), and `pruned_upto`."""
        floors = dict.fromkeys(user_ids, 0)
        pruned = dict.fromkeys(user_ids, 0)
        for chunk in chunks(user_ids, CHUNK):
            # Equality for one user: FerretDB v1 uses the `_id` index for that, not for `$in`.
            query = {"_id": chunk[0]} if len(chunk) == 1 else {"_id": {"$in": list(chunk)}}
            async for doc in self._users.find(query):
                pruned[doc["_id"]] = doc.get("pruned_upto", 0)
                floors[doc["_id"]] = max(doc.get("floor", 0), doc.get("pruned_upto", 0))
            if self._ferret:
                hints = {"_id": chunk[0]} if len(chunk) == 1 else {"_id": {"$in": list(chunk)}}
                async for doc in self._hints.find(hints):
                    floors[doc["_id"]] = max(floors[doc["_id"]], doc.get("floor", 0))
        return floors, pruned

    async def _hint(self, seqs: dict[str, int]) -> None:
        """FerretDB: raise the users' floor hints, kept apart from their documents.

        Two hints of one user can still overwrite each other (FerretDB's update is a read and
        a write); a hint that lags costs that user's next publish one refused insert, never a
        wrong seq, and it can no longer write back a prune's `pruned_upto`.
        """
        for chunk in chunks(list(seqs.items()), BULK_UPDATES):
            ops = [UpdateOne({"_id": u}, {"$max": {"floor": s}}, upsert=True) for u, s in chunk]
            try:
                await self._hints.bulk_write(ops, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise StoreUnavailable("MongoDB: could not record the floor hints") from exc
            except KeyError:
                # Two first hints of one user raced on the upsert, and FerretDB v1 answered the
                # loser without the counts PyMongo reads: a hint only, the next one lands.
                pass

    async def _raise(self, seqs: dict[str, int], fields: tuple[str, ...]) -> None:
        """Raise the users' floor (and pruned_upto) to at least the given seqs."""
        # Create the missing users first, by plain inserts that may lose to another writer, and
        # then update without upserting: FerretDB v1 answers an update command whose upsert lost
        # such a race without the counts PyMongo reads (KeyError: 'nModified').
        for users in chunks(list(seqs), CHUNK):
            try:
                await self._users.insert_many([{"_id": u} for u in users], ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise StoreUnavailable("MongoDB: could not record the users' floors") from exc
        ops = [UpdateOne({"_id": u}, {"$max": dict.fromkeys(fields, s)}) for u, s in seqs.items()]
        async with self._turn() if self._ferret else contextlib.nullcontext():
            # Small bulk writes: FerretDB v1 stalls on an update command with ~100 statements.
            for chunk in chunks(ops, BULK_UPDATES):
                await self._users.bulk_write(list(chunk), ordered=False)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """FerretDB: hold the one turn, across every process on this database, to write users'
        documents.

        Turns are numbered documents in `turns`, and taking turn n+1 is inserting document
        n+1, which the unique `_id` lets exactly one process do: the one atomic step FerretDB
        v1 has (an update's filter is no compare-and-set there). Turn n+1 is taken once turn n
        is done or its holder's lease ran out (it crashed). The holder marks its turn done (no
        one else writes that document) and removes turns taken over two leases ago, so the
        collection holds about a minute of turns (one per prune batch), a small scan.
        """
        turns = self._turns
        while True:
            latest = await turns.find_one({}, sort=[("_id", DESCENDING)])
            # The wall clock, not `self.clock`: the lease is between processes.
            now = int(time.time() * 1000)
            if latest is None or latest.get("done") or latest.get("until_ms", 0) < now:
                mine = 1 if latest is None else int(latest["_id"]) + 1
                try:
                    await turns.insert_one({"_id": mine, "until_ms": now + TURN_LEASE_MS})
                except DuplicateKeyError:
                    continue  # another process took it first
                break
            await asyncio.sleep(TURN_POLL)
        try:
            yield
        finally:
            with contextlib.suppress(*UNAVAILABLE):
                await turns.update_one({"_id": mine}, {"$set": {"done": True}})
                # Only turns whose lease ended a lease ago: a process that read the latest
                # turn before they were taken then finds its insert refused, not accepted for a
                # number that was taken and removed meanwhile.
                old = {"_id": {"$lt": mine - 1}, "until_ms": {"$lt": now - TURN_LEASE_MS}}
                await turns.delete_many(old)

    # -- reading ----------------------------------------------------------------------------------

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        query: Doc = {
            "user_id": user_id,
            "seq": {"$gt": seq},
            **LIVE,
            **AWAKE,
            **_unexpired(self.clock.now_ms()),
        }
        async with self._guard():
            cursor = self._notifications.find(query).sort("seq", ASCENDING).limit(limit)
            return [_notification(d) async for d in cursor]

    async def position(self, user_id: str) -> Position:
        async with self._guard():
            # pruned_upto first: whatever it says was pruned is at or below the newest seq
            # read after it.
            user = await self._users.find_one({"_id": user_id})
            newest = await self._taken([user_id])
        pruned = 0 if user is None else int(user.get("pruned_upto", 0))
        return Position(last_seq=max(pruned, newest[user_id]), pruned_upto=pruned)

    # -- catch-up reads in batches (store/bounded.py batches a reconnect storm's reads) --------
    # FerretDB v1 scans the whole collection for every filter but an `_id` equality, and the
    # scan costs the same for one user as for a hundred in one `$in` (an `$or` of a hundred
    # clauses costs several scans): after a restart, a stream's position and its catch-up were
    # a scan each, and a hundred reconnecting streams were minutes of scans (issue 22, item 4).
    # Each batch below is one range read of its users' notifications (on MongoDB the index's
    # bounds per user), answered per user from what came back; a user the range cannot answer
    # for certain is read alone, as `after` and `position` do.

    async def after_many(
        self, requests: Sequence[tuple[str, int, int]]
    ) -> list[list[Notification]]:
        """`after(user_id, seq, limit)` for each request, in order."""
        answers: list[list[Notification] | None] = [None] * len(requests)
        async with self._guard():
            ranges = [(seq, seq + limit, i) for i, (_, seq, limit) in enumerate(requests)]
            for group in _spans(ranges, self._batch_span):
                low = min(requests[i][1] for i in group)
                high = max(requests[i][1] + requests[i][2] for i in group)
                found = await self._seqs_between([requests[i][0] for i in group], low, high, None)
                now = self.clock.now_ms()
                for i in group:
                    user_id, seq, limit = requests[i]
                    docs = [d for d in found.get(user_id, ()) if seq < d["seq"] <= seq + limit]
                    answers[i] = _caught_up(docs, seq, limit, now)
        return [
            answer if answer is not None else await self.after(*requests[i])
            for i, answer in enumerate(answers)
        ]

    async def position_many(self, user_ids: Sequence[str]) -> list[Position]:
        """`position(user_id)` for each user, in order."""
        users = list(dict.fromkeys(user_ids))
        known: dict[str, Position] = {}
        async with self._guard():
            records = await self._user_records(users)
            pruned = {
                u: int((r or {}).get("pruned_upto", 0)) for u, r in zip(users, records, strict=True)
            }
            floors = {
                u: max(int((r or {}).get("floor", 0)), pruned[u])
                for u, r in zip(users, records, strict=True)
            }
            span = self._search_span
            ranges = [(floors[u], floors[u] + span, u) for u in users]
            for group in _spans(ranges, self._batch_span):
                low = min(floors[u] for u in group)
                high = max(floors[u] for u in group) + span
                found = await self._seqs_between(list(group), low, high, {"seq": 1, "user_id": 1})
                # As in `_newest`: pruning may have raised a floor meanwhile, removing
                # documents this read missed; such a user is read alone.
                again = await self._user_records(list(group))
                for u, record in zip(group, again, strict=True):
                    seqs = sorted(d["seq"] for d in found.get(u, ()) if d["seq"] > floors[u])
                    moved = max(
                        int((record or {}).get("floor", 0)),
                        int((record or {}).get("pruned_upto", 0)),
                    )
                    dense = seqs == list(range(floors[u] + 1, floors[u] + 1 + len(seqs)))
                    if moved > floors[u] or not dense or floors[u] + span in seqs:
                        continue
                    newest = seqs[-1] if seqs else floors[u]
                    known[u] = Position(last_seq=max(pruned[u], newest), pruned_upto=pruned[u])
        return [known[u] if u in known else await self.position(u) for u in user_ids]

    async def _user_records(self, user_ids: list[str]) -> list[Doc | None]:
        """The users' documents (None: none yet), in order: one read per CHUNK users."""
        found: dict[str, Doc] = {}
        for chunk in chunks(user_ids, CHUNK):
            async for doc in self._users.find({"_id": {"$in": list(chunk)}}):
                found[doc["_id"]] = doc
        return [found.get(u) for u in user_ids]

    async def _seqs_between(
        self, user_ids: list[str], low: int, high: float, projection: Doc | None
    ) -> dict[str, list[Doc]]:
        """The users' documents with `low < seq <= high` (tombstones too), by user."""
        seqs: Doc = {"$gt": low} if high == math.inf else {"$gt": low, "$lte": high}
        query: Doc = {"user_id": {"$in": user_ids}, "seq": seqs}
        found: dict[str, list[Doc]] = {}
        async for doc in self._notifications.find(query, projection):
            found.setdefault(doc["user_id"], []).append(doc)
        return found

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
        query: Doc = {
            "user_id": user_id,
            **LIVE,
            **_archived(archived),
            **({"snoozed_ms": {"$ne": None}} if snoozed else AWAKE),
            **_unexpired(self.clock.now_ms()),
        }
        if before is not None:
            query["seq"] = {"$lt": before}
        if unread_only:
            query["read_ms"] = None
        if category is not None:
            query["category"] = category
        async with self._guard():
            cursor = self._notifications.find(query).sort("seq", DESCENDING).limit(limit)
            return [_notification(d) async for d in cursor]

    async def unread_count(self, user_id: str) -> int:
        async with self._guard():
            return await self._notifications.count_documents(
                {
                    "user_id": user_id,
                    "read_ms": None,
                    **LIVE,
                    **AWAKE,
                    **_archived(False),
                    **_unexpired(self.clock.now_ms()),
                }
            )

    async def counts(self, user_id: str) -> Counts:
        # Counted here rather than by $group: FerretDB v1 has no $group accumulators. What is
        # read is the user's unread or unseen notifications, three small fields each.
        query: Doc = {
            "user_id": user_id,
            **LIVE,
            **AWAKE,
            **_archived(False),
            "$or": [{"read_ms": None}, {"seen_ms": None}],
            **_unexpired(self.clock.now_ms()),
        }
        fields = {"category": 1, "read_ms": 1, "seen_ms": 1, "_id": 0}
        rows: list[tuple[str | None, int, int]] = []
        async with self._guard():
            async for doc in self._notifications.find(query, fields):
                unread = int(doc.get("read_ms") is None)
                unseen = int(doc.get("seen_ms") is None)
                rows.append((doc.get("category"), unread, unseen))
        return counts_of(rows)

    async def group_heads(
        self, user_id: str, groups: Sequence[str], *, category: str | None, archived: bool
    ) -> dict[str, tuple[int, int]]:
        heads: dict[str, tuple[int, int]] = {}
        async with self._guard():
            for chunk in chunks(list(dict.fromkeys(groups)), CHUNK):
                query: Doc = {
                    "user_id": user_id,
                    "read_ms": None,
                    "group": {"$in": list(chunk)},
                    **LIVE,
                    **AWAKE,
                    **_archived(archived),
                    **_unexpired(self.clock.now_ms()),
                }
                if category is not None:
                    query["category"] = category
                async for doc in self._notifications.find(query, {"group": 1, "seq": 1}):
                    head, count = heads.get(doc["group"], (0, 0))
                    heads[doc["group"]] = (max(head, int(doc["seq"])), count + 1)
        return heads

    # -- changing ---------------------------------------------------------------------------------

    async def mark_read(
        self, user_id: str, *, ids: Sequence[int] | None = None, up_to: int | None = None
    ) -> list[int]:
        query: Doc = {"user_id": user_id, "read_ms": None, **LIVE}
        if up_to is not None:
            query["seq"] = {"$lte": up_to}
            query.update(AWAKE)
        else:
            query["seq"] = {"$in": sorted(set(ids or ()))}
        return await self._change(query, {"read_ms": None}, {"read_ms": self.clock.now_ms()})

    async def mark_seen(self, user_id: str, up_to: int) -> list[int]:
        query: Doc = {
            "user_id": user_id,
            "seen_ms": None,
            "seq": {"$lte": up_to},
            **LIVE,
            **AWAKE,
        }
        return await self._change(query, {"seen_ms": None}, {"seen_ms": self.clock.now_ms()})

    async def archive(self, user_id: str, ids: Sequence[int], archived: bool) -> list[int]:
        state = _archived(not archived)
        query: Doc = {"user_id": user_id, "seq": {"$in": sorted(set(ids))}, **LIVE, **state}
        stamp = self.clock.now_ms() if archived else None
        return await self._change(query, state, {"archived_ms": stamp})

    async def _change(self, query: Doc, still: Doc, change: Doc) -> list[int]:
        """Set `change` on the user's notifications that `query` finds; their seqs, sorted. The
        seqs first, then an update of exactly those where `still` holds, so a notification
        published meanwhile (a higher seq) is never included."""
        async with self._guard():
            seqs = [d["seq"] async for d in self._notifications.find(query, {"seq": 1})]
            if not seqs:
                return []
            await self._notifications.update_many(
                {"user_id": query["user_id"], "seq": {"$in": seqs}, **still}, {"$set": change}
            )
        return sorted(seqs)

    async def preferences(self, user_id: str) -> Preferences:
        async with self._guard():
            doc = await self._db["preferences"].find_one({"_id": user_id})
        return Preferences() if doc is None else decode_preferences(doc["muted"], doc["channels"])

    async def set_preferences(self, user_id: str, preferences: Preferences) -> None:
        # JSON text, as `data`: one encoding on every store, and any category as a key.
        muted, channels = encode_preferences(preferences)
        async with self._guard():
            await self._db["preferences"].replace_one(
                {"_id": user_id}, {"muted": muted, "channels": channels}, upsert=True
            )

    async def muting(self, user_ids: Sequence[str], category: str) -> set[str]:
        found: set[str] = set()
        async with self._guard():
            for chunk in chunks(list(user_ids), CHUNK):
                query = {"_id": {"$in": list(chunk)}, "muted": {"$ne": "[]"}}
                async for doc in self._db["preferences"].find(query):
                    if category in json.loads(doc["muted"]):
                        found.add(doc["_id"])
        return found

    async def delete(self, user_id: str, seq: int) -> bool:
        # A tombstone, not a removal: the document keeps holding its seq in the unique index, so
        # a publisher that computed this seq before the delete loses its insert and moves on.
        # Read so that the unread count and the unread index skip it; pruning removes it.
        tombstone = {
            "deleted": True,
            "message": "",
            "link": None,
            "kind": None,
            "data": "{}",
            **dict.fromkeys(INBOX_FIELDS),
        }
        async with self._guard():
            result = await self._notifications.update_one(
                {"user_id": user_id, "seq": seq, **LIVE},
                {"$set": {**tombstone, "read_ms": self.clock.now_ms()}},
            )
        return bool(result.modified_count)

    async def prune(self, older_than_ms: int, batch: int) -> int:
        async with self._guard():
            cursor = (
                self._notifications.find(
                    {"created_ms": {"$lt": older_than_ms}}, {"user_id": 1, "seq": 1}
                )
                .sort("created_ms", ASCENDING)
                .limit(batch)
            )
            docs = [d async for d in cursor]
            highest: dict[str, int] = {}
            for d in docs:
                highest[d["user_id"]] = max(d["seq"], highest.get(d["user_id"], 0))
            # pruned_upto first: a stream never sees a hole that is not announced as pruned, and
            # a publisher never reuses a removed seq. Tombstones go with the rest.
            await self._raise(highest, ("floor", "pruned_upto"))
            deleted = 0
            for chunk in chunks([d["_id"] for d in docs], CHUNK):
                result = await self._notifications.delete_many({"_id": {"$in": list(chunk)}})
                deleted += result.deleted_count
            keys = [
                d["_id"]
                async for d in self._idempotency.find(
                    # Finished and abandoned keys alike: a key older than the retention is
                    # garbage (its documents are pruned too).
                    {"created_ms": {"$lt": older_than_ms}},
                    {"_id": 1},
                ).limit(batch)
            ]
            if keys:
                await self._idempotency.delete_many({"_id": {"$in": keys}})
            # Scheduled rows that are done (delivered, cancelled, skipped); pending ones stay.
            done = [
                d["_id"]
                async for d in self._scheduled.find(
                    {"done_ms": {"$lt": older_than_ms}}, {"_id": 1}
                ).limit(batch)
            ]
            if done:
                await self._scheduled.delete_many({"_id": {"$in": done}})
        return deleted

    # -- scheduled notifications (deliver_at) and expiry ------------------------------------------

    async def schedule(self, draft: Draft, key: str) -> Scheduled | None:
        assert draft.deliver_ms is not None
        stamp = self.clock.now_ms()
        order = self._order.next(stamp)
        fingerprint = draft.fingerprint()
        async with self._guard():
            found = await self._scheduled.find_one({"key": key}, {"fp": 1, "created_ms": 1})
            if found is None and draft.deliver_ms <= stamp:
                return None
            if found is None and await self._idempotency.find_one({"_id": key}, {"_id": 1}):
                raise used_now(key)
            if found is not None:
                check_fingerprint(key, found["fp"], draft)
                # A first call that failed midway left some users out: the retry completes it,
                # in the first call's place in the order.
                order = int(found.get("created_ms", order))
            text = encode_draft(draft)
            docs = [
                {
                    # One row per key and user, whoever inserts it: the `_id` index fences it.
                    "_id": _fence(key, u),
                    "key": key,
                    "user_id": u,
                    "deliver_ms": draft.deliver_ms,
                    "draft": text,
                    "fp": fingerprint,
                    "created_ms": order,
                    "state": PENDING,
                    "lease_until": 0,
                    "done_ms": None,
                }
                for u in draft.user_ids
            ]
            inserted = 0
            for chunk in chunks(docs, CHUNK):
                try:
                    result = await self._scheduled.insert_many(list(chunk), ordered=False)
                    inserted += len(result.inserted_ids)
                except BulkWriteError as exc:
                    errors = exc.details.get("writeErrors", [])
                    if any(e.get("code") != DUPLICATE_KEY for e in errors):
                        raise StoreUnavailable("MongoDB: could not schedule") from exc
                    inserted += int(exc.details.get("nInserted", 0))
            if found is None:
                # A concurrent first call may have inserted some rows: every row of the key
                # must be this publish.
                other = await self._scheduled.find_one({"key": key, "fp": {"$ne": fingerprint}})
                if other is not None:
                    check_fingerprint(key, other["fp"], draft)
        return Scheduled(key, draft.deliver_ms, draft.user_ids, replayed=inserted == 0)

    async def claim_due(self, lease_ms: int, limit: int) -> list[Due]:
        now = self.clock.now_ms()
        claimable: Doc = {
            "state": PENDING,
            "deliver_ms": {"$lte": now},
            "lease_until": {"$lt": now},
        }
        order = [("deliver_ms", ASCENDING), ("created_ms", ASCENDING), ("key", ASCENDING)]
        # A token of this claim's own: one update takes the candidates still claimable (the
        # filter repeats the condition, so a row another node leased meanwhile is not matched
        # again; each document's update is atomic), and the token finds which ones it took.
        # One update per batch, not per row: updates are slow on a MongoDB-protocol server.
        token = secrets.token_hex(8)
        async with self._guard():
            cursor = self._scheduled.find(claimable, {"_id": 1}).sort(order).limit(limit)
            ids = [d["_id"] async for d in cursor]
            if not ids:
                return []
            await self._scheduled.update_many(
                {"_id": {"$in": ids}, **claimable},
                {"$set": {"lease_until": now + lease_ms, "claim": token}},
            )
            taken = [d async for d in self._scheduled.find({"_id": {"$in": ids}, "claim": token})]
        taken.sort(key=lambda d: (d["deliver_ms"], d["created_ms"], d["key"]))
        return [due(d["key"], d["user_id"], d["deliver_ms"], d["draft"]) for d in taken]

    async def renew_due(self, rows: Sequence[Due], lease_ms: int) -> int:
        # By `_id` (the fence), the one filter FerretDB v1 finds with an index. This is what
        # keeps a cancel off rows this node is storing (see `cancel_scheduled`).
        count = 0
        until = self.clock.now_ms() + lease_ms
        async with self._guard():
            for group in by_key(rows):
                for chunk in chunks([r.user_id for r in group], CHUNK):
                    fences = [_fence(group[0].key, u) for u in chunk]
                    result = await self._scheduled.update_many(
                        {"_id": {"$in": fences}, "state": PENDING},
                        {"$set": {"lease_until": until}},
                    )
                    count += result.matched_count
        return count

    async def deliver(self, rows: Sequence[Due]) -> list[Stored]:
        async with self._guard():
            return await deliver_by_key(rows, self._deliver)

    async def _deliver(self, group: Sequence[Due]) -> Stored | None:
        key = group[0].key
        stamp = self.clock.now_ms()
        skipped, wanted = by_skip(group)
        for skip, users in skipped.items():
            await self._mark(key, users, skip, stamp)
        if not wanted:
            return None
        # The rows still pending (not cancelled, not marked delivered by another node).
        query: Doc = {"_id": {"$in": [_fence(key, u) for u in wanted]}, "state": PENDING}
        pending = {d["user_id"] async for d in self._scheduled.find(query, {"user_id": 1})}
        users = [u for u in wanted if u in pending]
        if not users:
            return None
        # No transactions here: stored first, marked after. Under the delivery key each user's
        # document is fenced (its `_id`), so two nodes delivering at once, or a node taking over
        # from one that died between the two steps, store it once and find the other's.
        draft = dataclasses.replace(group[0].draft, user_ids=tuple(users))
        stored = await self._insert(users, draft, delivery_key(key))
        await self._mark(key, users, DELIVERED, self.clock.now_ms())
        return Stored(tuple(n for u in users if (n := stored[u]) is not None))

    async def _mark(self, key: str, users: Sequence[str], state: str, stamp: int) -> None:
        for chunk in chunks(list(users), CHUNK):
            await self._scheduled.update_many(
                {"_id": {"$in": [_fence(key, u) for u in chunk]}, "state": PENDING},
                {"$set": {"state": state, "done_ms": stamp}},
            )

    async def cancel_scheduled(self, key: str) -> tuple[int, tuple[str, ...]]:
        now = self.clock.now_ms()
        async with self._guard():
            # Not a row leased to a node that may be storing it now: without a transaction
            # that delivery could not be stopped any more.
            result = await self._scheduled.update_many(
                {"key": key, "state": PENDING, "lease_until": {"$lt": now}},
                {"$set": {"state": CANCELLED, "done_ms": now}},
            )
            states = {d["state"] async for d in self._scheduled.find({"key": key}, {"state": 1})}
        return result.modified_count, tuple(sorted(states))

    # -- snooze -----------------------------------------------------------------------------------

    async def snooze(self, user_id: str, ids: Sequence[int], until_ms: int) -> list[int]:
        query: Doc = {"user_id": user_id, "seq": {"$in": sorted(set(ids))}, **LIVE}
        # `snooze_lease` back to 0: a new time is a new claim, whoever held the old one.
        return await self._change(query, LIVE, {"snoozed_ms": until_ms, "snooze_lease": 0})

    async def unsnooze(self, user_id: str, ids: Sequence[int]) -> list[Notification]:
        query: Doc = {
            "user_id": user_id,
            "seq": {"$in": sorted(set(ids))},
            "snoozed_ms": {"$ne": None},
            **LIVE,
        }
        woken: list[Notification] = []
        async with self._guard():
            docs = [d async for d in self._notifications.find(query)]
            for doc in sorted(docs, key=lambda d: int(d["seq"])):
                # Per document, conditional on the snooze read: of two callers (or a waking
                # node) exactly one changes it, and only that one reports it.
                done = await self._notifications.update_one(
                    {"_id": doc["_id"], "snoozed_ms": doc["snoozed_ms"]}, {"$set": _WOKEN}
                )
                if done.modified_count:
                    woken.append(_notification({**doc, **_WOKEN}))
        return woken

    async def claim_snoozed(self, lease_ms: int, limit: int) -> list[Snooze]:
        now = self.clock.now_ms()
        claimable: Doc = {
            "snoozed_ms": {"$ne": None, "$lte": now},
            "$or": [{"snooze_lease": None}, {"snooze_lease": {"$lt": now}}],
            **LIVE,
        }
        # As `claim_due`: one update takes the candidates still claimable, and a token of this
        # claim's own finds which ones it took.
        token = secrets.token_hex(8)
        async with self._guard():
            cursor = self._notifications.find(claimable, {"_id": 1})
            cursor = cursor.sort("snoozed_ms", ASCENDING).limit(limit)
            ids = [d["_id"] async for d in cursor]
            if not ids:
                return []
            await self._notifications.update_many(
                {"_id": {"$in": ids}, **claimable},
                {"$set": {"snooze_lease": now + lease_ms, "snooze_claim": token}},
            )
            found = self._notifications.find(
                {"_id": {"$in": ids}, "snooze_claim": token},
                {"user_id": 1, "seq": 1, "snoozed_ms": 1},
            )
            taken = [Snooze(d["user_id"], int(d["seq"]), int(d["snoozed_ms"])) async for d in found]
        return sorted(taken, key=lambda s: (s.until_ms, s.seq))

    async def renew_snoozed(self, claimed: Sequence[Snooze], lease_ms: int) -> int:
        if not claimed:
            return 0
        until = self.clock.now_ms() + lease_ms
        query: Doc = {
            "$or": [{"user_id": c.user_id, "seq": c.seq, "snoozed_ms": c.until_ms} for c in claimed]
        }
        async with self._guard():
            result = await self._notifications.update_many(query, {"$set": {"snooze_lease": until}})
        return result.matched_count

    async def wake_snoozed(self, claimed: Sequence[Snooze]) -> list[Notification]:
        woken: list[Notification] = []
        async with self._guard():
            for row in claimed:
                # Only the snooze that was claimed: one the user changed or ended meanwhile
                # is theirs, not this claim's.
                query: Doc = {"user_id": row.user_id, "seq": row.seq, "snoozed_ms": row.until_ms}
                done = await self._notifications.update_one(query, {"$set": _WOKEN})
                if done.modified_count:
                    doc = await self._notifications.find_one(
                        {"user_id": row.user_id, "seq": row.seq, **LIVE}
                    )
                    if doc is not None:
                        woken.append(_notification(doc))
        return woken

    async def next_snoozed(self) -> int | None:
        async with self._guard():
            doc = await self._notifications.find_one(
                {"snoozed_ms": {"$ne": None}, **LIVE},
                {"snoozed_ms": 1},
                sort=[("snoozed_ms", ASCENDING)],
            )
        return None if doc is None else int(doc["snoozed_ms"])

    async def next_due(self) -> int | None:
        async with self._guard():
            doc = await self._scheduled.find_one(
                {"state": PENDING}, {"deliver_ms": 1}, sort=[("deliver_ms", ASCENDING)]
            )
        return None if doc is None else int(doc["deliver_ms"])

    async def next_expiry(self, after_ms: int) -> int | None:
        query: Doc = {"expires_ms": {"$gt": after_ms}, **LIVE}
        async with self._guard():
            doc = await self._notifications.find_one(
                query, {"expires_ms": 1}, sort=[("expires_ms", ASCENDING)]
            )
        return None if doc is None else int(doc["expires_ms"])

    async def delivered_between(self, after_ms: int, upto_ms: int, limit: int) -> list[str]:
        # The done_ms index finds them; the mark follows the notifications here, so a row
        # marked is stored.
        query: Doc = {"done_ms": {"$gt": after_ms, "$lte": upto_ms}, "state": DELIVERED}
        users: dict[str, None] = {}
        async with self._guard():
            cursor = self._scheduled.find(query, {"user_id": 1}).limit(limit)
            async for d in cursor:
                users[d["user_id"]] = None
        return list(users)

    async def expired_between(
        self, after_ms: int, upto_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        query: Doc = {"expires_ms": {"$gt": after_ms, "$lte": upto_ms}, **LIVE}
        async with self._guard():
            cursor = self._notifications.find(query, {"user_id": 1, "seq": 1}).limit(limit)
            return [(d["user_id"], int(d["seq"])) async for d in cursor]

    # -- the email digest -------------------------------------------------------------------------
    # A cursor document per user in `email_users` (`_id` the user id), and the leases in
    # `email_claims`. No transactions, and on FerretDB v1 an update's filter is no
    # compare-and-set (two concurrent updates matching the same document both apply): a lease is
    # an insert under the unique `_id` index instead, the one write both servers make atomic.
    # The cursor's `gen` counts finished or released digests; a lease's `_id` is
    # [user, gen, k], k counting takeovers of leases that ran out. Of several nodes inserting
    # the same [user, gen, k], exactly one succeeds.

    @property
    def _email_users(self) -> AsyncCollection[Doc]:
        return self._db["email_users"]

    @property
    def _email_claims(self) -> AsyncCollection[Doc]:
        return self._db["email_claims"]

    async def user(self, user_id: str) -> UserRecord | None:
        async with self._guard():
            doc = await self._email_users.find_one({"_id": user_id})
        return None if doc is None else UserRecord(user_id, doc.get("email"), doc["updated_ms"])

    async def set_user_email(self, user_id: str, email: str | None) -> UserRecord:
        stamp = self.clock.now_ms()
        async with self._guard():
            last = (await self.position(user_id)).last_seq
            fresh = {
                "email": email,
                "updated_ms": stamp,
                "done_seq": last,
                "claimed_seq": last,
                "gen": 0,
                "next_ms": 0,
                "attempts": 0,
            }
            try:
                await self._email_users.insert_one({"_id": user_id, **fresh})
                return UserRecord(user_id, email, stamp)
            except DuplicateKeyError:
                pass
            change: Doc = {"$set": {"email": email, "updated_ms": stamp}}
            # A new address (none before) starts after what is there now; a changed one keeps
            # its cursor. Two updates, each with its own filter: no $cond in FerretDB v1.
            await self._email_users.update_one(
                {"_id": user_id, "email": None},
                {**change, "$max": {"done_seq": last, "claimed_seq": last}},
            )
            await self._email_users.update_one({"_id": user_id}, change)
        return UserRecord(user_id, email, stamp)

    async def _lease(self, user_id: str, gen: int) -> Doc | None:
        """The newest lease taken on the user's digest number `gen`, live or not."""
        return await self._email_claims.find_one(
            {"user_id": user_id, "gen": gen}, sort=[("k", DESCENDING)]
        )

    async def _newest_due(self, user_id: str, done: int, cutoff: int) -> int:
        doc = await self._notifications.find_one(
            {"user_id": user_id, "seq": {"$gt": done}, "created_ms": {"$lte": cutoff}},
            {"seq": 1},
            sort=[("seq", DESCENDING)],
        )
        return 0 if doc is None else int(doc["seq"])

    async def _range(self, cursor: Doc, lease: Doc | None, cutoff: int) -> int:
        """Where the digest a claim would take ends (0: nothing due): a lease that ran out
        keeps its range, as does a send that may have gone through; else what is old enough."""
        if lease is not None:
            return int(lease["claimed_seq"])
        done, claimed = int(cursor["done_seq"]), int(cursor["claimed_seq"])
        if claimed > done:
            return claimed
        return await self._newest_due(cursor["_id"], done, cutoff)

    async def email_due(self, after_ms: int, limit: int) -> list[str]:
        now = self.clock.now_ms()
        query = {"email": {"$ne": None}, "next_ms": {"$lte": now}}
        due: list[str] = []
        async with self._guard():
            # A few small queries per user with an address (no joins here), read once per
            # TIDINGS_EMAIL_INTERVAL by each node.
            async for cursor in self._email_users.find(query).sort("next_ms", ASCENDING):
                lease = await self._lease(cursor["_id"], int(cursor["gen"]))
                if lease is not None and lease["until"] > now:
                    continue
                if await self._range(cursor, lease, now - after_ms):
                    due.append(cursor["_id"])
                    if len(due) == limit:
                        break
        return due

    async def claim_email(
        self, user_id: str, owner: str, after_ms: int, lease_ms: int
    ) -> EmailClaim | None:
        now = self.clock.now_ms()
        async with self._guard():
            cursor = await self._email_users.find_one(
                {"_id": user_id, "email": {"$ne": None}, "next_ms": {"$lte": now}}
            )
            if cursor is None:
                return None
            gen = int(cursor["gen"])
            lease = await self._lease(user_id, gen)
            if lease is not None and lease["until"] > now:
                return None
            upto = await self._range(cursor, lease, now - after_ms)
            if not upto:
                return None
            k = 0 if lease is None else int(lease["k"]) + 1
            lease_id = json.dumps([user_id, gen, k], ensure_ascii=False, separators=(",", ":"))
            try:
                await self._email_claims.insert_one(
                    {
                        "_id": lease_id,
                        "user_id": user_id,
                        "gen": gen,
                        "k": k,
                        "owner": owner,
                        "until": now + lease_ms,
                        "claimed_seq": upto,
                    }
                )
            except DuplicateKeyError:
                return None  # another node took this lease first
            # The digest may have been finished between our read and our insert: then this
            # lease is on a generation that is over.
            if await self._email_users.count_documents({"_id": user_id, "gen": gen}) == 0:
                await self._email_claims.delete_one({"_id": lease_id})
                return None
        return EmailClaim(
            user_id,
            cursor["email"],
            int(cursor["done_seq"]),
            upto,
            owner,
            int(cursor.get("attempts", 0)),
            lease=lease_id,
        )

    async def _holds(self, claim: EmailClaim) -> int | None:
        """The generation the claim's lease is on, when it is still the newest lease of the
        user's current digest; None when it was taken over or the digest moved on."""
        doc = await self._email_claims.find_one({"_id": claim.lease, "owner": claim.owner})
        if doc is None:
            return None
        gen = int(doc["gen"])
        newest = await self._lease(claim.user_id, gen)
        if newest is None or newest["_id"] != claim.lease:
            return None
        if await self._email_users.count_documents({"_id": claim.user_id, "gen": gen}) == 0:
            return None
        return gen

    async def finish_email(self, claim: EmailClaim, next_ms: int) -> bool:
        async with self._guard():
            gen = await self._holds(claim)
            if gen is None:
                return False
            await self._email_users.update_one(
                {"_id": claim.user_id, "gen": gen},
                {
                    "$set": {"gen": gen + 1, "next_ms": next_ms, "attempts": 0},
                    "$max": {"done_seq": claim.claimed_seq, "claimed_seq": claim.claimed_seq},
                },
            )
            await self._email_claims.delete_many({"user_id": claim.user_id, "gen": {"$lte": gen}})
        return True

    async def release_email(self, claim: EmailClaim, next_ms: int, *, keep_claim: bool) -> bool:
        async with self._guard():
            gen = await self._holds(claim)
            if gen is None:
                return False
            carried = claim.claimed_seq if keep_claim else claim.done_seq
            await self._email_users.update_one(
                {"_id": claim.user_id, "gen": gen},
                {
                    "$set": {"gen": gen + 1, "next_ms": next_ms, "claimed_seq": carried},
                    "$inc": {"attempts": 1},
                },
            )
            await self._email_claims.delete_many({"user_id": claim.user_id, "gen": {"$lte": gen}})
        return True

    # --- Web Push (issue 11) ------------------------------------------------------------------

    @property
    def _push(self) -> AsyncCollection[Doc]:
        return self._db["push_subscriptions"]

    async def add_push_subscription(self, sub: PushSubscription, limit: int) -> Subscribed:
        # Without transactions the cap is counted, then kept, in two steps: two subscribes of
        # one user at the same instant may pass it by one. The cap bounds a user's rows; one
        # over does no harm.
        async with self._guard():
            found = await self._push.find_one({"_id": sub.endpoint}, {"user_id": 1})
            if found is not None and found["user_id"] == sub.user_id:
                await self._push.update_one(
                    {"_id": sub.endpoint}, {"$set": {"p256dh": sub.p256dh, "auth": sub.auth}}
                )
                return "updated"
            if await self._push.count_documents({"user_id": sub.user_id}) >= limit:
                return "full"
            last = (await self.position(sub.user_id)).last_seq
            doc: Doc = {
                "user_id": sub.user_id,
                "p256dh": sub.p256dh,
                "auth": sub.auth,
                "created_ms": self.clock.now_ms(),
                "done_seq": last,
                "lease_owner": None,
                "lease_until": 0,
                "lease_gen": 0,
                "retry_ms": 0,
                "failures": 0,
            }
            # A new subscription counts its leases from 0 again: the old claims must go first.
            await self._db["push_claims"].delete_many({"endpoint": sub.endpoint})
            await self._push.replace_one({"_id": sub.endpoint}, doc, upsert=True)
        return "created" if found is None else "updated"

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> bool:
        async with self._guard():
            result = await self._push.delete_one({"_id": endpoint, "user_id": user_id})
            if result.deleted_count:
                await self._db["push_claims"].delete_many({"endpoint": endpoint})
        return bool(result.deleted_count)

    async def push_subscriptions(self, user_id: str) -> list[PushSubscription]:
        async with self._guard():
            cursor = self._push.find({"user_id": user_id}).sort(
                [("created_ms", ASCENDING), ("_id", ASCENDING)]
            )
            return [_push_subscription(d) async for d in cursor]

    async def drop_push_subscription(self, endpoint: str) -> None:
        async with self._guard():
            await self._push.delete_one({"_id": endpoint})
            await self._db["push_claims"].delete_many({"endpoint": endpoint})

    async def push_due(self, cutoff_ms: int, limit: int) -> list[PushSubscription]:
        now = self.clock.now_ms()
        due: list[PushSubscription] = []
        async with self._guard():
            free = [
                _push_subscription(d)
                async for d in self._push.find(
                    {"lease_until": {"$lte": now}, "retry_ms": {"$lte": now}}
                )
            ]
            # No join here: first the users' newest seqs in one query, then the few
            # subscriptions behind them are checked for one old enough.
            newest: dict[str, int] = {}
            users = list({s.user_id for s in free})
            for chunk in chunks(users, CHUNK):
                async for user_id, seq in self._newest_many(list(chunk)):
                    newest[user_id] = max(seq, newest.get(user_id, 0))
            for sub in free:
                if newest.get(sub.user_id, 0) <= sub.done_seq:
                    continue
                query = {
                    "user_id": sub.user_id,
                    "seq": {"$gt": sub.done_seq},
                    "created_ms": {"$lte": cutoff_ms},
                    **LIVE,
                }
                if await self._notifications.find_one(query, {"_id": 1}) is not None:
                    due.append(sub)
                    if len(due) == limit:
                        break
        return due

    async def claim_push(self, endpoint: str, owner: str, lease_ms: int) -> PushSubscription | None:
        # The compare-and-set is an insert, as the idempotency fence is: FerretDB v1 runs a
        # findAndModify or a filtered update as a read and a write, so two nodes could both
        # "win" a filtered update. A claim document per lease generation, with a unique `_id`,
        # lets exactly one of them insert generation g + 1.
        now = self.clock.now_ms()
        claims = self._db["push_claims"]
        async with self._guard():
            doc = await self._push.find_one({"_id": endpoint})
            if doc is None or int(doc["lease_until"]) > now:
                return None
            generation = int(doc.get("lease_gen", 0))
            try:
                await claims.insert_one(
                    {"_id": _fence(endpoint, str(generation + 1)), "endpoint": endpoint}
                )
            except DuplicateKeyError:
                return None
            claimed = {"lease_owner": owner, "lease_until": now + lease_ms}
            result = await self._push.update_one(
                {"_id": endpoint, "lease_gen": generation},
                {"$set": {**claimed, "lease_gen": generation + 1}},
            )
            if not result.matched_count:
                return None  # removed (or subscribed anew) meanwhile
            await claims.delete_one({"_id": _fence(endpoint, str(generation))})
        return _push_subscription({**doc, **claimed})

    async def advance_push(self, endpoint: str, owner: str, done_seq: int) -> bool:
        async with self._guard():
            result = await self._push.update_one(
                {
                    "_id": endpoint,
                    "lease_owner": owner,
                    "lease_until": {"$gt": self.clock.now_ms()},
                },
                {"$max": {"done_seq": done_seq}},
            )
        return bool(result.matched_count)

    async def release_push(
        self, endpoint: str, owner: str, done_seq: int, *, retry_ms: int = 0, failures: int = 0
    ) -> None:
        async with self._guard():
            await self._push.update_one(
                {
                    "_id": endpoint,
                    "lease_owner": owner,
                    "lease_until": {"$gt": self.clock.now_ms()},
                },
                {
                    "$max": {"done_seq": done_seq},
                    "$set": {
                        "retry_ms": retry_ms,
                        "failures": failures,
                        "lease_owner": None,
                        "lease_until": 0,
                    },
                },
            )

    async def record_presence(
        self, node: str, alive_ms: int, opened: Sequence[str], closed: Sequence[tuple[str, int]]
    ) -> None:
        # Documents of this node only (its id is in their `_id`): no other writer upserts
        # them, so FerretDB's upsert race cannot occur.
        states: list[tuple[str, int | None]] = [(u, None) for u in opened]
        states += list(closed)
        async with self._guard():
            await self._db["push_nodes"].update_one(
                {"_id": node}, {"$set": {"alive_ms": alive_ms}}, upsert=True
            )
            ops = [
                UpdateOne(
                    {"_id": _fence(user_id, node)},
                    {"$set": {"user_id": user_id, "node_id": node, "closed_ms": closed_ms}},
                    upsert=True,
                )
                for user_id, closed_ms in states
            ]
            for chunk in chunks(ops, BULK_UPDATES):
                await self._db["push_presence"].bulk_write(list(chunk), ordered=False)

    async def presence(self, user_id: str) -> int:
        latest = 0
        async with self._guard():
            rows = [d async for d in self._db["push_presence"].find({"user_id": user_id})]
            latest = max(
                (int(d["closed_ms"]) for d in rows if d["closed_ms"] is not None), default=0
            )
            open_on = [d["node_id"] for d in rows if d["closed_ms"] is None]
            if open_on:
                async for node in self._db["push_nodes"].find({"_id": {"$in": open_on}}):
                    latest = max(latest, int(node["alive_ms"]))
        return latest

    async def forget_presence(self, before_ms: int) -> None:
        async with self._guard():
            dead = [
                d["_id"]
                async for d in self._db["push_nodes"].find({"alive_ms": {"$lt": before_ms}})
            ]
            presence = self._db["push_presence"]
            await presence.delete_many({"closed_ms": {"$lt": before_ms}})
            if dead:
                await presence.delete_many({"node_id": {"$in": dead}})
                await self._db["push_nodes"].delete_many({"_id": {"$in": dead}})


def _push_subscription(doc: Doc) -> PushSubscription:
    return PushSubscription(
        endpoint=doc["_id"],
        user_id=doc["user_id"],
        p256dh=doc["p256dh"],
        auth=doc["auth"],
        created_ms=int(doc["created_ms"]),
        done_seq=int(doc["done_seq"]),
        lease_owner=doc.get("lease_owner"),
        lease_until=int(doc.get("lease_until", 0)),
        retry_ms=int(doc.get("retry_ms", 0)),
        failures=int(doc.get("failures", 0)),
    )
