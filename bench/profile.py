"""Where a server spends its CPU per notification: py-spy under the latency scenario's load.

    bench/run profile                 # or: python -m bench.profile [--quick] [--targets a,b]

For each Python target (tidings, the floor): one server, 1,000 streams open, publishes at
1,000/s for the window while `py-spy record` samples every thread of the server at 200 Hz
(`--nonblocking`, idle samples dropped). Each sample is charged to the innermost frame that
belongs to a known part of the path (HTTP parsing, auth, validation, store write, encoding,
fan-out, metrics, …), so a JSON encode inside the hub counts as encoding. Server CPU from /proc
over the same window turns shares into microseconds per notification. Writes
bench/results/profile-<timestamp>.json for bench/report.py (the folded stacks stay in
bench/.work/run/profile-<target>.txt, for flame graphs).
py-spy comes with the `bench` extra and needs ptrace on the server (root or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import common
from bench.targets import PYTHON, Target

STREAMS = 1_000
RATE = 1_000
SAMPLE_HZ = 200

# (part, pattern over "function (file:line)") — the first pattern an innermost frame matches wins.
PARTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("metrics", r"tidings/metrics\.py|prometheus_client"),
        ("auth", r"tidings/auth\.py|/jwt/|^_user_from_token "),
        ("validation", r"tidings/validation\.py|pydantic|/fastapi/(encoders|_compat|dependencies)"),
        ("JSON encoding/decoding", r"/json/(encoder|decoder|__init__)|orjson|ujson|msgspec"),
        ("store write", r"tidings/store/|sqlite3|aiosqlite"),
        ("bus", r"tidings/bus/"),
        ("fan-out (hub, streams)", r"tidings/(hub|stream|sse|frames)\.py|^_(stream|ticker) \("),
        ("proxy-headers middleware", r"proxy_headers\.py"),
        # tidings.answers' cycle writes a held head with its body (or a stream's first frames)
        # and the hub's direct frames itself: the same socket writes.
        (
            "socket writes (uvicorn send)",
            r"RequestResponseCycle\.send |transport\.write"
            r"|OneWriteCycle\.(send|_send_whole|write_frame) ",
        ),
        ("HTTP parse (uvicorn, httptools)", r"HttpToolsProtocol\."),
        (
            "publish route (app, routing)",
            r"tidings/(publish|api|app|service|server|routes)\.py|starlette|fastapi|floor\.py",
        ),
        ("ASGI cycle (uvicorn)", r"RequestResponseCycle\."),
        # Python frames stop here: what is left ran in uvloop's C code (socket reads and writes,
        # callbacks, the selector), which py-spy does not see into without --native.
        ("event loop (uvloop, C)", r"^(Runner\.run|asyncio_run|run_forever|run_until_complete) "),
        ("threads, other", r"threading|concurrent"),
    )
)
# A frame in these files says nothing about the part (generic plumbing): look further out.
GENERIC = re.compile(r"/contextlib\.py|/typing\.py|<frozen|anyio/|asyncio/(tasks|futures|events)")


# A thread parked here is waiting for work, not working (py-spy cannot always tell).
# `_Connection._serve` as the innermost frame: the SQLite thread in its SimpleQueue's get (C).
IDLE = re.compile(
    r"^_worker \(concurrent/futures/thread\.py|^(Condition|Event)\.wait |^Queue\.get "
    r"|^_Connection\._serve "
)


def part_of(stack: list[str]) -> str:
    """The part a sampled stack (outermost frame first) is charged to."""
    for frame in reversed(stack):
        if GENERIC.search(frame):
            continue
        for name, pattern in PARTS:
            if pattern.search(frame):
                return name
    return "other"


def classify(folded: str) -> tuple[Counter[str], Counter[str], int]:
    """Samples per part, per thread, and in all, from py-spy's raw (folded) output."""
    parts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else ""
        stack = frames[1:] if thread else frames
        if stack and IDLE.search(stack[-1]):
            continue
        name = thread.partition(": ")[2] or thread
        # Worker threads are numbered (ThreadPoolExecutor-0_3): one line per pool.
        threads[re.sub(r"_\d+$", "", name)] += count
        parts[part_of(stack)] += count
        total += count
    return parts, threads, total


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the process's main thread (the event loop) and of its other threads
    together (the SQLite writer, thread pools): Python 3.11 does not name the OS threads.

    py-spy's shares count a thread blocked in a system call (the SQLite writer in its fsync,
    a worker in its queue's get) as busy when it cannot tell, so its shares overstate a thread
    that waits a lot; this is what each thread really ran."""
    cpu: dict[str, float] = {}
    for tid, seconds in common.thread_cpu(pid).items():
        name = "main thread" if tid == pid else "other threads"
        cpu[name] = cpu.get(name, 0.0) + seconds
    return cpu


def profile_target(target: Target, work: Path, seconds: float) -> dict[str, Any]:
    from bench.main import Generator, reader_procs, users

    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(spy).exists():
        return {"skipped": "py-spy is not installed (pip install -e '.[bench]')"}
    server = target.start(work)
    gen = None
    try:
        gen = Generator(server.port, reader_procs(STREAMS))
        names = users(STREAMS)
        gen.open([target.stream(u) for u in names])
        time.sleep(2.0)
        folded = work / f"profile-{target.name}.txt"
        # The server's own process: `tidings serve` is one process; uvicorn's floor too.
        spy_proc = subprocess.Popen(
            [
                *(spy, "record", "--pid", str(server.proc.pid), "--rate", str(SAMPLE_HZ)),
                *("--duration", str(int(seconds)), "--format", "raw", "--threads"),
                *("--nonblocking", "--output", str(folded)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)
        gen.mark()
        s0 = server.sample()
        t0 = thread_cpu(server.proc.pid)
        pub = gen.publish(
            {
                "rate": RATE,
                "duration": seconds,
                "users": names,
                "template": target.publish_template(),
                "k0": 1,
                "connections": 64,
            }
        )
        s1 = server.sample()
        t1 = thread_cpu(server.proc.pid)
        _, err = spy_proc.communicate(timeout=60)
        if spy_proc.returncode != 0 or not folded.exists():
            return {"error": "py-spy failed: " + err.decode(errors="replace")[-600:]}
        parts, threads, total = classify(folded.read_text())
        cpu_s = s1["cpu"] - s0["cpu"]
        sent = max(pub["sent"], 1)
        us_per = cpu_s / sent * 1e6
        return {
            "streams": STREAMS,
            "rate": RATE,
            "seconds": seconds,
            "notifications": pub["sent"],
            "server_cpu_pct": round(cpu_s / max(s1["t"] - s0["t"], 1e-9) * 100, 1),
            "server_cpu_us_per_notification": round(us_per, 1),
            "samples": total,
            "parts": {
                name: {
                    "share": round(n / max(total, 1), 4),
                    "us_per_notification": round(n / max(total, 1) * us_per, 1),
                }
                for name, n in parts.most_common()
            },
            "threads": {name: round(n / max(total, 1), 4) for name, n in threads.most_common()},
            # What each thread ran, per notification (from /proc, not from the samples).
            "thread_cpu_us_per_notification": {
                name: round((t1[name] - t0.get(name, 0.0)) / sent * 1e6, 1)
                for name in sorted(t1, key=lambda k: t0.get(k, 0.0) - t1[k])
                if t1[name] - t0.get(name, 0.0) > 0
            },
            "folded": folded.name,
        }
    finally:
        if gen is not None:
            gen.close()
        server.stop()


def scenario_profile(target: Target, cfg: Any, work: Path) -> dict[str, Any]:
    if target.name not in ("tidings", "floor"):
        return {"skipped": "not a Python server: py-spy profiles only tidings and the floor"}
    return profile_target(target, work, 5.0 if cfg.quick else 15.0)
