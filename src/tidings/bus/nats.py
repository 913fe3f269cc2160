"""The NATS bus, routed per user: `TIDINGS_BUS_URL=nats://host:4222` (`tls://` for TLS).

Several servers of one NATS cluster: `nats://a:4222,nats://b:4222,nats://c:4222`. A node holds one
connection, to one of them; when it drops, the node connects to the next server that answers
(in the order listed) and resubscribes. NATS routes subjects across its cluster,
so a publish on any server reaches the subscribers on every other.

Each user has a subject, `tidings.u.<user id>` (a user id with anything but letters, digits, `_`
and `-` is written `~` and its UTF-8 in hex, since `.`, `*`, `>` and spaces mean something in a
subject), and node-wide events go on `tidings.n`. `?channel=NAME` replaces the `tidings` prefix.
Core NATS keeps no backlog, which is fine: the store is the log. The client is `nats-py`, an
extra (`pip install 'tidings[nats]'`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from tidings.bus.redis import parse_urls
from tidings.bus.routed import RoutedBus, Shard
from tidings.bus.shared import ANNOUNCE_TIMEOUT, CONNECT_TIMEOUT, KEEPALIVE, PING_TIMEOUT, TICK
from tidings.settings import ConfigError

__all__ = ["NatsBus", "subject_token"]

log = logging.getLogger("tidings.bus")

DEFAULT_CHANNEL: Final = "tidings"
# NATS takes up to 1 MB by default; batches this size keep one message cheap.
NATS_LIMIT: Final = 32 * 1024
SAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def subject_token(user_id: str) -> str:
    """One subject token for a user id; distinct ids give distinct tokens."""
    if SAFE_TOKEN.fullmatch(user_id):
        return user_id
    return "~" + user_id.encode().hex()


def user_of_token(token: str) -> str:
    if token.startswith("~"):
        return bytes.fromhex(token[1:]).decode()
    return token


class NatsBus(RoutedBus):
    limit = NATS_LIMIT

    def __init__(self, url: str, linger: float) -> None:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise ConfigError(
                "TIDINGS_BUS_URL: nats:// needs the NATS client: pip install 'tidings[nats]'"
            ) from None
        self.servers, self.prefix = parse_urls(url)
        if not PREFIX.fullmatch(self.prefix):
            raise ConfigError(
                f"TIDINGS_BUS_URL: channel {self.prefix!r} must be letters, digits, _ and -, "
                "in tokens separated by dots"
            )
        # One shard: the node's one connection, to whichever server of the cluster answers.
        super().__init__([",".join(self.servers)], linger)
        self._client: Any = None
        self._subs: dict[str, Any] = {}
        self._sender: Any = None
        # Tried in the order listed, from the one that last worked: list them in another order
        # on each node (or behind one DNS name) to spread the nodes over the servers.
        self._order = list(self.servers)
        self._apply_lock = asyncio.Lock()

    def name(self) -> str:
        return f"nats {','.join(self.servers)} subject {self.prefix}.*"

    def shard_of(self, user_id: str) -> int:
        return 0

    def user_subject(self, user_id: str) -> str:
        return f"{self.prefix}.u.{subject_token(user_id)}"

    def home_subject(self) -> str:
        return f"{self.prefix}.n"

    def _subject(self, user_id: str | None) -> str:
        """Where an announcement for `user_id` goes (None: the node-wide subject)."""
        return self.home_subject() if user_id is None else self.user_subject(user_id)

    async def _connect(self) -> Any:
        last: Exception | None = None
        for _ in range(len(self._order)):
            server = self._order[0]
            client = _direct_client(self._message_data)
            try:
                await client.connect(
                    servers=[server],
                    allow_reconnect=False,  # our own reconnect resubscribes and resyncs
                    connect_timeout=CONNECT_TIMEOUT,
                    ping_interval=KEEPALIVE,
                    max_outstanding_pings=2,
                    error_cb=self._quiet,
                    name="tidings",
                )
                return client
            except Exception as exc:
                last = exc
                self._order.append(self._order.pop(0))
        raise ConnectionError(f"no NATS server answered: {last}")

    async def _quiet(self, exc: Exception) -> None:
        log.debug("nats: %r", exc)

    async def _listen(self, shard: Shard) -> None:
        client = await self._connect()
        self._client = client
        self._subs = {}
        try:
            users = self._connected(shard)
            # Under the lock `_apply` takes: a user dropped or joined again while these SUBs go
            # out is changed after them, in order (not subscribed twice, nor left subscribed).
            async with self._apply_lock:
                await client.subscribe(self.home_subject(), cb=self._message)
                await self._subscribe(client, users)
                # One round trip: once the server answers, every SUB before it is in force.
                await client.flush(timeout=PING_TIMEOUT)
            self._home_confirmed()
            for user_id in users:
                self._confirmed(shard, user_id)
            while True:
                await asyncio.sleep(TICK)
                if not client.is_connected:
                    raise ConnectionError(f"NATS connection lost ({client.last_error!r})")
                await self._tick(shard)
        finally:
            self._client = None
            self._subs = {}
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.close()

    async def _subscribe(self, client: Any, users: list[str]) -> None:
        """SUB for each of `users` not subscribed yet on `client` (under `_apply_lock`)."""
        for user_id in users:
            if user_id not in self._subs:
                self._subs[user_id] = await client.subscribe(
                    self.user_subject(user_id), cb=self._message
                )

    async def _message(self, msg: Any) -> None:
        self._received(msg.data)

    def _message_data(self, data: bytes) -> None:
        self._received(data)

    def _flush(self, shard: Shard) -> None:
        client = self._client
        if client is None:
            return
        subscribe = list(shard.to_subscribe)
        unsubscribe = list(shard.to_unsubscribe)
        for user_id in subscribe:
            self._sent_subscribe(shard, user_id)
        task = asyncio.create_task(self._apply(client, shard, subscribe, unsubscribe))
        task.add_done_callback(_log_failure)

    async def _apply(
        self, client: Any, shard: Shard, subscribe: list[str], unsubscribe: list[str]
    ) -> None:
        try:
            # In order: an unsubscribe and a resubscribe of one user must not swap.
            async with self._apply_lock:
                if client is not self._client:
                    return  # reconnected meanwhile: the new connection subscribed everyone
                for user_id in unsubscribe:
                    sub = self._subs.pop(user_id, None)
                    if sub is not None:
                        await sub.unsubscribe()
                try:
                    await self._subscribe(client, subscribe)
                    await client.flush(timeout=PING_TIMEOUT)
                except Exception as exc:
                    # Not confirmed (no PONG in time): these users' counts would never come
                    # down, their streams would wait out ROUTE_WAIT and miss their resync. A
                    # fresh connection subscribes everyone again and resyncs them (`_lost`).
                    if client is self._client:
                        log.warning("nats: a subscription went unconfirmed (%r); reconnecting", exc)
                        with contextlib.suppress(Exception):
                            async with asyncio.timeout(1.0):
                                await client.close()
                    return
                if client is self._client:
                    for user_id in subscribe:
                        self._confirmed(shard, user_id)
        finally:
            # Confirmed by the server's PONG, or the connection is gone (and its subscriptions
            # with it).
            shard.leaving.difference_update(unsubscribe)

    def _publish_nowait(self, shard: Shard, messages: Sequence[tuple[str | None, str]]) -> bool:
        # The common case: connected, the socket's buffer not backed up. The PUB commands go
        # into the client's buffer and out in this turn's one write (`Direct`), with no task
        # woken and no subject validated anew (ours are valid by construction).
        client = self._client
        direct = getattr(client, "direct_publish", None)
        if direct is None or not client.is_connected:
            return False
        return bool(direct([(self._subject(user_id), message) for user_id, message in messages]))

    async def _publish(self, shard: Shard, messages: Sequence[tuple[str | None, str]]) -> None:
        client = self._client
        if client is None and self._deliver is None:
            # Publishing only (`tidings send`): a connection of its own, no subscriptions.
            if self._sender is None or not self._sender.is_connected:
                self._sender = await self._connect()
            client = self._sender
        if client is None or not client.is_connected:
            raise ConnectionError("not connected to NATS")
        for user_id, message in messages:
            await client.publish(self._subject(user_id), message.encode())
        drained = getattr(client, "drained", None)
        if drained is not None:
            # Written directly (`Direct`): a large batch waits here for the socket, as
            # nats-py's flusher would.
            await drained()
        # No flush (a PING and its PONG per announcement): the client's own flusher writes
        # them, and `_confirm` makes the round trip once per TICK.

    async def _confirm(self, shard: Shard) -> None:
        client = self._client if self._client is not None else self._sender
        if client is None or not client.is_connected:
            raise ConnectionError("not connected to NATS")
        # The round trip that tells us the server has them (or that it is gone).
        await client.flush(timeout=ANNOUNCE_TIMEOUT)

    async def _close_publishers(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await sender.close()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("nats: subscribing failed: %r", task.exception())


# Past this many bytes waiting in the socket's buffer, a publish takes the path that waits for
# it (`NatsBus._publish`, bounded by a timeout) instead of adding to it.
BUFFER_HIGH: Final = 1 << 20
_PRIVATE: Final = ("_process_msg", "_flush_pending", "_pending", "_pending_data_size", "_transport")


def _direct_client(handler: Callable[[bytes], None]) -> Any:
    """A nats-py client that skips two task wake-ups per message.

    - Received: a message of a plain subscription goes straight to `handler`, in the client's
      reading task, instead of being queued for the subscription's own task (and one Msg
      object less).
    - Sent: what the client buffers (PUB, SUB, PING) is written to the socket once at the end
      of the loop's turn (`call_soon`), instead of waking nats-py's flusher task through its
      queue for every publish; `direct_publish` buffers PUB commands without the per-call
      subject check and coroutine. A full outbound buffer (`force_flush`) and a connection
      that is not up take nats-py's own path.

    It relies on nats-py's private parts (`_process_msg`, `_flush_pending`, `_pending`,
    `_pending_data_size`, `_transport`; nats-py as locked in constraints.txt); without them,
    the client as it is."""
    from nats.aio.client import Client

    probe = Client()
    if not all(hasattr(probe, name) for name in _PRIVATE):
        return probe

    class Direct(Client):
        _write_scheduled = False

        def direct_publish(self, pairs: list[tuple[str, str]]) -> bool:
            """Buffer `PUB subject len` commands for this turn's write; False (nothing
            buffered) when the connection is not up or its socket is backed up."""
            if not self.is_connected or self._buffered() > BUFFER_HIGH:
                return False
            size = 0
            pending = self._pending
            for subject, message in pairs:
                data = message.encode()
                command = b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(data), data)
                pending.append(command)
                size += len(command)
                self.stats["out_bytes"] += len(data)
            self.stats["out_msgs"] += len(pairs)
            self._pending_data_size += size
            self._schedule_write()
            return True

        def _buffered(self) -> int:
            writer = getattr(self._transport, "_io_writer", None)
            transport = getattr(writer, "transport", None)
            return 0 if transport is None else int(transport.get_write_buffer_size())

        async def drained(self) -> None:
            writer = getattr(self._transport, "_io_writer", None)
            if writer is not None and self._buffered() > BUFFER_HIGH:
                await writer.drain()

        def _schedule_write(self) -> None:
            if not self._write_scheduled:
                self._write_scheduled = True
                asyncio.get_running_loop().call_soon(self._write_now)

        def _write_now(self) -> None:
            self._write_scheduled = False
            if self._pending_data_size > 0 and self.is_connected and self._transport is not None:
                pending, self._pending = self._pending, []
                self._pending_data_size = 0
                try:
                    self._transport.writelines(pending)
                except Exception as exc:  # the connection went away: nats-py's error path
                    log.debug("nats: write failed: %r", exc)
                    task = asyncio.ensure_future(self._process_op_err(exc))
                    task.add_done_callback(_log_failure)

        async def _flush_pending(self, force_flush: bool = False) -> Any:
            if force_flush or not self.is_connected or self._transport is None:
                return await super()._flush_pending(force_flush)
            self._schedule_write()
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        async def _process_msg(
            self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
        ) -> None:
            sub = self._subs.get(sid)
            if sub is None or headers or reply or sub._jsi or sub._future or sub._max_msgs:
                await super()._process_msg(sid, subject, reply, data, headers)
                return
            self.stats["in_msgs"] += 1
            self.stats["in_bytes"] += len(data)
            sub._received += 1
            handler(data)

    return Direct()
