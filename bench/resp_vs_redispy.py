"""tidings.bus.resp against redis-py's asyncio client, in-process, on a real Redis.

Three questions decide whether the routed Redis buses keep their own RESP client:

- `recv`: CPU per received pub/sub message in the subscribing process: resp.py's reader loop
  (as in bus/redis.py) against redis-py's `PubSub.get_message` loop (and `listen()`), and on a
  cluster against `ClusterPubSub.get_sharded_message`. The messages come from a separate
  publisher process, so only the subscriber's CPU is counted (`time.process_time`).
- `subscribe`: how long a SUBSCRIBE / SSUBSCRIBE takes to be confirmed while the connection
  receives a steady flow of messages (and while idle), as the reader loop sees it.
- `publish`: CPU and wall time to publish 10,000 messages to 10,000 channels in one pipeline:
  resp.py's `call` against a redis-py pipeline; on a cluster against redis-py's cluster pipeline
  and against one plain pipeline per master.

Every figure is the median of `--runs` runs, the contenders alternating. Process CPU time, not
wall time, is the measure that holds on a loaded machine. Run inside
`eval "$(scripts/services up)"`:

    .venv/bin/python -m bench.resp_vs_redispy [--messages 50000] [--runs 3]

writes bench/results/resp-vs-redispy-<timestamp>.json. redis-py parses replies in Python unless
`hiredis` is installed (not a dependency of tidings); with it, the file is named
resp-vs-redispy-hiredis-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from tidings.bus.resp import Endpoint, RespConnection

RESULTS = Path(__file__).parent / "results"
PAYLOAD = ("x" * 180).encode()  # about the size of one announcement of one event
CHANNELS = 200

# The publisher runs in its own process so its CPU is not the subscriber's. It pipelines
# `count` PUBLISH commands round-robin over the channels given on stdin, in chunks of 500,
# at `rate` per second (0: as fast as Redis takes them).
PUBLISHER = r"""
import socket, sys, time
host, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
count, rate = int(sys.argv[4]), float(sys.argv[5])
channels = sys.stdin.read().split()
payload = b"x" * 180
def command(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
sock = socket.create_connection((host, port))
reader = sock.makefile("rb")
chunk = 500 if rate == 0 else max(1, int(rate / 100))
sent, started = 0, time.monotonic()
while sent < count:
    n = min(chunk, count - sent)
    names = [channels[(sent + i) % len(channels)].encode() for i in range(n)]
    sock.sendall(b"".join(command(cmd, name, payload) for name in names))
    for _ in range(n):
        reader.readline()
    sent += n
    if rate:
        ahead = started + sent / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
"""


def publisher(
    host: str, port: int, cmd: str, channels: list[str], count: int, rate: float
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, host, str(port), cmd, str(count), str(rate)],
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write("\n".join(channels).encode())
    proc.stdin.close()
    return proc


class Target:
    """One Redis, or one master of a cluster, and the channels it serves."""

    def __init__(self, host: str, port: int, cluster: bool, seed: tuple[str, int]) -> None:
        self.host, self.port, self.cluster, self.seed = host, port, cluster, seed
        self.sub_cmd = "SSUBSCRIBE" if cluster else "SUBSCRIBE"
        self.pub_cmd = "SPUBLISH" if cluster else "PUBLISH"
        self.prefix = "bench:u:{%d}" if cluster else "bench:u:%d"
        self.slots: set[int] = set()

    def channels(self, count: int, start: int = 0) -> list[str]:
        """`count` per-user channels this node serves (on a cluster: whose slot it owns)."""
        out: list[str] = []
        i = start
        while len(out) < count:
            name = self.prefix % i
            if not self.cluster or key_slot(name.encode()) in self.slots:
                out.append(name)
            i += 1
        return out


# -- the two subscribers: each counts messages and reports subscribe confirmations -----------


class RespSubscriber:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.received = 0
        self.waiters: dict[bytes, asyncio.Future[float]] = {}

    async def start(self, channels: list[str]) -> None:
        self.conn = await RespConnection.open(Endpoint(self.target.host, self.target.port), 5.0)
        confirmed = asyncio.get_running_loop().create_future()
        self.waiters[channels[-1].encode()] = confirmed
        # One channel per command on a cluster (one slot per SSUBSCRIBE), as bus/redis.py does.
        if self.target.cluster:
            self.conn.write(*[[self.target.sub_cmd, c] for c in channels])
        else:
            self.conn.write([self.target.sub_cmd, *channels])
        self.reader = asyncio.create_task(self.read())
        await asyncio.wait_for(confirmed, 30)

    async def read(self) -> None:
        # The loop of RedisBus._listen, minus the bus's own bookkeeping.
        conn = self.conn
        while True:
            frame = await conn.read()
            if not isinstance(frame, list) or len(frame) < 3:
                continue
            kind = frame[0]
            if kind in (b"message", b"smessage"):
                if isinstance(frame[2], bytes):
                    self.received += 1
            elif kind in (b"subscribe", b"ssubscribe"):
                waiter = self.waiters.pop(frame[1], None)  # type: ignore[arg-type]
                if waiter is not None and not waiter.done():
                    waiter.set_result(time.perf_counter())

    async def subscribe(self, channel: str) -> float:
        """Seconds from the call to the confirmation seen by the reader."""
        start = time.perf_counter()
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[channel.encode()] = waiter
        self.conn.write([self.target.sub_cmd, channel])
        return await waiter - start

    async def stop(self) -> None:
        self.reader.cancel()
        await self.conn.aclose()


class RedisPySubscriber:
    """redis-py's asyncio PubSub (ClusterPubSub on a cluster) read by a get_message loop."""

    def __init__(self, target: Target, mode: str = "get_message") -> None:
        self.target = target
        self.mode = mode
        self.received = 0
        self.waiters: dict[bytes, asyncio.Future[float]] = {}

    async def start(self, channels: list[str]) -> None:
        t = self.target
        if t.cluster and not self.mode.startswith("per master"):
            self.client: Any = RedisCluster(host=t.seed[0], port=t.seed[1])
            await self.client.initialize()
            self.pubsub: Any = self.client.pubsub()
            await self.pubsub.ssubscribe(*channels)
        elif t.cluster:
            # A plain PubSub on one master, as the bus would hold one per master.
            self.client = Redis(host=t.host, port=t.port)
            self.pubsub = self.client.pubsub()
            # One slot per SSUBSCRIBE (CROSSSLOT otherwise), as bus/redis.py does.
            for channel in channels:
                await self.pubsub.ssubscribe(channel)
        else:
            self.client = Redis(host=t.host, port=t.port)
            self.pubsub = self.client.pubsub()
            await self.pubsub.subscribe(*channels)
        confirmed = asyncio.get_running_loop().create_future()
        self.waiters[channels[-1].encode()] = confirmed
        self.reader = asyncio.create_task(self.read())
        await asyncio.wait_for(confirmed, 30)

    def handle(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        kind = message["type"]
        if kind in ("message", "smessage"):
            self.received += 1
        elif kind in ("subscribe", "ssubscribe"):
            waiter = self.waiters.pop(message["channel"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(time.perf_counter())

    async def read(self) -> None:
        pubsub = self.pubsub
        if self.mode.endswith("listen"):
            async for message in pubsub.listen():
                self.handle(message)
        elif self.target.cluster and not self.mode.startswith("per master"):
            while True:
                self.handle(await pubsub.get_sharded_message(timeout=1.0))
        else:
            while True:
                self.handle(await pubsub.get_message(timeout=1.0))

    async def subscribe(self, channel: str) -> float:
        start = time.perf_counter()
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[channel.encode()] = waiter
        if self.target.cluster:
            await self.pubsub.ssubscribe(channel)
        else:
            await self.pubsub.subscribe(channel)
        return await waiter - start

    async def stop(self) -> None:
        self.reader.cancel()
        # The cancellation, or whatever the interrupted read raised.
        with contextlib.suppress(BaseException):
            await self.reader
        await self.pubsub.aclose()
        await self.client.aclose()


Subscriber = RespSubscriber | RedisPySubscriber


# -- the measurements -----------------------------------------------------------------------


async def wait_for(check: Callable[[], bool], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the subscriber fell behind")
        await asyncio.sleep(0.01)


async def recv_cpu(make: Callable[[], Subscriber], target: Target, messages: int) -> dict[str, Any]:
    sub = make()
    channels = target.channels(CHANNELS)
    await sub.start(channels)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        proc = publisher(target.host, target.port, target.pub_cmd, channels, messages, 0)
        await wait_for(lambda: sub.received >= messages, 300)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await asyncio.to_thread(proc.wait)
    finally:
        await sub.stop()
    return {"cpu_us_per_message": cpu / messages * 1e6, "wall_s": wall, "received": sub.received}


async def subscribe_latency(
    make: Callable[[], Subscriber], target: Target, rate: float, probes: int
) -> dict[str, Any]:
    sub = make()
    channels = target.channels(CHANNELS)
    await sub.start(channels)
    proc = None
    try:
        if rate:
            proc = publisher(
                target.host, target.port, target.pub_cmd, channels, int(rate * 120), rate
            )
            await wait_for(lambda: sub.received >= rate / 4, 30)  # the flow has begun
        fresh = target.channels(probes, start=100_000)
        times = []
        for channel in fresh:
            times.append(await asyncio.wait_for(sub.subscribe(channel), 30))
            await asyncio.sleep(0.05)
        received = sub.received
    finally:
        if proc is not None:
            proc.kill()
            await asyncio.to_thread(proc.wait)
        await sub.stop()
    ms = sorted(t * 1000 for t in times)
    return {
        "rate": rate,
        "probes": probes,
        "median_ms": statistics.median(ms),
        "p90_ms": ms[int(len(ms) * 0.9) - 1],
        "max_ms": ms[-1],
        "received_meanwhile": received,
    }


async def publish_resp(targets: list[Target], channels: list[str]) -> None:
    by_target: dict[int, list[list[str | bytes]]] = {}
    for channel in channels:
        slot = key_slot(channel.encode())
        index = next(i for i, t in enumerate(targets) if not t.cluster or slot in t.slots)
        by_target.setdefault(index, []).append([targets[index].pub_cmd, channel, PAYLOAD])
    conns = [await RespConnection.open(Endpoint(t.host, t.port), 5.0) for t in targets]
    try:
        replies = await asyncio.gather(*(conns[i].call(c) for i, c in by_target.items()))
        assert sum(len(r) for r in replies) == len(channels)
    finally:
        for conn in conns:
            await conn.aclose()


async def publish_redispy(targets: list[Target], channels: list[str]) -> None:
    t = targets[0]
    async with Redis(host=t.host, port=t.port) as client:
        pipe = client.pipeline(transaction=False)
        for channel in channels:
            pipe.publish(channel, PAYLOAD)
        replies = await pipe.execute()
        assert len(replies) == len(channels)


async def publish_redispy_cluster(targets: list[Target], channels: list[str]) -> None:
    t = targets[0]
    async with RedisCluster(host=t.seed[0], port=t.seed[1]) as client:
        pipe = client.pipeline()
        for channel in channels:
            pipe.spublish(channel, PAYLOAD)
        replies = await pipe.execute()
        assert len(replies) == len(channels)


async def publish_redispy_per_node(targets: list[Target], channels: list[str]) -> None:
    clients = [Redis(host=t.host, port=t.port) for t in targets]
    try:
        pipes = [c.pipeline(transaction=False) for c in clients]
        for channel in channels:
            slot = key_slot(channel.encode())
            index = next(i for i, t in enumerate(targets) if slot in t.slots)
            pipes[index].execute_command("SPUBLISH", channel, PAYLOAD)
        replies = await asyncio.gather(*(p.execute() for p in pipes))
        assert sum(len(r) for r in replies) == len(channels)
    finally:
        for c in clients:
            await c.aclose()


async def publish_cost(
    run: Callable[[list[Target], list[str]], Awaitable[None]], targets: list[Target], count: int
) -> dict[str, Any]:
    channels = [targets[0].prefix % i for i in range(count)]
    cpu, wall = time.process_time(), time.perf_counter()
    await run(targets, channels)
    return {
        "cpu_ms": (time.process_time() - cpu) * 1000,
        "wall_ms": (time.perf_counter() - wall) * 1000,
    }


# -- setup ----------------------------------------------------------------------------------


async def cluster_targets(url: str) -> list[Target]:
    first = urlsplit(url.split(",")[0].replace("+cluster", ""))
    seed = (first.hostname or "127.0.0.1", first.port or 6379)
    conn = await RespConnection.open(Endpoint(*seed), 5.0)
    try:
        (reply,) = await conn.call([["CLUSTER", "SLOTS"]])
    finally:
        await conn.aclose()
    assert isinstance(reply, list)
    targets: dict[tuple[str, int], Target] = {}
    for entry in reply:
        assert isinstance(entry, list)
        start, end, master = entry[0], entry[1], entry[2]
        assert isinstance(start, int)
        assert isinstance(end, int)
        assert isinstance(master, list)
        host, port = master[0], master[1]
        assert isinstance(host, bytes)
        assert isinstance(port, int)
        key = (host.decode() or seed[0], port)
        target = targets.setdefault(key, Target(key[0], key[1], True, seed))
        target.slots.update(range(start, end + 1))
    return sorted(targets.values(), key=lambda t: min(t.slots))


async def unlimit(targets: list[Target]) -> None:
    """No output-buffer limit for pub/sub clients: a slower reader is measured, not dropped."""
    for t in targets:
        conn = await RespConnection.open(Endpoint(t.host, t.port), 5.0)
        try:
            await conn.call([["CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0"]])
        finally:
            await conn.aclose()


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    out["runs"] = [
        {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in runs
    ]
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    single = urlsplit(os.environ["TIDINGS_TEST_REDIS_URL"])
    plain = [Target(single.hostname or "127.0.0.1", single.port or 6379, False, ("", 0))]
    masters = await cluster_targets(os.environ["TIDINGS_TEST_REDIS_CLUSTER_URL"])
    await unlimit(plain + masters)
    out: dict[str, Any] = {}
    for label, targets in (("redis", plain), ("cluster", masters)):
        node = targets[0]
        makers: dict[str, Callable[[], Subscriber]] = {
            "resp.py": lambda node=node: RespSubscriber(node)
        }
        if label == "redis":
            makers["redis-py get_message"] = lambda node=node: RedisPySubscriber(node)
            makers["redis-py listen"] = lambda node=node: RedisPySubscriber(node, "listen")
        else:
            makers["redis-py ClusterPubSub get_sharded_message"] = lambda node=node: (
                RedisPySubscriber(node, "get_sharded_message")
            )
            makers["redis-py PubSub per master"] = lambda node=node: RedisPySubscriber(
                node, "per master"
            )
            makers["redis-py PubSub per master listen"] = lambda node=node: RedisPySubscriber(
                node, "per master listen"
            )
        section: dict[str, Any] = {}
        recv: dict[str, list[dict[str, Any]]] = {name: [] for name in makers}
        for _ in range(args.runs):
            for name, make in makers.items():
                recv[name].append(await recv_cpu(make, node, args.messages))
                print(label, "recv", name, recv[name][-1], flush=True)
        section["recv"] = {name: median_of(runs) for name, runs in recv.items()}
        sub: dict[str, dict[str, Any]] = {}
        for rate in (0.0, args.flow):
            for name, make in makers.items():
                if name.endswith("listen"):
                    continue
                result = await subscribe_latency(make, node, rate, args.probes)
                print(label, "subscribe", name, result, flush=True)
                sub.setdefault(name, {})["flow" if rate else "idle"] = result
        section["subscribe"] = sub
        publishers: dict[str, Callable[[list[Target], list[str]], Awaitable[None]]] = {
            "resp.py": publish_resp
        }
        if label == "redis":
            publishers["redis-py pipeline"] = publish_redispy
        else:
            publishers["redis-py cluster pipeline"] = publish_redispy_cluster
            publishers["redis-py pipeline per master"] = publish_redispy_per_node
        pub: dict[str, list[dict[str, Any]]] = {name: [] for name in publishers}
        for _ in range(args.runs):
            for name, run in publishers.items():
                pub[name].append(await publish_cost(run, targets, args.publishes))
                print(label, "publish", name, pub[name][-1], flush=True)
        section["publish"] = {name: median_of(runs) for name, runs in pub.items()}
        out[label] = section
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--publishes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--flow", type=float, default=2000.0, help="messages/s during subscribes")
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    import redis

    started = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    results = asyncio.run(measure(args))
    document = {
        "scenario": "resp-vs-redispy",
        "started": started,
        "command": "python -m bench.resp_vs_redispy " + " ".join(sys.argv[1:]),
        "python": platform.python_version(),
        "redis_py": redis.__version__,
        "hiredis": redis.utils.HIREDIS_AVAILABLE,
        "messages": args.messages,
        "publishes": args.publishes,
        "runs": args.runs,
        "flow_per_s": args.flow,
        "payload_bytes": len(PAYLOAD),
        "channels": CHANNELS,
        "note": "machine loaded (2 cores shared by several sessions): process CPU time of the "
        "measuring process, median of the runs, contenders alternating",
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    flavour = "-hiredis" if redis.utils.HIREDIS_AVAILABLE else ""
    path = RESULTS / f"resp-vs-redispy{flavour}-{started}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(path)


if __name__ == "__main__":
    main()
