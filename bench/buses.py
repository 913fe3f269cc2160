"""Delivery latency through each bus, and `--workers 2` against one worker.

    eval "$(scripts/services up)"
    .venv/bin/python -m bench.buses [--duration 10] [--rate 200] [--streams 200]

Every case uses the PostgreSQL store, so the bus is the only difference:

- `local`: one node, the in-process bus (publish and streams on the same node);
- `redis`, `postgres`: two nodes, publishes to node A, streams on node B, through the bus;
- `workers-1`, `workers-2`: one node with the Redis bus and `--workers 1` / `--workers 2`, at a
  rising offered rate, to compare capacity.

Latency is from the *scheduled* send time (stamped in the message, so queueing in the generator or
the server counts) to the moment the client parsed the event. The load generator runs in this
process on the same 2 cores: its CPU share is reported. Writes bench/results/buses-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from tests.multinode.cluster import Cluster, Node
from tests.support import PUBLISHER_KEY, make_token

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    publish_to: list[Node], stream_from: list[Node], *, rate: float, duration: float, streams: int
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    users = [f"bench-{tag}-{i}" for i in range(streams)]
    latencies: list[float] = []
    opened = 0
    all_open = asyncio.Event()

    readers_client = httpx.AsyncClient(
        timeout=httpx.Timeout(10, read=None),
        limits=httpx.Limits(max_connections=streams + 8, max_keepalive_connections=0),
    )

    async def read(user: str, node: Node) -> None:
        nonlocal opened
        headers = {"authorization": f"Bearer {make_token(user)}"}
        url = f"{node.url}/notifications/stream"
        async with readers_client.stream("GET", url, headers=headers) as response:
            opened += 1
            if opened == len(users):
                all_open.set()
            async for line in response.aiter_lines():
                if line.startswith("data: {") and '"message"' in line:
                    body = json.loads(line[6:])
                    latencies.append(time.time() - float(body["message"]))

    sent = 0
    failed = 0
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with (
        asyncio.TaskGroup() as tg,
        httpx.AsyncClient(
            headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10, limits=limits
        ) as pub,
    ):
        readers = [
            tg.create_task(read(u, stream_from[i % len(stream_from)])) for i, u in enumerate(users)
        ]
        await asyncio.wait_for(all_open.wait(), 60)
        await asyncio.sleep(0.5)

        async def one(user: str, scheduled: float, url: str) -> None:
            nonlocal sent, failed
            try:
                r = await pub.post(
                    f"{url}/api/notifications", json={"user_id": user, "message": repr(scheduled)}
                )
                if r.status_code == 201:
                    sent += 1
                else:
                    failed += 1
            except httpx.TransportError:
                failed += 1

        began = time.time()
        total = int(rate * duration)
        async with asyncio.TaskGroup() as pubs:
            for i in range(total):
                scheduled = began + i / rate
                delay = scheduled - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                url = publish_to[i % len(publish_to)].url
                pubs.create_task(one(users[i % len(users)], scheduled, url))
        deadline = time.monotonic() + 10
        while len(latencies) < sent and time.monotonic() < deadline:  # noqa: ASYNC110 -- a poll with a deadline
            await asyncio.sleep(0.1)
        elapsed = time.time() - began
        for task in readers:
            task.cancel()
    await readers_client.aclose()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    gen_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (
        cpu_before.ru_utime + cpu_before.ru_stime
    )
    ms = [x * 1000 for x in latencies]
    return {
        "offered_rate": rate,
        "streams": streams,
        "published": sent,
        "publish_failed": failed,
        "delivered": len(latencies),
        "delivered_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2) if ms else None,
        "generator_cpu_share": round(gen_cpu / elapsed, 2),
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = line.split(":", 1)[1].strip()
    return info


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200, help="publishes/s for latency cases")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--capacity-rates", default="400,800,1600")
    args = parser.parse_args()
    pg = os.environ.get("TIDINGS_TEST_POSTGRES_URL")
    redis = os.environ.get("TIDINGS_TEST_REDIS_URL")
    if not pg or not redis:
        sys.exit('bench.buses: run `eval "$(scripts/services up)"` first (PostgreSQL and Redis)')
    tmp = Path(tempfile.mkdtemp(prefix="tidings-bench-buses-"))
    channel = f"bench_{uuid.uuid4().hex[:8]}"
    buses = {
        "local": "local://" + str(tmp / "bus.sock"),
        "redis": f"{redis}?channel={channel}",
        "postgres": f"{pg}?channel={channel}",
    }
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv), "cases": {}}
    knobs = {"heartbeat": "15", "max_streams_per_user": "100"}
    for name, bus in buses.items():
        cluster = Cluster(tmp, pg, bus, **knobs)
        try:
            nodes = cluster.start(1 if name == "local" else 2)
            publish_to, stream_from = nodes[:1], nodes[-1:]
            print(f"{name}: measuring", file=sys.stderr, flush=True)
            results["cases"][name] = await measure(
                publish_to,
                stream_from,
                rate=args.rate,
                duration=args.duration,
                streams=args.streams,
            )
            print(f"  {results['cases'][name]}", file=sys.stderr, flush=True)
        finally:
            cluster.close()
    for workers in (1, 2):
        cluster = Cluster(tmp, pg, buses["redis"], **knobs)
        try:
            (node,) = cluster.start(1, "--workers", str(workers))
            runs = []
            for rate in (float(r) for r in args.capacity_rates.split(",")):
                print(f"workers-{workers} at {rate}/s", file=sys.stderr, flush=True)
                found = await measure(
                    [node], [node], rate=rate, duration=args.duration, streams=args.streams * 5
                )
                print(f"  {found}", file=sys.stderr, flush=True)
                runs.append(found)
            results["cases"][f"workers-{workers}"] = runs
        finally:
            cluster.close()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"buses-{time.strftime('%Y-%m-%d')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    asyncio.run(main())
