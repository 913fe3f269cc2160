"""One node's reconnect path alone: the server's CPU per stream that reconnects and replays.

    .venv/bin/python -m bench.reconnect_path [--streams 2000] [--missed 10] [--rounds 3]
        [--at-once 100] [--py-spy FILE]

`tidings serve` (SQLite, a fresh database); every one of `--streams` users gets `--missed` + 1
notifications (one broadcast each); then, `--rounds` times, every user opens a stream with
`Last-Event-ID` set to their first notification (`--at-once` opening at a time), reads until
the `--missed` replayed notifications are in, and closes. Prints the server's CPU per reconnect
(all threads, from /proc, including the close) for each round. What a reconnect storm costs per
stream, without the storm's clients, restart and `retry:` waits, which a loaded machine makes
vary by more than the change being measured (docs/benchmarks.md, section 17).

For an A/B, run it once per arm with `PYTHONPATH=<the arm's src>`, arms interleaved, under
`flock /work/wt/bench.lock` on a shared machine. Nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt

from bench.common import HOST, free_port, thread_cpu
from bench.publish_path import KEY, ROOT, TIDINGS

SECRET = "s" * 32


async def _post(port: int, body: bytes) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(
        b"POST /api/notifications HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    answer = await reader.read()
    writer.close()
    if not answer.startswith(b"HTTP/1.1 201 "):
        raise SystemExit(f"publish failed: {answer[:200]!r}")


async def _reconnect(port: int, token: bytes, missed: int, gate: asyncio.Semaphore) -> None:
    async with gate:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(
            b"GET /notifications/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
            + token
            + b"\r\nLast-Event-ID: 1\r\n\r\n"
        )
        seen = b""
        while seen.count(b"\nid: ") + seen.startswith(b"id: ") < missed:
            chunk = await asyncio.wait_for(reader.read(65536), 30)
            if not chunk:
                raise SystemExit(f"the stream ended early: {seen[:300]!r}")
            seen += chunk
        writer.close()
        await writer.wait_closed()


async def _run(port: int, pid: int, streams: int, missed: int, rounds: int, at_once: int) -> str:
    users = [f"r{i}" for i in range(streams)]
    import json

    for i in range(missed + 1):
        await _post(port, json.dumps({"user_ids": users, "message": f"n{i}"}).encode())
    exp = int(time.time()) + 3600
    tokens = [jwt.encode({"sub": u, "exp": exp}, SECRET, algorithm="HS256").encode() for u in users]
    gate = asyncio.Semaphore(at_once)
    lines = []
    for r in range(rounds):
        before = thread_cpu(pid)
        started = time.perf_counter()
        await asyncio.gather(*(_reconnect(port, t, missed, gate) for t in tokens))
        wall = time.perf_counter() - started
        await asyncio.sleep(0.5)  # the server's side of the closes
        after = thread_cpu(pid)
        cpu = sum(after.values()) - sum(before.get(t, 0.0) for t in after)
        lines.append(
            f"round {r + 1}: server {cpu / streams * 1e6:.0f} µs/reconnect "
            f"(wall {wall:.2f} s for {streams})"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconnect_path", description=__doc__)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--missed", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--at-once", type=int, default=100)
    parser.add_argument("--py-spy", metavar="FILE", help="a raw py-spy profile of the rounds")
    args = parser.parse_args(argv)
    (ROOT / "bench" / ".work").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="reconnect-path-", dir=ROOT / "bench" / ".work"))
    port = free_port()
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_DATABASE_URL=f"sqlite:///{work / 'tidings.db'}",
        TIDINGS_SECRET=SECRET,
        TIDINGS_PUBLISHER_KEYS=KEY,
    )
    argv = [str(TIDINGS), "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(argv, env=env, cwd=work)
    tracer: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(600):
            try:
                subprocess.run(
                    ["curl", "-fsS", f"http://{HOST}:{port}/healthz"],
                    check=True,
                    capture_output=True,
                )
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        if args.py_spy:
            spy = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "500"]
            spy += ["--nonblocking", "-f", "raw", "-o", args.py_spy, "-p", str(proc.pid)]
            tracer = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        print(
            asyncio.run(_run(port, proc.pid, args.streams, args.missed, args.rounds, args.at_once))
        )
    finally:
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(30)
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
