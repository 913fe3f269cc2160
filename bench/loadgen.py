"""One load-generator process: many SSE readers (as browsers) or one open-loop publisher.

Runs as `python -m bench.loadgen HOST PORT` and takes one JSON command per line on stdin, answering
one JSON line on stdout. The coordinator (bench/main.py) runs several of these so that no single
Python process has to read every socket; each reports its own CPU time so a figure limited by the
generator can be labelled as such.

Readers use raw asyncio protocols: an HTTP/1.1 response head, chunked transfer decoding, and the
SSE framing (`id:`, `event:`, `data:`, `retry:`, blank line). A notification's payload carries
`"t"` (the publisher's scheduled send time, wall clock) and `"k"` (a unique publish number),
wherever the server nests them; latency is receive time minus `t` on the same machine's clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import socket
import sys
import time
from array import array
from datetime import UTC, datetime
from typing import Any

RE_K = re.compile(rb'"k":\s*(\d+)')
RE_T = re.compile(rb'"t":\s*([0-9.]+)')
DEFAULT_RETRY_MS = 3000
MAX_RETRY_MS = 10000
CONNECT_TIMEOUT = 30.0
# A browser waits long for a response head; giving up early would abandon sockets the server still
# writes to, which the server counts as delivered.
HEAD_TIMEOUT = 120.0
# Linux's socket option (24), named in Python's socket module only from 3.12.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# BENCH_TRACE_DIR=<folder>: each process appends what it saw per notification there (readers:
# k, receive time, node port; the publisher: k, scheduled, sent, answered, node port), so the
# slow 1 % can be split into the publish's part and the delivery's (bench/trace.py).
TRACE_DIR = os.environ.get("BENCH_TRACE_DIR", "")


def _trace(kind: str, rows: list[Any]) -> None:
    if not TRACE_DIR or not rows:
        return
    path = os.path.join(TRACE_DIR, f"{kind}-{os.getpid()}.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps(rows) + "\n")


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.lat = array("d")
        self.keys: dict[int, int] = {}
        self.kmax: dict[int, float] = {}
        self.dups = 0
        self.events = 0
        self.trace: list[tuple[int, float, int]] = []


class Reader(asyncio.Protocol):
    """One SSE stream as a browser's EventSource holds it (reconnects with Last-Event-ID)."""

    def __init__(
        self, gen: Readers, user: str, path: str, headers: dict[str, str], port: int = 0
    ) -> None:
        self.gen = gen
        self.user = user
        self.path = path
        self.headers = headers
        # The node this stream belongs to (bench/cluster.py spreads streams over several); 0: the
        # process's own port.
        self.port = port or gen.port
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.sse = bytearray()
        self.head_done = False
        self.chunked = False
        self.status = 0
        self.last_id: str | None = None
        self.retry_ms = DEFAULT_RETRY_MS
        self.seen: set[int] = set()
        self.count = 0  # notifications since the last mark
        self.done = False
        self.ready: asyncio.Future[bool] | None = None
        self.closing = False
        self.connected = False
        self.dup_count = 0
        # When the connect attempt now under way began (the storm's per-client service time),
        # and when its TCP connection was made (the client's side of the handshake).
        self.attempt_at = 0.0
        self.connected_at = 0.0

    def request(self) -> bytes:
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.gen.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines.append("Accept: text/event-stream")
        if self.last_id is not None:
            lines.append(f"Last-Event-ID: {self.last_id}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is not None:
            self.gen.doubles += 1
        self.transport = transport  # type: ignore[assignment]
        self.connected_at = time.time()
        self.buf.clear()
        self.sse.clear()
        self.head_done = False
        self.transport.write(self.request())  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            parts = head[0].split(" ", 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            lowered = [h.lower() for h in head[1:]]
            self.chunked = any(
                h.startswith("transfer-encoding:") and "chunked" in h for h in lowered
            )
            self.head_done = True
            self.gen.statuses[str(self.status)] = self.gen.statuses.get(str(self.status), 0) + 1
            if self.status != 200:
                self._settle(False)
                if self.transport is not None:
                    self.transport.close()
                return
            self.connected = True
            self.gen.open += 1
            self.gen.opened_at.append(time.time())
            self._settle(True)
        if self.chunked:
            while True:
                nl = buf.find(b"\r\n")
                if nl < 0:
                    break
                try:
                    size = int(bytes(buf[:nl]).split(b";", 1)[0], 16)
                except ValueError:
                    if self.transport is not None:
                        self.transport.close()
                    return
                if size == 0:
                    del buf[:]
                    if self.transport is not None:
                        self.transport.close()
                    return
                if len(buf) < nl + 2 + size + 2:
                    break
                self.sse += buf[nl + 2 : nl + 2 + size]
                del buf[: nl + 2 + size + 2]
        else:
            self.sse += buf
            buf.clear()
        self._events()

    def _events(self) -> None:
        sse = self.sse
        if b"\r" in sse:
            sse[:] = sse.replace(b"\r\n", b"\n")
        end = sse.rfind(b"\n\n")
        if end < 0:
            return
        blocks = bytes(sse[:end]).split(b"\n\n")
        del sse[: end + 2]
        now = time.time()
        stats = self.gen.stats
        for block in blocks:
            event = b"message"
            data: list[bytes] = []
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" ") if line[5:6] == b" " else line[5:])
                elif line.startswith(b"id:"):
                    self.last_id = line[3:].strip().decode()
                elif line.startswith(b"event:"):
                    event = line[6:].strip()
                elif line.startswith(b"retry:"):
                    value = line[6:].strip()
                    if value.isdigit():
                        self.retry_ms = min(int(value), MAX_RETRY_MS)
            if event == b"reset":
                self.gen.resets += 1
            if not data or event not in (b"message", b"new-notification"):
                continue
            payload = b"\n".join(data)
            mk = RE_K.search(payload)
            mt = RE_T.search(payload)
            if mk is None or mt is None:
                continue
            k = int(mk.group(1))
            stats.events += 1
            if k in self.seen:
                stats.dups += 1
                self.dup_count += 1
                continue
            self.seen.add(k)
            lat = now - float(mt.group(1))
            stats.lat.append(lat)
            if TRACE_DIR:
                stats.trace.append((k, now, self.port))
            stats.keys[k] = stats.keys.get(k, 0) + 1
            if lat > stats.kmax.get(k, -1.0):
                stats.kmax[k] = lat
            self.count += 1
            if not self.done and self.gen.target and self.count >= self.gen.target:
                self.done = True
                self.gen.done += 1
                self.gen.last_done = now
                self.gen.done_at.append(now)
                # The attempt that got it all: when the client came back, and how long the
                # server took from there (accept queue, head, catch-up, the writes).
                self.gen.returned_at.append(self.attempt_at)
                self.gen.served_in.append(now - self.attempt_at)
                # Of that, the handshake (a SYN the listen queue dropped waits TCP's 1, 3, 7 s
                # backoff here) and what came after it (the server's queue and its work).
                self.gen.connect_in.append(self.connected_at - self.attempt_at)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connected:
            self.gen.open -= 1
        self.connected = False
        self.transport = None
        self._settle(False)
        if not self.closing and self.gen.reconnect:
            self.gen.reconnects += 1
            delay = self.retry_ms / 1000
            asyncio.get_running_loop().call_later(delay, self.gen.spawn, self)

    def _settle(self, ok: bool) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(ok)


