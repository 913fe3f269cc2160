"""The benchmark coordinator: `bench/run [--quick] [SCENARIO…] [--targets a,b]`.

For every scenario it starts each server in turn on a free port on 127.0.0.1, drives it with the
same load-generator processes (bench/loadgen.py), samples the server's CPU and memory from /proc,
always stops what it started, and writes bench/results/<scenario>-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any

from bench import common
from bench.targets import PER_PROCESS, PYTHON, Server, Target, all_targets
from tidings.settings import Settings

SCENARIOS = (
    "idle",
    "latency",
    "broadcast",
    "storm",
    "profile",
    "stores",
    "buses",
    "cluster",
    "soak",
)
# Run only when named: the cluster starts its own Redis, Redis Cluster and NATS servers and
# several nodes per case, and takes longer than all the others together (docs/benchmarks.md,
# "Cluster"); the soak lasts 30 minutes (bench/soak.py).
NAMED_ONLY = ("cluster", "soak")
DEFAULT_SCENARIOS = tuple(s for s in SCENARIOS if s not in NAMED_ONLY)


@dataclass(frozen=True)
class Level:
    """Open `streams` streams, then publish at each rate in turn; a rate past the first one that
    failed (p99 ≥ 100 ms or anything lost) is skipped unless it is in `required`."""

    streams: int
    rates: tuple[int, ...]
    required: tuple[int, ...]


@dataclass(frozen=True)
class Config:
    quick: bool
    idle_levels: tuple[int, ...]
    idle_window: float
    # The loop-stall probe: at the largest one-process idle level, GET the ready path every
    # `stall_interval` s for `stall_window` s (longer than one heartbeat interval, 15 s).
    stall_window: float
    latency: tuple[Level, ...]
    rate_seconds: float
    broadcast_users: int
    broadcast_repeat: int
    storm_streams: int
    storm_per_user: int
    storm_limit: float
    buses: tuple[Level, ...]
    # Each latency level, and the storm, run this many times on a fresh server; the report shows
    # the median with the spread (min–max), so one good or bad run cannot pass for the figure.
    repeat: int = 3
    # Which targets run the idle levels above one process's worth (only what issue 14 asks for:
    # tidings with --workers); the others stop at one process.
    multi_process_targets: tuple[str, ...] = ("tidings",)
    # Which targets run the second latency level (polling cannot hold its rates anyway).
    skip_second_level: tuple[str, ...] = ("polling",)


FULL = Config(
    quick=False,
    idle_levels=(10_000, 19_000, 50_000),
    idle_window=10.0,
    stall_window=16.0,
    latency=(
        Level(1_000, (100, 1_000, 2_000, 4_000, 6_000, 8_000), (100, 1_000)),
        Level(10_000, (100, 1_000), (100, 1_000)),
    ),
    rate_seconds=8.0,
    broadcast_users=10_000,
    broadcast_repeat=3,
    storm_streams=10_000,
    storm_per_user=10,
    storm_limit=60.0,
    buses=(Level(1_000, (100, 1_000, 2_000, 4_000), (100, 1_000)),),
)
QUICK = Config(
    quick=True,
    idle_levels=(1_000, 2_000),
    idle_window=4.0,
    stall_window=4.0,
    latency=(Level(1_000, (100, 1_000), (100, 1_000)),),
    rate_seconds=3.0,
    broadcast_users=1_000,
    broadcast_repeat=2,
    storm_streams=1_000,
    storm_per_user=10,
    storm_limit=30.0,
    buses=(Level(200, (100, 1_000), (100,)),),
    repeat=1,
)


# --- the generator processes ---------------------------------------------------------------------


# One publisher process sends ~2,000 publishes/s at most (a core's worth of Python); above that a
# single process measures itself, so a rate is split over this many processes' worth each.
PUBLISHES_PER_PROCESS = 1_000
MAX_PUBLISHERS = 4


def publisher_procs(rate: float) -> int:
    return max(1, min(MAX_PUBLISHERS, math.ceil(rate / PUBLISHES_PER_PROCESS)))


class Generator:
    """Several bench/loadgen.py processes reading streams, and one or more publishing."""

    def __init__(self, port: int, readers: int) -> None:
        self.port = port
        # Reader process i connects from 127.0.0.(2 + i): each source address has its own
        # ephemeral ports (~28,000 to one server port), so 50,000 streams fit.
        self.procs = [self._spawn(f"127.0.0.{2 + i}") for i in range(readers)]
        self.publishers = [self._spawn()]

    def _spawn(self, source: str | None = None) -> subprocess.Popen[bytes]:
        argv = [PYTHON, "-m", "bench.loadgen", common.HOST, str(self.port)]
        if source is not None and common.HOST == "127.0.0.1":
            argv.append(source)
        return common.spawn(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=common.ROOT,
            log_path=common.WORK / "logs" / "loadgen.log",
        )

    @staticmethod
    def _call(procs: list[Any], cmds: list[dict[str, Any]], timeout: float) -> list[Any]:
        for proc, cmd in zip(procs, cmds, strict=True):
            proc.stdin.write((json.dumps(cmd) + "\n").encode())
            proc.stdin.flush()
        out = []
        deadline = time.time() + timeout
        for proc in procs:
            line = b""
            while not line.endswith(b"\n"):
                left = deadline - time.time()
                ready, _, _ = select.select([proc.stdout], [], [], max(0.0, left))
                if not ready:
                    raise TimeoutError(f"load generator gave no answer within {timeout} s")
                chunk = proc.stdout.readline()
                if not chunk:
                    raise RuntimeError("a load generator exited (see bench/.work/logs)")
                line += chunk
            out.append(json.loads(line))
        return out

    def open(
        self, conns: list[dict[str, Any]], reconnect: bool = False, concurrency: int = 256
    ) -> dict[str, Any]:
        n = len(self.procs)
        per = max(1, concurrency // n)
        cmds = [
            {"cmd": "open", "conns": conns[i::n], "concurrency": per, "reconnect": reconnect}
            for i in range(n)
        ]
        started = time.time()
        replies = self._call(self.procs, cmds, timeout=150 + len(conns) / 200)
        elapsed = time.time() - started
        opened = sum(r["opened"] for r in replies)
        return {"opened": opened, "failed": sum(r["failed"] for r in replies), "elapsed": elapsed}

    def mark(self, target: int = 0) -> None:
        self._call(self.procs, [{"cmd": "mark", "target": target}] * len(self.procs), 30)

    def reconnect(self, on: bool) -> None:
        self._call(self.procs, [{"cmd": "reconnect", "on": on}] * len(self.procs), 30)

    def stats(self, full: bool = False) -> dict[str, Any]:
        replies = self._call(self.procs, [{"cmd": "stats", "full": full}] * len(self.procs), 120)
        merged: dict[str, Any] = {
            key: sum(r[key] for r in replies)
            for key in ("open", "readers", "reconnects", "done", "events", "dups")
        }
        merged["last_done"] = max(r["last_done"] for r in replies)
        merged["cpu_share_max"] = max(r["cpu"] / max(r["wall"], 1e-9) for r in replies)
        merged["cpu_total"] = sum(r["cpu"] for r in replies)
        merged["cpu_system"] = sum(r.get("cpu_system", 0.0) for r in replies)
        statuses: dict[str, int] = {}
        for r in replies:
            for code, count in r.get("statuses", {}).items():
                statuses[code] = statuses.get(code, 0) + count
        merged["statuses"] = statuses
        if full:
            lat: list[float] = []
            keys: dict[int, int] = {}
            kmax: dict[int, float] = {}
            done_at: list[float] = []
            opened_at: list[float] = []
            returned_at: list[float] = []
            served_in: list[float] = []
            connect_in: list[float] = []
            for r in replies:
                lat += r["lat"]
                done_at += r.get("done_at", [])
                opened_at += r.get("opened_at", [])
                returned_at += r.get("returned_at", [])
                served_in += r.get("served_in", [])
                connect_in += r.get("connect_in", [])
                for k, v in r["keys"].items():
                    keys[int(k)] = keys.get(int(k), 0) + v
                for k, v in r["kmax"].items():
                    kmax[int(k)] = max(kmax.get(int(k), 0.0), v)
            merged.update(
                lat=lat,
                keys=keys,
                kmax=kmax,
                done_at=sorted(done_at),
                opened_at=sorted(opened_at),
                returned_at=sorted(returned_at),
                served_in=sorted(served_in),
                connect_in=sorted(connect_in),
            )
        return merged

    def publish(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """One open-loop schedule, split round-robin over `publisher_procs(rate)` processes that
        start at the same instant; the replies merged (CPU: the busiest process's share, and the
        total over all of them)."""
        n = publisher_procs(cmd["rate"])
        while len(self.publishers) < n:
            self.publishers.append(self._spawn())
        procs = self.publishers[:n]
        start_at = time.time() + 0.3
        cmds = [
            {"cmd": "publish", **cmd, "start_at": start_at, "offset": j, "stride": n}
            for j in range(n)
        ]
        replies = self._call(procs, cmds, cmd["duration"] + 180)
        ok: dict[str, str] = {}
        for r in replies:
            ok.update(r["ok"])
        wall = max(r["wall"] for r in replies)
        return {
            "sent": sum(r["sent"] for r in replies),
            "errors": sum(r["errors"] for r in replies),
            "ok": ok,
            "behind_max": max(r["behind_max"] for r in replies),
            "processes": n,
            "cpu_share_max": max(r["cpu"] / max(r["wall"], 1e-9) for r in replies),
            "cpu_total": sum(r["cpu"] for r in replies),
            "wall": wall,
        }

    def close(self) -> None:
        for proc in [*self.procs, *self.publishers]:
            with contextlib.suppress(OSError, TimeoutError, RuntimeError, ValueError):
                self._call([proc], [{"cmd": "close"}], 10)
            common.stop(proc, timeout=5)


def users(n: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def reader_procs(streams: int) -> int:
    # Each process below the open-file limit, and at least two so reading is not one core's job.
    return max(2, math.ceil(streams / 15_000))


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 2)


# --- scenarios ---------------------------------------------------------------------------------


def scenario_idle(target: Target, cfg: Config, work: Path) -> dict[str, Any]:
    levels = []
    one_process = [n for n in cfg.idle_levels if n <= PER_PROCESS]
    stall_level = max(one_process) if one_process else None
    for n in cfg.idle_levels:
        workers = 1 if n <= PER_PROCESS else math.ceil(n / 15_000)
        if workers > 1 and target.name not in cfg.multi_process_targets:
            continue
        if workers > 1 and target.multi_process_reason:
            levels.append({"streams": n, "skipped": target.multi_process_reason})
            continue
        if target.name in cfg.skip_second_level and n != cfg.idle_levels[0]:
            continue
        common.log(f"idle: {target.name}, {n} streams")
        server = target.start(work, workers)
        gen = None
        try:
            time.sleep(1.0)
            base = server.sample()
            gen = Generator(server.port, reader_procs(n))
            opened = gen.open([target.stream(u) for u in users(n)])
            time.sleep(2.0 if cfg.quick else 5.0)
            s0, q0 = server.sample(), server.queries()
            gen.mark()
            time.sleep(cfg.idle_window)
            s1, q1 = server.sample(), server.queries()
            g = gen.stats()
            wall = s1["t"] - s0["t"]
            stalls = None
            if n == stall_level and target.name not in cfg.skip_second_level:
                common.log(f"  loop stalls: {target.ready_path} every 10 ms, {cfg.stall_window} s")
                stalls = probe_stalls(server, target.ready_path, cfg.stall_window)
                common.log(f"  -> {stalls}")
            levels.append(
                {
                    "streams": n,
                    "workers": workers,
                    "stalls": stalls,
                    "opened": opened["opened"],
                    "failed": opened["failed"],
                    "still_open": g["open"],
                    "open_seconds": round(opened["elapsed"], 3),
                    "open_rate": round(opened["opened"] / max(opened["elapsed"], 1e-9)),
                    "rss_base_mb": round(base["rss"] / 2**20, 1),
                    "rss_mb": round(s1["rss"] / 2**20, 1),
                    "rss_per_stream_kb": round(
                        (s1["rss"] - base["rss"]) / max(opened["opened"], 1) / 1024, 2
                    ),
                    "idle_cpu_pct": round((s1["cpu"] - s0["cpu"]) / wall * 100, 2),
                    # With workers, each /metrics answer is one worker's own counters.
                    "queries_per_s": None
                    if q0 is None or q1 is None or workers > 1
                    else round((q1 - q0) / wall, 2),
                    "generator_cpu_share_max": round(g["cpu_share_max"], 3),
                    "window_s": round(wall, 1),
                }
            )
            common.log(f"  -> {levels[-1]}")
        finally:
            if gen is not None:
                gen.close()
            server.stop()
    return {"levels": levels}


def probe_stalls(server: Server, path: str, seconds: float, every: float = 0.01) -> dict[str, Any]:
    """GET `path` every `every` s over one keep-alive connection for `seconds` s; a probe's time is
    how long the server's loop kept it waiting. Server-side collector pauses (tidings with
    TIDINGS_DEBUG_STALLS=1) are read from its log for the same window."""
    conn = HTTPConnection(common.HOST, server.port, timeout=10)
    times: list[float] = []
    errors = 0
    log_path = server.workdir / f"{server.target.name}.log"
    log_from = log_path.stat().st_size if log_path.exists() else 0
    start = time.perf_counter()
    nxt = start
    while nxt - start < seconds:
        delay = nxt - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = time.perf_counter()
        try:
            conn.request("GET", path)
            conn.getresponse().read()
            times.append(time.perf_counter() - t)
        except (OSError, HTTPException):
            errors += 1
            conn.close()
            conn = HTTPConnection(common.HOST, server.port, timeout=10)
        # A late probe is sent at once, not skipped: a stall shows as one long probe.
        nxt = max(nxt + every, time.perf_counter())
    conn.close()
    gc_ms = gc_pauses(log_path, log_from)
    return {
        "window_s": seconds,
        "probes": len(times),
        "errors": errors,
        "p50_ms": ms(pct(times, 0.5)),
        "p99_ms": ms(pct(times, 0.99)),
        "max_ms": ms(max(times) if times else None),
        "over_20ms": sum(1 for x in times if x > 0.02),
        "gc_pauses": len(gc_ms) if gc_ms is not None else None,
        "gc_max_ms": max(gc_ms, default=0.0) if gc_ms is not None else None,
    }


GC_LINE = re.compile(r"gc pause gen=(\d) ([0-9.]+) ms")


def gc_pauses(log_path: Path, offset: int) -> list[float] | None:
    """Collector pauses the server logged after `offset` (None when it logs none at all)."""
    if not log_path.exists():
        return None
    with open(log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    found = [float(m.group(2)) for m in GC_LINE.finditer(text)]
    return found if found or "stall debugging on" in log_path.read_text(errors="replace") else None


def wait_delivered(gen: Generator, expected: int, quiet: float, limit: float) -> None:
    """Until `expected` distinct deliveries arrived, or nothing new for `quiet` s, or `limit` s."""
    start = last_change = time.time()
    last = -1
    while time.time() - start < limit:
        s = gen.stats()
        seen = s["events"] - s["dups"]
        if seen >= expected:
            return
        if seen != last:
            last, last_change = seen, time.time()
        elif time.time() - last_change > quiet:
            return
        time.sleep(0.3)


def scenario_latency(target: Target, cfg: Config, work: Path) -> dict[str, Any]:
    levels = cfg.latency
    if target.name in cfg.skip_second_level:
        levels = levels[:1]
    return latency_levels(target, cfg, work, levels)


def latency_levels(
    target: Target,
    cfg: Config,
    work: Path,
    levels: tuple[Level, ...],
    workers: int = 1,
    prefix: str = "u",
) -> dict[str, Any]:
    runs = []
    k_next = 1
    for level, attempt in [(lv, i) for lv in levels for i in range(cfg.repeat)]:
        n = level.streams
        common.log(
            f"latency: {target.name}, {n} streams, {workers} worker(s), "
            f"run {attempt + 1} of {cfg.repeat}"
        )
        server = target.start(work, workers)
        gen = None
        try:
            gen = Generator(server.port, reader_procs(n))
            names = users(n, prefix)
            opened = gen.open([target.stream(u) for u in names])
            if opened["failed"]:
                common.log(f"  {opened['failed']} streams failed to open")
            time.sleep(1.0 if cfg.quick else 3.0)
            passing = True
            for rate in level.rates:
                if rate not in level.required and not passing:
                    continue
                gen.mark()
                s0 = server.sample()
                count = int(rate * cfg.rate_seconds)
                pub = gen.publish(
                    {
                        "rate": rate,
                        "duration": cfg.rate_seconds,
                        "users": names,
                        "template": target.publish_template(),
                        "k0": k_next,
                        "connections": 64,
                    }
                )
                k_next += count
                wait_delivered(gen, pub["sent"], quiet=4.0, limit=30.0)
                s1 = server.sample()
                st = gen.stats(full=True)
                ok = {int(k) for k in pub["ok"]}
                lost = sum(1 for k in ok if st["keys"].get(k, 0) == 0)
                lat = st["lat"]
                p99 = pct(lat, 0.99)
                row = {
                    "streams": n,
                    "rate": rate,
                    "attempt": attempt,
                    "published": count,
                    "publish_ok": pub["sent"],
                    "publish_errors": pub["errors"],
                    "delivered": len(lat),
                    "lost": lost,
                    "duplicates": st["dups"],
                    "p50_ms": ms(pct(lat, 0.5)),
                    "p99_ms": ms(p99),
                    "max_ms": ms(max(lat) if lat else None),
                    "server_cpu_pct": round(
                        (s1["cpu"] - s0["cpu"]) / max(s1["t"] - s0["t"], 1e-9) * 100, 1
                    ),
                    # The A/B figure on a shared machine: CPU the server spent per notification
                    # (heartbeats of the open streams included), from /proc, not wall time.
                    "server_cpu_us_per_notification": round(
                        (s1["cpu"] - s0["cpu"]) / max(pub["sent"], 1) * 1e6, 1
                    ),
                    "publisher_behind_max_ms": ms(pub["behind_max"]),
                    "publisher_processes": pub["processes"],
                    "publisher_cpu_share": round(pub["cpu_share_max"], 3),
                    # The whole generator's CPU (publishers and readers) as % of one core, next
                    # to the server's: on 2 shared cores, what the server could not have.
                    "generator_cpu_pct": round(
                        (pub["cpu_total"] + st["cpu_total"]) / max(s1["t"] - s0["t"], 1e-9) * 100,
                        1,
                    ),
                    "reader_cpu_share_max": round(st["cpu_share_max"], 3),
                    # The readers' CPU for the round (all processes; they share the two cores
                    # with the server, so their work is part of when the last one is read).
                    "reader_cpu_s": round(st["cpu_total"], 3),
                }
                # A generator process at a core's worth, or a schedule it could not keep (its
                # loop > 100 ms late to hand a publish out), means the row measured the generator.
                row["generator_limited"] = (
                    row["publisher_cpu_share"] > 0.85
                    or row["reader_cpu_share_max"] > 0.85
                    or pub["behind_max"] > 0.1
                )
                row["ok"] = p99 is not None and p99 < 0.1 and lost == 0 and pub["errors"] == 0
                passing = passing and row["ok"]
                runs.append(row)
                common.log(f"  -> {row}")
        finally:
            if gen is not None:
                gen.close()
            server.stop()
    summary = summarize(runs)
    best: dict[int, int | None] = {}
    for level in levels:
        n = level.streams
        good = [r["rate"] for r in summary if r["streams"] == n and r["ok"]]
        best[n] = max(good) if good else None
    return {
        "runs": runs,
        "summary": summary,
        "highest_rate_p99_under_100ms": {str(k): v for k, v in best.items()},
    }


# The figures of a latency row that are summarized as median and spread over the repeats.
SPREAD = ("server_cpu_us_per_notification", "p50_ms", "p99_ms", "max_ms", "server_cpu_pct")


def spread(values: list[float | None]) -> dict[str, float | None]:
    """Median, lowest and highest of the runs' values (None where a run had none)."""
    got = sorted(v for v in values if v is not None)
    if not got:
        return {"median": None, "min": None, "max": None, "n": 0}
    mid = len(got) // 2
    median = got[mid] if len(got) % 2 else (got[mid - 1] + got[mid]) / 2
    return {"median": round(median, 2), "min": got[0], "max": got[-1], "n": len(got)}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (streams, rate) over the repeated runs: each figure in SPREAD as median and
    spread; losses, duplicates and errors summed over the runs. A rate passes when its median p99
    is under 100 ms and no run lost anything or had a publish error."""
    keys = sorted({(r["streams"], r["rate"]) for r in runs})
    out = []
    for streams, rate in keys:
        rows = [r for r in runs if (r["streams"], r["rate"]) == (streams, rate)]
        row: dict[str, Any] = {"streams": streams, "rate": rate, "runs": len(rows)}
        for key in SPREAD:
            row[key] = spread([r[key] for r in rows])
        row["lost"] = sum(r["lost"] for r in rows)
        row["duplicates"] = sum(r["duplicates"] for r in rows)
        row["publish_errors"] = sum(r["publish_errors"] for r in rows)
        row["generator_limited"] = any(r["generator_limited"] for r in rows)
        row["generator_cpu_pct"] = spread([r["generator_cpu_pct"] for r in rows])["median"]
        row["publisher_processes"] = rows[0]["publisher_processes"]
        p99 = row["p99_ms"]["median"]
        row["ok"] = (
            p99 is not None and p99 < 100 and row["lost"] == 0 and row["publish_errors"] == 0
        )
        out.append(row)
    return out


def scenario_broadcast(target: Target, cfg: Config, work: Path) -> dict[str, Any]:
    n = cfg.broadcast_users
    common.log(f"broadcast: {target.name}, {n} users")
    server = target.start(work)
    gen = None
    rounds = []
    try:
        gen = Generator(server.port, reader_procs(n))
        names = users(n)
        opened = gen.open([target.stream(u) for u in names])
        time.sleep(1.0 if cfg.quick else 3.0)
        spy = broadcast_profile(server, work)
        # Polling takes ~40 s a round (every stream's next scan): one round tells as much.
        repeat = 1 if target.name in cfg.skip_second_level else cfg.broadcast_repeat
        for i in range(repeat):
            gen.mark()
            k = 10_000_000 + i
            s0 = server.sample()
            status, t = target.broadcast(server, names, k)
            call_s = time.time() - t
            wait_delivered(gen, opened["opened"], quiet=5.0, limit=60.0)
            s1 = server.sample()
            st = gen.stats(full=True)
            got = st["keys"].get(k, 0)
            rounds.append(
                {
                    "users": n,
                    "streams_open": opened["opened"],
                    "status": status,
                    "publish_call_ms": ms(call_s),
                    "received": got,
                    "lost": opened["opened"] - got,
                    "duplicates": st["dups"],
                    "last_ms": ms(st["kmax"].get(k)),
                    # The first receipt: the request, the store's commit and the first write;
                    # from there to `last_ms` is the fan-out.
                    "first_ms": ms(min(st["lat"], default=None)),
                    "p50_ms": ms(pct(st["lat"], 0.5)),
                    "server_cpu_s": round(s1["cpu"] - s0["cpu"], 3),
                    "reader_cpu_share_max": round(st["cpu_share_max"], 3),
                    # The readers' CPU for the round (all processes; they share the two cores
                    # with the server, so their work is part of when the last one is read).
                    "reader_cpu_s": round(st["cpu_total"], 3),
                }
            )
            common.log(f"  -> {rounds[-1]}")
            time.sleep(1.0)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
    finally:
        if gen is not None:
            gen.close()
        server.stop()
    last = spread([r["last_ms"] for r in rounds])
    return {
        "rounds": rounds,
        "last_ms_median": last["median"],
        "last_ms": last,
        "publish_call_ms": spread([r["publish_call_ms"] for r in rounds]),
        "server_cpu_s": spread([r["server_cpu_s"] for r in rounds]),
    }


def scenario_storm(target: Target, cfg: Config, work: Path) -> dict[str, Any]:
    """The storm `cfg.repeat` times; the top-level figures are the median run's (by the time
    until every stream had its notifications, a run that never got there counting as slowest),
    with every run under `runs` and the spread under `all_received`."""
    first = storm_once(target, cfg, work)
    if "streams" not in first or cfg.repeat <= 1:
        return first
    runs = [first] + [storm_once(target, cfg, work) for _ in range(cfg.repeat - 1)]
    ranked = sorted(
        runs,
        key=lambda r: math.inf if r["all_received_s"] is None else r["all_received_s"],
    )
    median = dict(ranked[len(ranked) // 2])
    median["lost"] = sum(r["lost"] for r in runs)
    median["duplicates"] = sum(r["duplicates"] for r in runs)
    median["runs"] = runs
    median["all_received"] = spread([r["all_received_s"] for r in runs])
    median["all_received"]["incomplete"] = sum(1 for r in runs if r["all_received_s"] is None)
    median["after_ready"] = spread([r.get("after_ready_s") for r in runs])
    return median


def storm_once(target: Target, cfg: Config, work: Path) -> dict[str, Any]:
    if target.durable_reason:
        return {"skipped": target.durable_reason}
    if target.name in cfg.skip_second_level and not cfg.quick:
        # ~3 minutes of a full run to show again that its streams never catch up (188 of 10,000
        # after 180 s in bench/results/storm-20261127T234248.json).
        return {"skipped": "left out of the full run to keep it under 22 minutes; see --quick"}
    n, per = cfg.storm_streams, cfg.storm_per_user
    common.log(f"storm: {target.name}, {n} streams, {per} each while down")
    somaxconn_was = None
    server: Server | None = None
    gen = None
    try:
        # Inside the try: whatever fails after it, `finally` puts somaxconn back.
        somaxconn_was = set_somaxconn()
        port = common.free_port()
        server = target.start(work, port=port)
        assert server is not None
        gen = Generator(port, reader_procs(n))
        names = users(n)
        opened = gen.open([target.stream(u) for u in names], reconnect=True)
        # Every stream first receives one notification, so it holds a Last-Event-ID as a browser
        # that loaded its list would.
        gen.mark(1)
        target.broadcast(server, names, 20_000_000)
        wait_delivered(gen, opened["opened"], quiet=5.0, limit=60.0)
        warm = gen.stats()["done"]
        t_stop = time.time()
        server.stop()
        stop_s = time.time() - t_stop
        server = None
        t_pub = time.time()
        stored = publish_offline(target, work, names, per, port)
        pub_s = time.time() - t_pub
        gen.mark(per)
        before = gen.stats()
        tcp0 = common.tcp_ext()
        t0 = time.time()
        server = target.start(work, fresh=False, port=port)
        cpu0 = server.sample()["cpu"]
        spy = storm_profile(server, work)
        deadline = t0 + cfg.storm_limit
        # Each half second after ready: the server's CPU in it, and the streams done by then
        # (a server idle while streams wait shows as a gap).
        timeline: list[tuple[float, float, int]] = []
        cpu_prev, next_at = cpu0, t0 + server.startup_s + 0.5
        while time.time() < deadline:
            st = gen.stats()
            if time.time() >= next_at:
                cpu_now = server.sample()["cpu"]
                at = round(time.time() - t0 - server.startup_s, 2)
                timeline.append((at, round(cpu_now - cpu_prev, 2), st["done"]))
                cpu_prev, next_at = cpu_now, next_at + 0.5
            if st["done"] >= opened["opened"]:
                break
            time.sleep(0.25)
        cpu1 = server.sample()["cpu"]
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        st = gen.stats(full=True)
        tcp1 = common.tcp_ext()
        received = sum(v for k, v in st["keys"].items() if 30_000_000 <= k < 30_000_000 + per)
        ready_at = t0 + server.startup_s
        after_ready = [max(0.0, t - ready_at) for t in st["done_at"]]
        opened_after = [max(0.0, t - ready_at) for t in st["opened_at"]]
        returned_after = [max(0.0, t - ready_at) for t in st["returned_at"]]
        result = {
            "streams": n,
            "opened": opened["opened"],
            "warm": warm,
            "per_user": per,
            "stored_while_down": stored,
            "stop_s": round(stop_s, 2),
            "publish_while_down_s": round(pub_s, 2),
            "server_ready_s": round(server.startup_s, 2),
            "resumed": st["done"],
            "all_received_s": round(st["last_done"] - t0, 2)
            if st["done"] >= opened["opened"]
            else None,
            # The server's own share: from ready (answering /healthz) to the last stream done.
            # Clients come back on the `retry:` the draining server gave them (jittered up to
            # TIDINGS_DRAIN_RETRY_MAX_MS, 5 s by default), so this is at least that spread.
            "after_ready_s": round(st["last_done"] - t0 - server.startup_s, 2)
            if st["done"] >= opened["opened"]
            else None,
            "drain_retry_max_ms": drain_retry_max_ms(),
            "expected": opened["opened"] * per,
            "received": received,
            "lost": opened["opened"] * per - received,
            "duplicates": st["dups"],
            "reconnect_attempts": st["reconnects"],
            # Of those, the ones made after the server was started again, and what answered
            # them ("200": a stream; anything else was refused; a refused connection has none).
            "attempts_after_start": st["reconnects"] - before["reconnects"],
            "statuses_after_start": {
                code: count - before["statuses"].get(code, 0)
                for code, count in st["statuses"].items()
                if count - before["statuses"].get(code, 0)
            },
            # Streams done (all their notifications in) this many seconds after ready.
            "done_after_ready_s": _spread(after_ready, pct),
            # Streams answered (response head) this many seconds after ready: the gap to the
            # line above is the server's catch-up, this one's own spread is the clients' return.
            "opened_after_ready_s": _spread(opened_after, pct),
            # What the "within 2 s of ready" leaves out: a client comes back on its own
            # `retry:` (the draining server's, up to TIDINGS_DRAIN_RETRY_MAX_MS, again after each
            # refused attempt), so `done_after_ready_s` is at least when it came back. These two
            # split it: when each client began the attempt that got its notifications
            # (`returned_after_ready_s`), and how long the server took from there to the last
            # of them (`served_in_s`: accept queue, head, token, catch-up, the writes).
            "returned_after_ready_s": _spread(returned_after, pct),
            "served_in_s": _spread(st["served_in"], pct)
            | {"max": round(max(st["served_in"], default=0.0), 2)},
            # Of `served_in_s`, the client's side of the handshake: a SYN dropped because the
            # listen queue was full is sent again after TCP's backoff (1 s, then 3, 7, 15 s).
            "connect_in_s": _spread(st["connect_in"], pct)
            | {"max": round(max(st["connect_in"], default=0.0), 2)},
            # Handshakes the kernel dropped meanwhile (machine-wide, read under the bench lock).
            "listen_overflows": tcp1.get("ListenOverflows", 0) - tcp0.get("ListenOverflows", 0),
            "listen_drops": tcp1.get("ListenDrops", 0) - tcp0.get("ListenDrops", 0),
            # The queue they overflowed: the server's backlog, as the kernel caps it
            # (`BENCH_TIDINGS_ENV=TIDINGS_BACKLOG=…`; somaxconn only with BENCH_SOMAXCONN).
            "listen_backlog": listen_backlog()
            | ({"somaxconn_set_by_bench_from": somaxconn_was} if somaxconn_was else {}),
            # The readers' own CPU from the restart to the end (two cores, shared with the
            # server): a generator short of CPU reads its answers late.
            "generator_cpu_s": round(st["cpu_total"] - before["cpu_total"], 2),
            "generator_system_cpu_s": round(st["cpu_system"] - before["cpu_system"], 2),
            "timeline": timeline,
            # The server's CPU from its start to the last stream done (or the limit).
            "server_cpu_s": round(cpu1 - cpu0, 2),
            "open_at_end": st["open"],
        }
        common.log(f"  -> {result}")
        return result
    finally:
        if gen is not None:
            gen.close()
        if server is not None:
            server.stop()
        if somaxconn_was:
            SOMAXCONN.write_text(f"{somaxconn_was}\n")
            common.log(f"  net.core.somaxconn put back to {somaxconn_was}")


SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


def set_somaxconn() -> int | None:
    """With BENCH_SOMAXCONN=N, raise the kernel's cap on listen queues to N for this storm (said
    in the log, recorded in the result, put back afterwards); return the value it had. Off by
    default: the bench does not change the machine unless asked."""
    wanted = os.environ.get("BENCH_SOMAXCONN")
    if not wanted:
        return None
    was = int(SOMAXCONN.read_text().strip())
    SOMAXCONN.write_text(f"{int(wanted)}\n")
    common.log(f"  net.core.somaxconn {was} -> {int(wanted)} for this storm (BENCH_SOMAXCONN)")
    return was


def _spread(values: list[float], pct: Any) -> dict[str, float]:
    """p10, p50, p90 and p99 of `values` (those there are), rounded to 10 ms."""
    found = {
        q: pct(values, f) for q, f in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
    }
    return {q: round(v, 2) for q, v in found.items() if v is not None}


def broadcast_profile(server: Server, work: Path) -> subprocess.Popen[bytes] | None:
    """With BENCH_BROADCAST_PROFILE=1, py-spy samples a tidings server through the broadcast
    rounds (folded stacks in bench/.work/run/profile-broadcast.txt)."""
    if os.environ.get("BENCH_BROADCAST_PROFILE") != "1" or server.target.name != "tidings":
        return None
    return _spy(server, work / "profile-broadcast.txt")


def storm_profile(server: Server, work: Path) -> subprocess.Popen[bytes] | None:
    """With BENCH_STORM_PROFILE=1, py-spy samples the restarted server until the storm is over
    (folded stacks in bench/.work/run/profile-storm.txt; bench/profile.py's `classify` reads
    them)."""
    if os.environ.get("BENCH_STORM_PROFILE") != "1":
        return None
    return _spy(server, work / "profile-storm.txt")


def _spy(server: Server, output: Path) -> subprocess.Popen[bytes]:
    from bench.profile import SAMPLE_HZ

    spy = str(Path(sys.executable).parent / "py-spy")
    argv = [spy, "record", "--pid", str(server.proc.pid), "--rate", str(SAMPLE_HZ)]
    argv += ["--format", "raw", "--threads", "--nonblocking", "--output", str(output)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the first sample that matters
    return proc


def listen_backlog() -> dict[str, int]:
    """TIDINGS_BACKLOG of the storm's tidings server (BENCH_TIDINGS_ENV may set it), the
    kernel's `net.core.somaxconn`, and the queue the server gets: the smaller of the two."""
    backlog = Settings().backlog
    for pair in os.environ.get("BENCH_TIDINGS_ENV", "").split(","):
        name, _, value = pair.partition("=")
        if name.strip() == "TIDINGS_BACKLOG":
            backlog = int(value)
    somaxconn = common.machine()["somaxconn"] or backlog
    return {"backlog": backlog, "somaxconn": somaxconn, "queue": min(backlog, somaxconn)}


