"""One node's publish path alone, where a loaded machine cannot change the batch size.

    .venv/bin/python -m bench.publish_path server [--count 3000] [--strace] [--py-spy FILE]
                                                  [--granian] [--streams N]
    .venv/bin/python -m bench.publish_path store [--count 3000] [--rate 1000]
    .venv/bin/python -m bench.publish_path writes [--count 20000]

`server`: `tidings serve` (SQLite, a fresh database) and one keep-alive client publishing one-user
notifications one after another, so every commit holds exactly one publish; prints the server's
CPU per publish from /proc (all threads, and the loop's thread). With `--strace`, the syscalls
per publish (`strace -c -f` attached after the warm-up); with `--py-spy FILE`, a raw py-spy
profile of the run; with `--granian`, served by Granian (`tidings.granian_app`, the figures
are its worker's); with `--streams N`, every publish goes to one user with N streams open (read
by a thread of this process), so the difference from a run without streams is the CPU of N
frames. `store`: `SqliteStore.add` in this process fed `--rate` one-user publishes/s
(open loop; 0: one after another), CPU per publish. `writes`: an answer of a publish's size
written as head and body (two writes) against one, over loopback TCP to a reading process;
the sender's CPU per answer.

For an A/B, run it once per arm with `PYTHONPATH=<the arm's src>` (the server and the store come
from there), arms interleaved, under `flock /work/wt/bench.lock` on a shared machine. Prints one
line per run; nothing is written to bench/results (docs/benchmarks.md, section 13, quotes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import HOST, free_port, thread_cpu

ROOT = Path(__file__).resolve().parent.parent
TIDINGS = Path(sys.executable).parent / "tidings"
KEY = "bench-publisher-key"


def _publish(sock: socket.socket, i: int, user: str = "") -> None:
    user = user or f"u{i % 1000}"
    body = json.dumps({"user_id": user, "message": "bench", "data": {"k": i}}).encode()
    sock.sendall(
        b"POST /api/notifications HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 201 "):
        raise SystemExit(f"unexpected answer: {head!r}")
    lines = head.split(b"\r\n")
    length = next(int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += sock.recv(65536)


def _granian_argv(port: int) -> list[str]:
    """tidings served by Granian (as bench/targets.py's `tidings-granian`), for an A/B."""
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", HOST]
    argv += ["--port", str(port), "--http", "1", "--no-ws", "--log-level", "warning"]
    argv += ["--loop", os.environ.get("BENCH_GRANIAN_LOOP", "uvloop"), "--no-access-log"]
    argv += os.environ.get("BENCH_GRANIAN_ARGS", "").split()
    return [*argv, "tidings.granian_app:create"]


def _thread_names(pid: int) -> dict[int, str]:
    names: dict[int, str] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            names[int(tid)] = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
    return names


def _serving_pid(pid: int) -> int:
    """The process that serves: `pid` itself, or Granian's one worker under it."""
    from bench.common import tree

    return tree(pid)[-1]


class _Streams(threading.Thread):
    """`n` SSE streams of one user, read to the end in this thread; counts the notifications."""

    MARK = b"event: new-notification\n"

    def __init__(self, port: int, n: int, secret: str) -> None:
        super().__init__(daemon=True)
        import jwt

        token = jwt.encode({"sub": FAN, "exp": int(time.time()) + 3600}, secret, "HS256")
        self.socks = []
        for _ in range(n):
            sock = socket.create_connection((HOST, port), timeout=30)
            sock.sendall(
                b"GET /notifications/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
                + token.encode()
                + b"\r\n\r\n"
            )
            self.socks.append(sock)
        for sock in self.socks:
            # Open (its `retry:` came) before the first publish, which it must see.
            got = b""
            while b"retry:" not in got:
                chunk = sock.recv(65536)
                if not chunk:
                    raise SystemExit(f"a stream was refused: {got!r}")
                got += chunk
            sock.setblocking(False)
        self.seen = 0
        self.start()

    def run(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        carry: dict[socket.socket, bytes] = {}
        for sock in self.socks:
            sel.register(sock, selectors.EVENT_READ)
            carry[sock] = b""
        keep = len(self.MARK) - 1
        while True:
            for key, _ in sel.select(1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(sock)
                    continue
                joined = carry[sock] + data
                self.seen += joined.count(self.MARK)
                carry[sock] = joined[-keep:]

    def wait(self, total: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.seen < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"the streams got {self.seen} of {total} notifications")
            time.sleep(0.01)


FAN = "fan"


def server(
    count: int, strace: bool, py_spy: str | None, granian: bool = False, streams: int = 0
) -> str:
    work = Path(tempfile.mkdtemp(prefix="publish-path-", dir=ROOT / "bench" / ".work"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_DATABASE_URL=f"sqlite:///{work / 'tidings.db'}",
        TIDINGS_SECRET="s" * 32,
        TIDINGS_PUBLISHER_KEYS=KEY,
        TIDINGS_MAX_STREAMS_PER_USER=str(max(streams, 20)),
    )
    argv = [str(TIDINGS), "serve", "--port", str(port), "--log-level", "warning"]
    if granian:
        argv = _granian_argv(port)
    proc = subprocess.Popen(argv, env=env, cwd=work)
    pid = proc.pid
    try:
        for _ in range(600):
            try:
                sock = socket.create_connection((HOST, port), timeout=30)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("the server did not start")
        fan = _Streams(port, streams, env["TIDINGS_SECRET"]) if streams else None
        user = FAN if fan is not None else ""
        for i in range(300):  # warm-up: imports, statement caches, the first pages
            _publish(sock, i, user)
        if fan is not None:
            fan.wait(300 * streams)
        pid = _serving_pid(proc.pid)
        tracer: subprocess.Popen[bytes] | None = None
        if strace:
            argv = ["strace", "-f", "-c", "-o", str(work / "strace.txt"), "-p", str(pid)]
            tracer = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        elif py_spy:
            argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "500"]
            # BENCH_PY_SPY_FLAGS="--native --threads": C frames too (py-spy then pauses the
            # server for each sample, so its CPU figure is not comparable).
            flags = os.environ.get("BENCH_PY_SPY_FLAGS", "--nonblocking").split()
            argv += [*flags, "-f", "raw", "-o", py_spy, "-p", str(pid)]
            tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if tracer is not None:
            time.sleep(1.0)  # attached before the first measured publish
        before = thread_cpu(pid)
        started = time.perf_counter()
        for i in range(count):
            _publish(sock, i, user)
        if fan is not None:
            # Every frame written (under Granian they may leave after the answers).
            fan.wait((300 + count) * streams)
        wall = time.perf_counter() - started
        after = thread_cpu(pid)
        names = _thread_names(pid)
        sock.close()
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(30)
    finally:
        proc.terminate()
        proc.wait(30)
    total = sum(after.values()) - sum(before.get(t, 0.0) for t in after)
    loop = after[pid] - before[pid]
    line = (
        f"server {total / count * 1e6:.1f} µs/publish, loop thread {loop / count * 1e6:.1f}, "
        f"other threads {(total - loop) / count * 1e6:.1f}; wall {wall / count * 1e6:.0f} µs"
    )
    rust = sum(after[t] - before.get(t, 0.0) for t in after if names.get(t, "").startswith("tokio"))
    if rust:
        line += f" (of the other threads, Granian's Rust runtime {rust / count * 1e6:.1f})"
    if strace:
        calls: list[str] = []
        for row in (work / "strace.txt").read_text().splitlines():
            fields = row.split()
            if len(fields) >= 5 and fields[3].isdigit() and int(fields[3]) / count >= 0.05:
                calls.append(f"{fields[-1]} {int(fields[3]) / count:.2f}")
        line += "\nsyscalls per publish: " + ", ".join(calls)
    return line


async def _store(count: int, rate: float) -> float:
    from tidings.models import Draft
    from tidings.store.sqlite import SqliteStore

    work = Path(tempfile.mkdtemp(prefix="publish-path-", dir=ROOT / "bench" / ".work"))
    store = SqliteStore(str(work / "tidings.db"))
    await store.open()
    try:

        def draft(i: int) -> Draft:
            return Draft(user_ids=(f"u{i % 1000}",), message="bench", data={"k": i})

        for i in range(200):
            await store.add(draft(i))
        started = time.process_time()
        if rate <= 0:
            for i in range(count):
                await store.add(draft(i))
        else:
            pending = []
            t0 = time.perf_counter()
            for i in range(count):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                pending.append(asyncio.ensure_future(store.add(draft(i))))
            await asyncio.gather(*pending)
        return (time.process_time() - started) / count
    finally:
        await store.close()


def store(count: int, rate: float) -> str:
    import uvloop

    cpu = uvloop.run(_store(count, rate))
    return f"store {cpu * 1e6:.1f} µs/publish (process CPU, every thread)"


def writes(count: int) -> str:
    head = (
        b"HTTP/1.1 201 Created\r\ndate: Mon, 07 Dec 2026 15:00:00 GMT\r\nserver: uvicorn\r\n"
        b"content-type: application/json\r\ncontent-length: 260\r\n\r\n"
    )
    body = b"x" * 260
    figures = []
    for pieces in ((head, body), (head + body,)):
        listener = socket.socket()
        listener.bind((HOST, 0))
        listener.listen(1)
        reader = os.fork()
        if reader == 0:  # the client: reads and discards until the sender closes
            client = socket.create_connection(listener.getsockname())
            while client.recv(1 << 16):
                pass
            os._exit(0)
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvloop sets it
        started = time.process_time()
        for i in range(count):
            for piece in pieces:
                sock.send(piece)
            if i % 50 == 0:
                time.sleep(0)  # let the reader keep up
        figures.append((time.process_time() - started) / count)
        sock.close()
        os.waitpid(reader, 0)
        listener.close()
    return f"two writes {figures[0] * 1e6:.1f} µs, one write {figures[1] * 1e6:.1f} µs per answer"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_path", description=__doc__)
    parser.add_argument("what", choices=("server", "store", "writes"))
    parser.add_argument("--count", type=int, default=0, help="publishes (answers for writes)")
    parser.add_argument("--rate", type=float, default=1000.0, help="store: publishes/s, 0 = serial")
    parser.add_argument("--strace", action="store_true", help="server: syscalls per publish")
    parser.add_argument("--py-spy", metavar="FILE", help="server: a raw py-spy profile to FILE")
    parser.add_argument("--granian", action="store_true", help="server: served by Granian")
    parser.add_argument(
        "--streams", type=int, default=0, help="server: N streams of the one user published to"
    )
    args = parser.parse_args(argv)
    (ROOT / "bench" / ".work").mkdir(parents=True, exist_ok=True)
    if args.what == "server":
        print(server(args.count or 3000, args.strace, args.py_spy, args.granian, args.streams))
    elif args.what == "store":
        print(store(args.count or 3000, args.rate))
    else:
        print(writes(args.count or 20000))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