class Readers:
    # What `open` makes (bench/soak.py's readers drop and reopen their streams at random).
    reader_type: type[Reader] = Reader

    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.host = host
        self.port = port
        # One source address per process: connections to one host:port from one address are
        # capped by the ephemeral port range (~28,000), far below 50,000 streams.
        self.local_addr = (source, 0) if source else None
        self.stats = Stats()
        self.readers: list[Reader] = []
        self.open = 0
        self.reconnect = False
        self.reconnects = 0
        self.resets = 0
        self.doubles = 0
        self.statuses: dict[str, int] = {}
        self.target = 0
        self.done = 0
        self.last_done = 0.0
        # When each stream reached the target since the mark (the storm's curve, not only its end).
        self.done_at = array("d")
        # When each stream's response head (200) came since the mark.
        self.opened_at = array("d")
        # When each stream done since the mark had begun the connect attempt that got it there.
        self.returned_at = array("d")
        self.served_in = array("d")
        self.connect_in = array("d")
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, reader: Reader) -> None:
        if reader.closing:
            return
        task = asyncio.get_running_loop().create_task(self.connect(reader))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def connect(self, reader: Reader) -> bool:
        loop = asyncio.get_running_loop()
        reader.ready = loop.create_future()
        reader.attempt_at = time.time()
        try:
            await asyncio.wait_for(self._open(reader), CONNECT_TIMEOUT)
            return await asyncio.wait_for(reader.ready, HEAD_TIMEOUT)
        except (OSError, TimeoutError):
            if reader.transport is not None:
                reader.transport.close()
            elif not reader.closing and self.reconnect:
                # Refused (the server is down): try again after the retry, as EventSource does.
                self.reconnects += 1
                loop.call_later(reader.retry_ms / 1000, self.spawn, reader)
            return False

    async def _open(self, reader: Reader) -> object:
        """The source port is left to connect() (IP_BIND_ADDRESS_NO_PORT): a bind() to port 0
        searches the source address's ports one by one, and with thousands of streams open
        (and closed ones in TIME_WAIT after reopens) that search cost the reader processes
        most of a core in the kernel, taken from the server's two: in the soak, and in the
        storm, where 10,000 streams reconnecting took the readers 11-21 s of CPU (10-18 s in the
        kernel) against 3-4 s without the search (bench/changes.md: "the storm waited for its
        own readers")."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if self.local_addr is not None:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind(self.local_addr)
            await loop.sock_connect(sock, (self.host, reader.port))
            return await loop.create_connection(lambda: reader, sock=sock)
        except BaseException:
            sock.close()
            raise

    async def open_many(self, conns: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
        sem = asyncio.Semaphore(concurrency)
        failed = 0

        async def one(reader: Reader) -> None:
            nonlocal failed
            async with sem:
                if not await self.connect(reader):
                    failed += 1

        started = time.time()
        new = [
            self.reader_type(
                self, c["user"], c["path"], c.get("headers", {}), int(c.get("port", 0))
            )
            for c in conns
        ]
        self.readers += new
        await asyncio.gather(*(one(r) for r in new))
        return {"opened": len(new) - failed, "failed": failed, "elapsed": time.time() - started}

    def close(self) -> None:
        for r in self.readers:
            r.closing = True
            if r.transport is not None:
                r.transport.close()


class Publisher:
    """Open loop: publish i is scheduled at t0 + i/rate and stamped with that time (not the send
    time), so a server that falls behind shows its queueing in the latency."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    async def _conn(self, port: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection(self.host, port or self.port), 10)

    def build(self, tpl: dict[str, Any], user: str, t: float, k: int) -> bytes:
        body = (
            tpl["body"]
            .replace("__USER__", user)
            .replace("__T__", f"{t:.6f}")
            .replace("__K__", str(k))
        ).encode()
        lines = [f"{tpl['method']} {tpl['path']} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k2}: {v}" for k2, v in tpl["headers"].items()]
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        rate: float = cmd["rate"]
        count = int(rate * cmd["duration"])
        # Several publisher processes share one schedule: this one sends publishes
        # offset, offset + stride, … of it, each still stamped with its own scheduled time.
        offset = int(cmd.get("offset", 0))
        stride = int(cmd.get("stride", 1))
        users: list[str] = cmd["users"]
        tpl = cmd["template"]
        k0: int = cmd["k0"]
        t0: float = cmd.get("start_at") or time.time() + 0.2
        pool = int(cmd.get("connections", 32))
        # Several nodes (bench/cluster.py): connection j goes to ports[j % len], so publishes land
        # on every node, whichever holds the user's streams.
        ports: list[int] = [int(x) for x in cmd.get("ports") or [self.port]]
        queue: asyncio.Queue[tuple[int, str, float] | None] = asyncio.Queue()
        ok: dict[int, str] = {}
        errors = 0
        trace: list[tuple[int, float, float, float, int]] = []
        behind = 0.0
        rng = random.Random(cmd.get("seed", 1) * 1000 + offset)

        async def worker(port: int) -> None:
            nonlocal errors
            conn = None
            while True:
                job = await queue.get()
                if job is None:
                    break
                k, user, t = job
                for _attempt in range(2):
                    try:
                        if conn is None:
                            conn = await self._conn(port)
                        sent = time.time()
                        status, _ = await http_call(conn, self.build(tpl, user, t, k))
                        if TRACE_DIR:
                            trace.append((k, t, sent, time.time(), port))
                        if 200 <= status < 300:
                            ok[k] = user
                        else:
                            errors += 1
                        break
                    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                        if conn is not None:
                            conn[1].close()
                        conn = None
                else:
                    errors += 1
            if conn is not None:
                conn[1].close()

        workers = [asyncio.create_task(worker(ports[j % len(ports)])) for j in range(pool)]
        cpu0 = _cpu()
        i = offset
        while i < count:
            now = time.time()
            while i < count and t0 + i / rate <= now:
                t = t0 + i / rate
                behind = max(behind, now - t)
                queue.put_nowait((k0 + i, rng.choice(users), t))
                i += stride
            await asyncio.sleep(min(0.002, max(0.0, t0 + i / rate - time.time())))
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.wait_for(asyncio.gather(*workers), 120)
        end = time.time()
        _trace("publish", trace)
        return {
            "sent": len(ok),
            "errors": errors,
            "ok": {str(k): u for k, u in ok.items()},
            "behind_max": behind,
            "cpu": _cpu() - cpu0,
            "wall": end - t0,
        }


