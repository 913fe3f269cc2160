"""`GET /notifications/stream`: replay from the store after the resume point, then live.

A raw ASGI endpoint: a stream lives for hours, so it carries no framework per-message cost. Its
order of work is what makes the guarantees hold:

1. register with the hub first, so nothing announced from now on is missed;
2. read the user's position and replay what follows the resume point (or send `reset`);
3. then write what the hub queues, skipping seqs already sent and filling any gap from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
import traceback

from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from tidings import sse
from tidings.answers import OneWriteCycle
from tidings.auth import read_user
from tidings.errors import ApiError
from tidings.events import Unsnoozed
from tidings.hub import CHECK, PING, UNSNOOZED, End, Frame, Refetch, Subscriber
from tidings.models import Notification
from tidings.routes import RawRoute
from tidings.service import Service
from tidings.store import StoreUnavailable

__all__ = ["ROUTE", "stream_endpoint"]

log = logging.getLogger("tidings.stream")

# After a failed catch-up, look in the store again after this many seconds (jittered).
CATCH_UP_RETRY_MIN = 1.0
CATCH_UP_RETRY_MAX = 3.0
# How long a new stream waits for the bus to confirm its user's subscription before reading the
# store. Past it the stream goes on: the confirmation, when it comes, makes it look again.
ROUTE_WAIT = 2.0


async def stream_endpoint(service: Service, scope: Scope, receive: Receive, send: Send) -> None:
    settings = service.settings
    hub = service.hub
    metrics = service.metrics
    conn = HTTPConnection(scope)
    try:
        user = read_user(conn, settings)
    except ApiError:
        metrics.refused.labels("unauthorized").inc()
        raise
    if hub.draining:
        # This node is going away: tell the client to come back (to another node) shortly.
        metrics.refused.labels("draining").inc()
        await send({"type": "http.response.start", "status": 200, "headers": list(sse.HEADERS)})
        retry = sse.retry(sse.drain_retry_ms(hub.drain_top_ms))
        await send({"type": "http.response.body", "body": retry})
        return

    sub = hub.new_subscriber(user.user_id)
    loop = asyncio.get_running_loop()
    expires_at = loop.time() + (user.expires_at - time.time())
    if not hub.add(sub, expires_at):
        metrics.refused.labels("limit").inc()
        detail = (
            f"at most {settings.max_streams_per_user} streams per user on this node "
            "(TIDINGS_MAX_STREAMS_PER_USER)"
        )
        raise ApiError(429, "too_many_streams", detail)
    try:
        if sub.route is not None:
            # Subscribed before the store is read: nothing committed in between is missed,
            # and the check the confirmation queued is covered by that read.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sub.route), ROUTE_WAIT)
            if sub.route.done():
                sub.forget_checks()
            sub.route = None
        await _serve(service, sub, conn, receive, send)
    finally:
        hub.remove(sub)
        metrics.disconnects.labels(sub.reason or "error").inc()


async def _serve(
    service: Service,
    sub: Subscriber,
    conn: HTTPConnection,
    receive: Receive,
    send: Send,
) -> None:
    settings = service.settings
    store = service.store
    metrics = service.metrics
    user_id = sub.user_id
    try:
        position = await store.position(user_id)
    except StoreUnavailable:
        sub.reason = "store"
        metrics.refused.labels("store").inc()
        raise

    # A copy: a middleware (CORS) may add to the list it is sent.
    await send({"type": "http.response.start", "status": 200, "headers": list(sse.HEADERS)})

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        sub.abort("client")

    head = [sse.retry(settings.retry_ms)]
    last = position.last_seq
    resume_raw = conn.headers.get("last-event-id") or conn.query_params.get("last_event_id")
    reset: str | None = None
    if resume_raw is not None:
        resume = _parse_seq(resume_raw)
        if resume is None:
            reset = "invalid"
        elif resume > position.last_seq:
            reset = "future"
        elif resume < position.pruned_upto:
            reset = "pruned"
        elif position.last_seq - resume > settings.replay_max:
            reset = "too_far"
        else:
            last = resume
    if reset is not None:
        metrics.resets.labels(reset).inc()
        head.append(sse.reset(position.last_seq, reset))

    try:
        async with asyncio.timeout(None) as scope, asyncio.TaskGroup() as tg:
            sub.bind(scope)
            if sub.reason is not None:
                return
            watcher = tg.create_task(watch_disconnect())
            owner = getattr(getattr(send, "inner", send), "__self__", None)
            if isinstance(owner, OneWriteCycle):
                # uvicorn's own connection, no middleware between: frames may go to it directly.
                sub.writer = owner
            try:
                out = head
                if last < position.last_seq:
                    out, last = await _catch_up(service, sub, last, head)
                await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
                await _pump(service, sub, last, send)
            finally:
                watcher.cancel()
    except TimeoutError as exc:
        # sub.abort(): the client left, or it stopped reading and its queue overflowed.
        _let_go(exc)
        return
    if sub.reason is not None and sub.reason != "client":
        # A clean end: the client's EventSource reconnects after the retry we sent.
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _pump(service: Service, sub: Subscriber, last: int, send: Send) -> None:
    deliveries = service.metrics.deliveries
    ping = sse.ping(service.settings.heartbeat)
    while True:
        # Frames written directly while the stream waits (Subscriber.write) move `last` on.
        sub.last = last
        items = await sub.take()
        last = sub.last
        out: list[bytes] = []
        end: End | None = None
        for item in items:
            if isinstance(item, Frame):
                if item.seq <= last:
                    continue
                if item.seq == last + 1 and item.body is not None:
                    out.append(item.body)
                    last = item.seq
                    deliveries.live(item.created_ms)
                else:
                    # A gap (an announcement overtook an earlier one, or the bus carried no
                    # body): everything up to here is committed, so the store has it.
                    out, last = await _catch_up(service, sub, last, out)
            elif isinstance(item, bytes):
                out.append(item)
            elif item is PING:
                out.append(ping)
            elif item is CHECK:
                out, last = await _catch_up(service, sub, last, out)
            elif isinstance(item, Refetch):
                out.append(await _refetch(service, item.event))
            elif isinstance(item, End):
                end = item
                break
        if end is not None:
            sub.reason = end.reason
            if end.retry_ms is not None:
                out.append(sse.retry(end.retry_ms))
        if out:
            await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        if end is not None:
            return


async def _catch_up(
    service: Service, sub: Subscriber, last: int, out: list[bytes]
) -> tuple[list[bytes], int]:
    """Append the stored notifications after `last` to `out`; return it and the new last.

    At most `TIDINGS_REPLAY_MAX` of them: a stream further behind than that (say, after a long
    bus outage) gets `reset`, as a reconnect would, and the client reloads its list.
    """
    store = service.store
    limit = service.settings.replay_max
    try:
        found: list[Notification] = await store.after(sub.user_id, last, limit + 1)
        position = await store.position(sub.user_id) if len(found) > limit else None
    except StoreUnavailable:
        # The store is away: keep the stream, and look again shortly (not only at the user's
        # next notification, which may be days away).
        log.warning("catch-up for a stream failed (store unavailable); retrying shortly")
        sub.check_later(random.uniform(CATCH_UP_RETRY_MIN, CATCH_UP_RETRY_MAX))
        return out, last
    if position is not None:
        service.metrics.resets.labels("too_far").inc()
        out.append(sse.reset(position.last_seq, "too_far"))
        return out, position.last_seq
    for n in found:
        out.append(sse.notification(n))
        last = n.seq
    service.metrics.deliveries.replayed(len(found))
    return out, last


async def _refetch(service: Service, event: Unsnoozed) -> bytes:
    """`notifications-unsnoozed` with the bodies the bus could not carry read from the store
    (gone meanwhile: left out; the store away: sent without them, the counts still right)."""
    found = list(event.notifications)
    try:
        for seq in event.missing:
            for archived in (False, True):
                page = await service.store.page(
                    event.user_id, limit=1, before=seq + 1, unread_only=False, archived=archived
                )
                if page and page[0].seq == seq:
                    found.append(page[0])
                    break
    except StoreUnavailable:
        log.warning("reading unsnoozed notifications failed (store unavailable)")
    whole = dataclasses.replace(event, notifications=tuple(sorted(found, key=lambda n: n.seq)))
    return sse.event(UNSNOOZED, whole.to_json())


def _let_go(exc: BaseException) -> None:
    """Clear the finished frames in `exc`'s tracebacks and its causes'.

    The CancelledError behind a stream's end holds a traceback whose `TaskGroup.__aexit__` frame
    holds that error again (CPython 3.11): a reference cycle that kept each ended stream's
    objects (its transport, socket, subscriber, frames: ~65) alive until a full collection. With
    thousands of streams reopening, those collections found ~700,000 objects at a time and held
    the loop for seconds (bench/growth-and-soak.md, the soak).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def _parse_seq(raw: str) -> int | None:
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


ROUTE = RawRoute(
    path="/notifications/stream",
    method="GET",
    endpoint=stream_endpoint,
    tag="user",
    summary="SSE stream of the caller's notifications",
    description=(
        "Server-Sent Events: `retry:`, then `new-notification` events (id = seq), "
        "`notifications-read`, `notification-deleted`, `notifications-seen`, "
        "`notifications-archived`, `notifications-unarchived`, `notifications-expired`, "
        "`reset`, and a `ping` every "
        "heartbeat. "
        "Resume with the `Last-Event-ID` header or `last_event_id` query."
    ),
    answers={200: ("the stream", "text/event-stream", None)},
    errors=(401, 429, 503),
    security="userToken",
    parameters=(
        {"name": "last_event_id", "in": "query", "schema": {"type": "string"}},
        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
    ),
)