def drain_retry_max_ms() -> int:
    """The drain spread the storm's tidings server runs with (BENCH_TIDINGS_ENV may set it)."""
    for pair in os.environ.get("BENCH_TIDINGS_ENV", "").split(","):
        name, _, value = pair.partition("=")
        if name.strip() == "TIDINGS_DRAIN_RETRY_MAX_MS":
            return int(value)
    return Settings().drain_retry_max_ms


def publish_offline(target: Target, work: Path, names: list[str], per: int, port: int) -> int:
    stub = Server(target, subprocess.Popen(["true"]), port, work, 1)
    stub.proc.wait()
    return target.publish_offline(stub, names, per, 30_000_000)


def scenario_stores(cfg: Config) -> dict[str, Any]:
    script = common.BENCH / "stores.py"
    if not script.exists():
        return {"skipped": "bench/stores.py is not there yet (another engineer writes it)"}
    # Its short counts in every run: issue 14 needs none of these figures, and the long ones
    # (`python -m bench.stores`) take ~11 minutes on their own.
    argv = [PYTHON, "-m", "bench.stores", "--quick"]
    try:
        out = subprocess.run(
            argv,
            cwd=common.ROOT,
            capture_output=True,
            text=True,
            timeout=400,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": "bench/stores.py timed out"}
    return {
        "returncode": out.returncode,
        "output": out.stdout[-4000:],
        "stderr": out.stderr[-2000:],
    }


def scenario_profile(target: Target, cfg: Config, work: Path) -> dict[str, Any]:
    from bench.profile import scenario_profile as run

    return run(target, cfg, work)


RUNNERS = {
    "idle": scenario_idle,
    "latency": scenario_latency,
    "broadcast": scenario_broadcast,
    "storm": scenario_storm,
    "profile": scenario_profile,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small loads, under 5 minutes")
    parser.add_argument(
        "--targets",
        default="",
        help="comma-separated subset of: " + ", ".join(t.name for t in all_targets()),
    )
    parser.add_argument(
        "--no-report", action="store_true", help="skip rendering docs/benchmarks.md"
    )
    parser.add_argument(
        "--no-install", action="store_true", help="do not build missing Go peers first"
    )
    parser.add_argument(
        "--idle-levels",
        default="",
        help="comma-separated stream counts for the idle scenario (an A/B of one level)",
    )
    parser.add_argument(
        "--latency-level",
        default="",
        help="the latency scenario at one level only, STREAMS:RATE[,RATE…] (an A/B, e.g. "
        "10000:1000); every rate runs",
    )
    parser.add_argument(
        "--storm-streams",
        type=int,
        default=0,
        help="streams in the storm scenario (an A/B at a smaller size; default 10,000, "
        "with --quick 1,000)",
    )
    parser.add_argument(
        "--nodes", default="", help="cluster: comma-separated node counts (default 1,2,4)"
    )
    parser.add_argument(
        "--engines",
        default="",
        help="cluster: comma-separated subset of local, redis, redis-hashed, redis-cluster, "
        "nats, centrifugo (default all)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        help="runs of each latency level, of the storm and of each cluster case (default: 3, "
        "with --quick 1); figures are reported as median and spread",
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    chosen = args.scenarios or list(DEFAULT_SCENARIOS)
    for s in chosen:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    cfg = QUICK if args.quick else FULL
    from bench.cluster import ENGINES

    engines = tuple(filter(None, args.engines.split(",")))
    for e in engines:
        if e not in ENGINES:
            parser.error(f"unknown engine {e!r}; choose from {', '.join(ENGINES)}")
    try:
        node_counts = tuple(int(x) for x in filter(None, args.nodes.split(",")))
    except ValueError:
        parser.error("--nodes takes comma-separated numbers, e.g. 1,2,4")
    if any(x < 1 for x in node_counts) or args.repeat < 0:
        parser.error("--nodes and --repeat take positive numbers")
    if args.repeat:
        cfg = dataclasses.replace(cfg, repeat=args.repeat)
    if args.latency_level:
        try:
            streams_text, _, rates_text = args.latency_level.partition(":")
            rates = tuple(int(x) for x in rates_text.split(","))
            level = Level(int(streams_text), rates, rates)
        except ValueError:
            parser.error("--latency-level takes STREAMS:RATE[,RATE…], e.g. 10000:1000")
        cfg = dataclasses.replace(cfg, latency=(level,))
    if args.storm_streams:
        cfg = dataclasses.replace(cfg, storm_streams=args.storm_streams)
    if args.idle_levels:
        levels = tuple(int(x) for x in args.idle_levels.split(","))
        cfg = dataclasses.replace(cfg, idle_levels=levels)
    wanted = set(filter(None, args.targets.split(",")))
    # An opt-in target (tidings-granian) runs only when --targets names it: not in a full run.
    targets = [t for t in all_targets() if t.name in wanted or (not wanted and not t.opt_in)]
    work = common.WORK / "run"
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    written = []
    with common.cleanup():
        from bench import peers

        peer_status = peers.status() if args.no_install else peers.ensure(quiet=True)
        base = {
            "machine": common.machine(),
            "versions": {
                **common.versions(),
                **{t.name: t.version() for t in targets if t.available() is None and t.version()},
            },
            "peers": peer_status,
            "git": common.git_commit(),
            "quick": cfg.quick,
            "config": dataclasses.asdict(cfg),
        }
        for name in chosen:
            common.log(f"scenario {name}")
            t_scen = time.time()
            result: dict[str, Any] = {
                "scenario": name,
                **base,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "targets": {},
            }
            if name == "stores":
                result["stores"] = scenario_stores(cfg)
            elif name == "soak":
                from bench.soak import scenario_soak

                result.update(scenario_soak(work / "soak"))
            elif name == "buses":
                from bench.buses import scenario_buses

                result.update(scenario_buses(cfg, work))
            elif name == "cluster":
                from bench.cluster import scenario_cluster

                result.update(
                    scenario_cluster(cfg, work, node_counts, engines, args.repeat, wanted)
                )
            else:
                for target in targets:
                    entry: dict[str, Any] = {"label": target.label}
                    why = target.available()
                    if why is not None:
                        entry["skipped"] = why
                    else:
                        try:
                            entry.update(RUNNERS[name](target, cfg, work))
                        except Exception as exc:
                            common.log(f"  {target.name} failed: {exc!r}")
                            entry["error"] = repr(exc)[:2000]
                    result["targets"][target.name] = entry
            result["seconds"] = round(time.time() - t_scen, 1)
            path = common.write_result(name, result)
            written.append(path)
            common.log(f"wrote {path.relative_to(common.ROOT)}")
    common.log(f"done in {time.time() - started:.0f} s")
    if not args.no_report:
        from bench import report

        report.main([])
    return 0


if __name__ == "__main__":
    os.chdir(common.ROOT)
    sys.exit(main())