# --- the soak (bench/soak.py) --------------------------------------------------------------------


async def http_call(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes
) -> tuple[int, bytes]:
    """One request on a keep-alive connection; the status and the body (length or chunked)."""
    reader, writer = conn
    writer.write(raw)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    body = b""
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += (await asyncio.wait_for(reader.readexactly(size + 2), 30))[:size]
            if size == 0:
                break
    elif length:
        body = await asyncio.wait_for(reader.readexactly(length), 30)
    return status, body


def raw_request(
    host: str, port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class SoakReader(Reader):
    """A stream that its user drops after a random lifetime (exponential, mean
    `gen.lifetime_s`) and reopens after a short gap with its Last-Event-ID, as a user moving
    between pages does; a close by the server waits the server's `retry:` as EventSource does."""

    gen: SoakReaders

    def __init__(
        self, gen: Readers, user: str, path: str, headers: dict[str, str], port: int = 0
    ) -> None:
        super().__init__(gen, user, path, headers, port)
        # From the start of the user's log: nothing published before the first open is missed.
        self.last_id = "0"
        self.drop_at: asyncio.TimerHandle | None = None
        self.dropping = False

    def data_received(self, data: bytes) -> None:
        opened = self.connected
        super().data_received(data)
        if self.connected and not opened and self.gen.lifetime_s > 0:
            lifetime = self.gen.rng.expovariate(1 / self.gen.lifetime_s)
            self.drop_at = asyncio.get_running_loop().call_later(lifetime, self.drop)

    def drop(self) -> None:
        self.drop_at = None
        if self.transport is not None and not self.closing:
            self.dropping = True
            self.gen.drops += 1
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.drop_at is not None:
            self.drop_at.cancel()
            self.drop_at = None
        if not self.dropping:
            if self.connected and not self.closing:
                self.gen.server_closes += 1
            super().connection_lost(exc)
            return
        self.dropping = False
        retry_ms = self.retry_ms
        self.retry_ms = int(self.gen.rng.uniform(*self.gen.gap_s) * 1000)
        super().connection_lost(exc)
        self.retry_ms = retry_ms


class SoakReaders(Readers):
    """The soak's readers: streams dropped at random, and their users marking read and archiving
    what they received (GET /notifications, POST …/read, POST …/archive) at `act_rate` per s."""

    reader_type = SoakReader

    def __init__(self, host: str, port: int, source: str | None, cmd: dict[str, Any]) -> None:
        super().__init__(host, port, source)
        self.rng = random.Random(cmd.get("seed", 1))
        self.lifetime_s = float(cmd["lifetime_s"])
        low, high = cmd.get("gap_s", (0.1, 1.0))
        self.gap_s = (float(low), float(high))
        self.act_rate = float(cmd.get("act_rate", 0))
        self.drops = 0
        self.server_closes = 0  # streams the server ended (not dropped by their user)
        self.failed = 0  # opens that got no answer (refused, or no response head in time)
        self.cursor = 0  # arrivals (stats.kmax, in arrival order) already reported
        self.actions = 0
        self.act_errors: dict[str, int] = {}
        self.act_empty = 0
        self.act_skipped = 0
        self.act_lat: list[float] = []
        self.acting: asyncio.Task[None] | None = None

    async def connect(self, reader: Reader) -> bool:
        ok = await super().connect(reader)
        if not ok and not reader.head_done:
            self.failed += 1
        return ok

    def calm(self) -> None:
        """No more drops (the end of the soak): every stream reopens once more and stays."""
        self.lifetime_s = 0
        for r in self.readers:
            if isinstance(r, SoakReader) and r.drop_at is not None:
                r.drop_at.cancel()
                r.drop_at = None
        if self.acting is not None:
            self.acting.cancel()

    def start_acting(self) -> None:
        if self.act_rate > 0 and self.acting is None:
            self.acting = asyncio.get_running_loop().create_task(self._act_forever())

    async def _act_forever(self, workers: int = 4) -> None:
        # Open loop, as the publisher: a slow server shows as a backlog (skipped), not a slower
        # schedule.
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=workers * 4)
        tasks = [asyncio.create_task(self._actor(queue)) for _ in range(workers)]
        try:
            t0 = time.monotonic()
            i = 0
            while True:
                i += 1
                await asyncio.sleep(max(0.0, t0 + i / self.act_rate - time.monotonic()))
                if queue.full():
                    self.act_skipped += 1
                else:
                    queue.put_nowait(None)
        finally:
            for task in tasks:
                task.cancel()

    async def _actor(self, queue: asyncio.Queue[None]) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while True:
            await queue.get()
            reader = next(
                (
                    r
                    for r in (self.rng.choice(self.readers) for _ in range(20))
                    if r.connected and r.seen
                ),
                None,
            )
            if reader is None:
                self.act_empty += 1
                continue
            began = time.monotonic()
            try:
                if conn is None:
                    conn = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port, local_addr=self.local_addr),
                        10,
                    )
                if not await self._act(conn, reader):
                    self.act_empty += 1
                    continue
                self.actions += 1
                self.act_lat.append(time.monotonic() - began)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                name = type(exc).__name__
                self.act_errors[name] = self.act_errors.get(name, 0) + 1
                if conn is not None:
                    conn[1].close()
                conn = None

    async def _act(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], reader: Reader
    ) -> bool:
        """The user lists their newest 20, marks read up to 3 they received, archives one."""
        auth = {k: v for k, v in reader.headers.items() if k.lower() == "authorization"}
        raw = raw_request(self.host, self.port, "GET", "/notifications?limit=20", auth)
        status, body = await http_call(conn, raw)
        if status != 200:
            self._act_status(status)
            return True
        ids = [
            n["id"]
            for n in json.loads(body)
            if isinstance(n.get("data"), dict) and n["data"].get("k") in reader.seen
        ][:3]
        if not ids:
            return False
        for path, chosen in (("/notifications/read", ids), ("/notifications/archive", ids[-1:])):
            payload = json.dumps({"ids": chosen}).encode()
            status, _ = await http_call(
                conn, raw_request(self.host, self.port, "POST", path, auth, payload)
            )
            if not 200 <= status < 300:
                self._act_status(status)
        return True

    def _act_status(self, status: int) -> None:
        self.act_errors[str(status)] = self.act_errors.get(str(status), 0) + 1

    def window(self) -> dict[str, Any]:
        """What arrived since the last call ([k, latency] each, in arrival order), and counts."""
        kmax = self.stats.kmax
        fresh = [[k, v] for k, v in list(kmax.items())[self.cursor :]]
        self.cursor = len(kmax)
        # Bounded: the soak reads latencies from kmax (one user per notification), not lat.
        self.stats.lat = array("d")
        act_lat, self.act_lat = self.act_lat, []
        return {
            "open": self.open,
            "readers": len(self.readers),
            "reconnects": self.reconnects,
            "drops": self.drops,
            "server_closes": self.server_closes,
            "failed": self.failed,
            "resets": self.resets,
            "doubles": self.doubles,
            "statuses": self.statuses,
            "events": self.stats.events,
            "dups": self.stats.dups,
            "distinct": len(kmax),
            "arrivals": fresh,
            "actions": self.actions,
            "act_errors": self.act_errors,
            "act_empty": self.act_empty,
            "act_skipped": self.act_skipped,
            "act_lat": act_lat,
        }

    def received(self) -> dict[str, Any]:
        return {
            "seen": {r.user: sorted(r.seen) for r in self.readers if r.seen},
            "dups": {r.user: r.dup_count for r in self.readers if r.dup_count},
        }


class SoakPublisher:
    """Open loop at `rate` per s until stopped, to random users; publish k is scheduled
    `ahead` s later (`deliver_at`) when k % `scheduled_every` == 0. Each carries `"t"` (its
    scheduled send time, or for a scheduled one its due time) and `"k"`, and an idempotency key."""

    def __init__(self, host: str, port: int, cmd: dict[str, Any]) -> None:
        self.host = host
        self.port = port
        self.rate = float(cmd["rate"])
        self.users: list[str] = cmd["users"]
        self.headers: dict[str, str] = cmd["headers"]
        self.k0 = int(cmd["k0"])
        self.every = int(cmd.get("scheduled_every", 20))
        low, high = cmd.get("ahead_s", (2.0, 10.0))
        self.ahead = (float(low), float(high))
        self.pool = int(cmd.get("connections", 16))
        self.rng = random.Random(cmd.get("seed", 1))
        self.queue: asyncio.Queue[tuple[int, str, float, bool] | None] = asyncio.Queue()
        self.ok: dict[int, str] = {}
        self.scheduled = 0
        self.errors: dict[str, int] = {}
        self.behind = 0.0
        self.call_lat: list[float] = []
        self.stopping = False
        self.unsent = 0
        self.ticker: asyncio.Task[None] | None = None
        self.workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.workers = [asyncio.create_task(self._worker()) for _ in range(self.pool)]
        self.ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        t0 = time.time() + 0.2
        i = 0
        while not self.stopping:
            now = time.time()
            while t0 + i / self.rate <= now:
                t = t0 + i / self.rate
                self.behind = max(self.behind, now - t)
                k = self.k0 + i
                self.queue.put_nowait((k, self.rng.choice(self.users), t, k % self.every == 0))
                i += 1
            await asyncio.sleep(min(0.002, max(0.0, t0 + i / self.rate - time.time())))

    def _build(self, k: int, user: str, t: float, scheduled: bool) -> bytes:
        body: dict[str, Any] = {"user_id": user, "message": "soak", "idempotency_key": f"soak-{k}"}
        if scheduled:
            t += self.rng.uniform(*self.ahead)
            body["deliver_at"] = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
        body["data"] = {"t": round(t, 6), "k": k}
        raw = json.dumps(body).encode()
        return raw_request(self.host, self.port, "POST", "/api/notifications", self.headers, raw)

    async def _worker(self) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while True:
            job = await self.queue.get()
            if job is None:
                break
            k, user, t, scheduled = job
            raw = self._build(k, user, t, scheduled)
            for _attempt in range(2):
                began = time.monotonic()
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(
                            asyncio.open_connection(self.host, self.port), 10
                        )
                    status, _ = await http_call(conn, raw)
                    self.call_lat.append(time.monotonic() - began)
                    if 200 <= status < 300:
                        self.ok[k] = user
                        self.scheduled += scheduled
                    else:
                        self.errors[str(status)] = self.errors.get(str(status), 0) + 1
                    break
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                    # Sent again with the same idempotency key: stored once at most.
                    if conn is not None:
                        conn[1].close()
                    conn = None
            else:
                self.errors["connection"] = self.errors.get("connection", 0) + 1
        if conn is not None:
            conn[1].close()

    def window(self) -> dict[str, Any]:
        behind, self.behind = self.behind, 0.0
        call_lat, self.call_lat = self.call_lat, []
        return {
            "sent": len(self.ok),
            "scheduled": self.scheduled,
            "errors": self.errors,
            "backlog": self.queue.qsize(),
            "unsent": self.unsent,
            "behind_max": behind,
            "call_lat": call_lat,
        }

    async def stop(self) -> dict[str, Any]:
        self.stopping = True
        if self.ticker is not None:
            await self.ticker
        # What is still queued is never sent (a server far behind would keep it for minutes).
        while not self.queue.empty():
            self.queue.get_nowait()
            self.unsent += 1
        for _ in self.workers:
            self.queue.put_nowait(None)
        await asyncio.wait_for(asyncio.gather(*self.workers), 120)
        return {**self.window(), "ok": {str(k): u for k, u in self.ok.items()}}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def main(host: str, port: int, source: str | None) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    readers = Readers(host, port, source)
    publisher = Publisher(host, port)
    soak_publisher: SoakPublisher | None = None
    mark_cpu = _cpu()
    mark_wall = time.time()

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    while True:
        line = await stdin.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["cmd"]
        if op == "open":
            readers.reconnect = bool(cmd.get("reconnect", False))
            reply(await readers.open_many(cmd["conns"], int(cmd.get("concurrency", 64))))
        elif op == "reconnect":
            readers.reconnect = bool(cmd["on"])
            reply({"ok": True})
        elif op == "mark":
            for r in readers.readers:
                r.count = 0
                r.done = False
            readers.target = int(cmd["target"])
            readers.done = 0
            readers.last_done = 0.0
            readers.done_at = array("d")
            readers.opened_at = array("d")
            readers.returned_at = array("d")
            readers.served_in = array("d")
            readers.connect_in = array("d")
            readers.stats.reset()
            mark_cpu, mark_wall = _cpu(), time.time()
            reply({"ok": True})
        elif op == "stats":
            s = readers.stats
            out: dict[str, Any] = {
                "open": readers.open,
                "readers": len(readers.readers),
                "reconnects": readers.reconnects,
                "doubles": readers.doubles,
                "statuses": readers.statuses,
                "done": readers.done,
                "last_done": readers.last_done,
                "events": s.events,
                "dups": s.dups,
                "cpu": _cpu() - mark_cpu,
                # The kernel's share of the process's CPU so far (not since the mark).
                "cpu_system": os.times().system,
                "wall": time.time() - mark_wall,
            }
            if cmd.get("full"):
                _trace("receive", s.trace)
                s.trace = []
                out["lat"] = list(s.lat)
                out["keys"] = {str(k): v for k, v in s.keys.items()}
                out["kmax"] = {str(k): v for k, v in s.kmax.items()}
                out["done_at"] = list(readers.done_at)
                out["opened_at"] = list(readers.opened_at)
                out["returned_at"] = list(readers.returned_at)
                out["served_in"] = list(readers.served_in)
                out["connect_in"] = list(readers.connect_in)
            reply(out)
        elif op == "publish":
            reply(await publisher.run(cmd))
        elif op == "soak_readers":
            # Before any `open`: this process's readers become the soak's.
            readers = SoakReaders(host, port, source, cmd)
            reply({"ok": True})
        elif op == "soak_act":
            assert isinstance(readers, SoakReaders)
            readers.start_acting()
            reply({"ok": True})
        elif op in ("soak_stats", "soak_publish_stats"):
            window: dict[str, Any] = {}
            if op == "soak_stats":
                assert isinstance(readers, SoakReaders)
                window = readers.window()
            elif soak_publisher is not None:
                window = soak_publisher.window()
            now_cpu, now_wall = _cpu(), time.time()
            window.update(cpu=now_cpu - mark_cpu, wall=now_wall - mark_wall)
            mark_cpu, mark_wall = now_cpu, now_wall
            reply(window)
        elif op == "soak_calm":
            assert isinstance(readers, SoakReaders)
            readers.calm()
            reply({"ok": True})
        elif op == "soak_received":
            assert isinstance(readers, SoakReaders)
            reply(readers.received())
        elif op == "soak_publish_start":
            soak_publisher = SoakPublisher(host, port, cmd)
            soak_publisher.start()
            mark_cpu, mark_wall = _cpu(), time.time()
            reply({"ok": True})
        elif op == "soak_publish_stop":
            assert soak_publisher is not None
            reply(await soak_publisher.stop())
        elif op == "close":
            readers.close()
            await asyncio.sleep(0.2)
            reply({"ok": True})
            break
        else:
            reply({"error": f"unknown command {op}"})


if __name__ == "__main__":
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        source = sys.argv[3] if len(sys.argv) > 3 else None
        runner.run(main(sys.argv[1], int(sys.argv[2]), source))
