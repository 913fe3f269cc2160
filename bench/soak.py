"""The soak (issue 22, item 8): one node under steady mixed load for a long time, sampled every
minute, to show that nothing grows after warm-up and nothing is lost.

    bench/run soak                                   # 19,000 streams, 200/s, 30 minutes
    SOAK_MINUTES=1 SOAK_STREAMS=500 SOAK_RATE=20 bench/run soak      # a smoke run

One `tidings serve` on SQLite, driven by the same load-generator processes as the other scenarios
(bench/loadgen.py, raw asyncio sockets; one Python process per ~7,000 streams and one publisher),
so the generator is not what the soak measures; each process reports its CPU every minute and a
minute where one of them was near a full core is marked `generator_limited`.

Each stream belongs to its own user and is dropped at random (an exponential lifetime, mean
`SOAK_RECONNECT_S` s) and reopened 0.1–1 s later with its `Last-Event-ID`, as a browser moving
between pages does. Publishes go out open-loop at `SOAK_RATE` per second to random users (each
with an idempotency key); one in 20 is scheduled 2–10 s ahead (`deliver_at`). Users mark read and
archive what they received, each reader process for its own users, at a tenth of the publish rate.

Every minute: the server's RSS, open file descriptors, CPU and its own count of open streams; the
store's size on disk; the p50/p99 from publish (or due time) to arrival, for immediate and
scheduled notifications apart (the scheduler looks once a second, so a scheduled one waits up to
a second by design); the counts so far; the machine's load average. At the end, after a drain,
`lost` counts, user by user, published notifications that never reached any connection of their
user, and `duplicates` those that reached it twice. Not run in CI.

`SOAK_DRAIN_S` (120) bounds that drain. `SOAK_NICE` (0) sets the scheduler priority of the server
and the generators (as root, e.g. -10): on a machine shared with other work, the per-minute
`server_cpu_wait_pct` says how long the server waited for a CPU. `python -m bench.soak table
bench/results/soak-….json [EVERY]` prints the curve as a Markdown table (every EVERY-th minute).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import resource
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.main import Generator, gc_pauses, pct
from bench.targets import PUBLISHER_KEY, Server, Tidings, token

# Streams per reader process: well under the open-file limit, and several processes so that
# reading (and ~300 reconnects/s at full scale) is not one core's job.
STREAMS_PER_READER = 7_000
# Left under the open-file limit for the server's other descriptors (store, listener, the
# publisher's and the actors' connections) and for sockets closing while their streams reopen.
FD_HEADROOM = 1_000
SCHEDULED_EVERY = 20
# After publishing stops: drops stop, every stream reopens once more, and what is due (scheduled
# ones up to 10 s ahead) arrives; over when every stream is open and nothing new came for
# DRAIN_QUIET_S, or after SOAK_DRAIN_S.
DRAIN_QUIET_S = 15.0
METRICS = (
    "tidings_streams_open",
    "tidings_streams_refused_total",
    "tidings_stream_resets_total",
    "tidings_notifications_published_total",
    "tidings_scheduled_delivered_total",
)


def _setting(name: str, default: float) -> float:
    return float(os.environ.get(f"SOAK_{name}", default))


class SoakTidings(Tidings):
    label = "tidings (SQLite, local bus), soak"

    def env(self, workdir: Path) -> dict[str, str]:
        env = super().env(workdir)
        # One stream per user here: a cap of 5 turns streams the server failed to let go of
        # into refusals (429) that the soak counts, instead of a slow leak.
        env["TIDINGS_MAX_STREAMS_PER_USER"] = "5"
        return env


def raise_fd_limit() -> tuple[int, int]:
    """The soft open-file limit up to the hard one (the server and generators inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def server_metrics(server: Server) -> dict[str, float]:
    """The server's own counters, and how long /metrics took to answer (its responsiveness)."""
    began = time.time()
    try:
        status, body = common.request(server.port, "GET", "/metrics", timeout=10)
    except OSError:
        return {}
    if status != 200:
        return {}
    out: dict[str, float] = {"probe_s": time.time() - began}
    for line in body.decode().splitlines():
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        if name in METRICS:
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def open_fds(pid: int) -> int:
    total = 0
    for p in common.tree(pid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{p}/fd"))
    return total


def set_nice(pid: int, nice: int) -> None:
    """Each process we spawn leads its own session, so its own scheduler autogroup (Linux): a
    plain nice value only ranks it within that group; the group's nice ranks it on the machine."""
    os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def cpu_pressure() -> float | None:
    """The share of the last minute in which some runnable task waited for a CPU (PSI)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(f.split("=") for f in line.split()[1:])
    return float(fields["avg60"])


def store_mb(workdir: Path) -> float:
    size = sum(p.stat().st_size for p in workdir.glob("tidings.db*") if p.exists())
    return round(size / 2**20, 2)


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


def merge_counts(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


class Soak:
    def __init__(
        self, work: Path, streams: int, rate: float, reconnect_s: float, nice: int = 0
    ) -> None:
        self.work = work
        self.nice = nice
        self.streams = streams
        self.rate = rate
        self.reconnect_s = reconnect_s
        self.users = [f"soak{i}" for i in range(streams)]
        self.target = SoakTidings()
        self.server: Server | None = None
        self.gen: Generator | None = None
        self.samples: list[dict[str, Any]] = []
        self.immediate: list[float] = []  # every arrival's latency after the first minute
        self.scheduled: list[float] = []
        self.last_server: dict[str, float] = {}
        self.last_wait = 0.0
        self.last_gen_wait: dict[int, float] = {}
        self.gc_from = 0

    def start(self) -> dict[str, Any]:
        self.server = self.target.start(self.work)
        readers = max(2, math.ceil(self.streams / STREAMS_PER_READER))
        self.gen = gen = Generator(self.server.port, readers)
        cmds = [
            {
                "cmd": "soak_readers",
                "lifetime_s": self.reconnect_s,
                "gap_s": [0.1, 1.0],
                "act_rate": self.rate / 10 / readers,
                "seed": 100 + i,
            }
            for i in range(readers)
        ]
        gen._call(gen.procs, cmds, 30)
        if self.nice:
            for proc in [self.server.proc, *gen.procs, *gen.publishers]:
                set_nice(proc.pid, self.nice)
        conns = [self.target.stream(u) for u in self.users]
        for c in conns:
            c["headers"] = {"Authorization": f"Bearer {token(c['user'], ttl=24 * 3600)}"}
        common.log(f"soak: opening {self.streams} streams over {readers} reader processes")
        opened = gen.open(conns, reconnect=True)
        common.log(f"  -> {opened}")
        gen._call(gen.procs, [{"cmd": "soak_act"}] * readers, 30)
        publish = {
            "cmd": "soak_publish_start",
            "rate": self.rate,
            "users": self.users,
            "headers": {"Authorization": f"Bearer {PUBLISHER_KEY}"},
            "k0": 1,
            "scheduled_every": SCHEDULED_EVERY,
            "ahead_s": [2.0, 10.0],
            "connections": 16,
            "seed": 7,
        }
        gen._call(gen.publishers[:1], [publish], 30)
        self.last_server = self.server.sample()
        self.last_wait = common.schedstat(self.server.proc.pid)[1]
        self.last_gen_wait = {
            p.pid: common.schedstat(p.pid)[1] for p in [*gen.procs, *gen.publishers[:1]]
        }
        self.gc_from = self._log_size()
        return opened

    def _log_size(self) -> int:
        assert self.server is not None
        path = self.server.workdir / f"{self.target.name}.log"
        return path.stat().st_size if path.exists() else 0

    def sample(self, began: float) -> dict[str, Any]:
        assert self.server is not None
        assert self.gen is not None
        gen = self.gen
        readers = gen._call(gen.procs, [{"cmd": "soak_stats"}] * len(gen.procs), 120)
        (pub,) = gen._call(gen.publishers[:1], [{"cmd": "soak_publish_stats"}], 60)
        now = self.server.sample()
        pid = self.server.proc.pid
        metrics = server_metrics(self.server)
        minute = (time.time() - began) / 60
        immediate: list[float] = []
        scheduled: list[float] = []
        for r in readers:
            for k, lat in r["arrivals"]:
                (scheduled if k % SCHEDULED_EVERY == 0 else immediate).append(lat)
        if minute > 1.5:  # the run's figures leave out the first minute (warm-up)
            self.immediate += immediate
            self.scheduled += scheduled
        gc_ms = gc_pauses(self.server.workdir / f"{self.target.name}.log", self.gc_from)
        self.gc_from = self._log_size()
        shares = [r["cpu"] / max(r["wall"], 1e-9) for r in [*readers, pub]]
        gen_cpu = sum(r["cpu"] for r in [*readers, pub])
        wall = max(now["t"] - self.last_server["t"], 1e-9)
        waited = common.schedstat(pid)[1]
        gen_wait = {p.pid: common.schedstat(p.pid)[1] for p in [*gen.procs, *gen.publishers[:1]]}
        gen_waited = max(v - self.last_gen_wait.get(k, 0.0) for k, v in gen_wait.items())
        self.last_gen_wait = gen_wait
        probe = metrics.get("probe_s")
        row = {
            "minute": round(minute, 2),
            "rss_mb": round(now["rss"] / 2**20, 1),
            "open_fds": open_fds(pid),
            # None: /metrics gave no answer within 10 s.
            "streams_open_server": metrics.get("tidings_streams_open"),
            "metrics_probe_ms": None if probe is None else ms(probe),
            "streams_open_generator": sum(r["open"] for r in readers),
            "store_mb": store_mb(self.server.workdir),
            "p50_ms": ms(pct(immediate, 0.5)),
            "p99_ms": ms(pct(immediate, 0.99)),
            "max_ms": ms(max(immediate) if immediate else None),
            "scheduled_p99_ms": ms(pct(scheduled, 0.99)),
            "arrivals": len(immediate) + len(scheduled),
            "published": pub["sent"],
            "scheduled": pub["scheduled"],
            "publish_errors": sum(pub["errors"].values()),
            "publish_backlog": pub["backlog"],
            "publish_call_p99_ms": ms(pct(pub["call_lat"], 0.99)),
            "received": sum(r["distinct"] for r in readers),
            "duplicates": sum(r["dups"] for r in readers),
            "reconnects": sum(r["reconnects"] for r in readers),
            "drops": sum(r["drops"] for r in readers),
            "server_closes": sum(r["server_closes"] for r in readers),
            "open_failures": sum(r["failed"] for r in readers),
            "resets": sum(r["resets"] for r in readers),
            "statuses": merge_counts([r["statuses"] for r in readers]),
            "refused_server": metrics.get("tidings_streams_refused_total"),
            "read_and_archive": sum(r["actions"] for r in readers),
            "action_p99_ms": ms(pct([x for r in readers for x in r["act_lat"]], 0.99)),
            "action_errors": merge_counts([r["act_errors"] for r in readers]),
            "actions_skipped": sum(r["act_skipped"] for r in readers),
            "server_cpu_pct": round((now["cpu"] - self.last_server["cpu"]) / wall * 100, 1),
            # Time the server's threads were runnable but waited for a CPU, as % of the minute
            # (summed over threads): what the machine's other work took from it.
            "server_cpu_wait_pct": round((waited - self.last_wait) / wall * 100, 1),
            "generator_cpu_pct": round(gen_cpu / wall * 100, 1),
            "generator_cpu_share_max": round(max(shares), 3),
            # The most any generator process waited for a CPU, as % of the minute: a latency
            # includes its reader's wait to run.
            "generator_cpu_wait_pct_max": round(gen_waited / wall * 100, 1),
            "publisher_behind_max_ms": ms(pub["behind_max"]),
            "gc_pauses": None if gc_ms is None else len(gc_ms),
            "gc_max_ms": None if gc_ms is None else max(gc_ms, default=0.0),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "cpu_pressure_pct": cpu_pressure(),
        }
        # A generator process near a full core means the minute measured the generator as much
        # as the server. (The publisher's loop running late on a loaded machine shows in
        # publisher_behind_max_ms, and in the latencies: each publish is stamped with its
        # scheduled time, not its send time.)
        row["generator_limited"] = max(shares) > 0.85
        self.last_server = now
        self.last_wait = waited
        return row

    def finish(self, drain_limit: float) -> dict[str, Any]:
        """Stop publishing, let what is due arrive, and count per user what never did."""
        assert self.gen is not None
        gen = self.gen
        (stopped,) = gen._call(gen.publishers[:1], [{"cmd": "soak_publish_stop"}], 180)
        ok = {int(k): u for k, u in stopped["ok"].items()}
        gen._call(gen.procs, [{"cmd": "soak_calm"}] * len(gen.procs), 30)
        # Scheduled ones are due up to 10 s after the last publish; streams between a drop and
        # their reopen catch up from Last-Event-ID.
        t0 = time.time()
        last, last_change = -1, t0
        open_streams = 0
        while time.time() - t0 < drain_limit:
            stats = gen._call(gen.procs, [{"cmd": "soak_stats"}] * len(gen.procs), 120)
            got = sum(r["distinct"] for r in stats)
            open_streams = sum(r["open"] for r in stats)
            if got >= len(ok) and open_streams >= self.streams:
                break
            if got != last:
                last, last_change = got, time.time()
            elif time.time() - last_change > DRAIN_QUIET_S and open_streams >= self.streams:
                break
            time.sleep(1)
        drain_s = time.time() - t0
        replies = gen._call(gen.procs, [{"cmd": "soak_received"}] * len(gen.procs), 300)
        seen: dict[str, set[int]] = {}
        dups: dict[str, int] = {}
        for r in replies:
            for user, ks in r["seen"].items():
                seen.setdefault(user, set()).update(ks)
            for user, n in r["dups"].items():
                dups[user] = dups.get(user, 0) + n
        lost = sorted((k, u) for k, u in ok.items() if k not in seen.get(u, ()))
        owner = {k: u for u, ks in seen.items() for k in ks}
        stray = sorted((k, u) for k, u in owner.items() if k in ok and ok[k] != u)
        unknown = sorted(k for k in owner if k not in ok)
        return {
            "published": len(ok),
            "unsent": stopped["unsent"],
            "scheduled": stopped["scheduled"],
            "publish_errors": stopped["errors"],
            "received": sum(len(ks) for ks in seen.values()),
            "lost": len(lost),
            "lost_scheduled": sum(1 for k, _ in lost if k % SCHEDULED_EVERY == 0),
            "lost_users": len({u for _, u in lost}),
            "lost_examples": [f"{u}/k{k}" for k, u in lost[:20]],
            "duplicates": sum(dups.values()),
            "duplicate_users": len(dups),
            # Received by another user than the one it was published to: never expected.
            "misdelivered": len(stray),
            # Received but not acknowledged to the publisher (an answer lost after the store
            # took it, say): delivered, so not a loss, but counted.
            "received_unacknowledged": len(unknown),
            "drain_s": round(drain_s, 1),
            "open_after_drain": open_streams,
        }

    def close(self) -> None:
        if self.gen is not None:
            self.gen.close()
        if self.server is not None:
            self.server.stop()


def run(work: Path) -> dict[str, Any]:
    minutes = _setting("MINUTES", 30)
    soft, hard = raise_fd_limit()
    # 20,000 asked for; the server holds one descriptor per stream, and its open-file limit
    # here is 20,000 (the hard limit: it cannot be raised without privileges we lack).
    streams = int(_setting("STREAMS", hard - FD_HEADROOM))
    if streams > hard - FD_HEADROOM:
        common.log(
            f"soak: {streams} streams do not fit the server's open-file limit ({hard}); "
            f"using {hard - FD_HEADROOM}"
        )
        streams = hard - FD_HEADROOM
    rate = _setting("RATE", 200)
    reconnect_s = _setting("RECONNECT_S", 60)
    drain_limit = _setting("DRAIN_S", 120)
    # SOAK_NICE=-10 (as root) gives the server and generators priority over the rest of a shared
    # machine; 0 (the default) leaves them equal, and the per-minute wait for a CPU shows the cost.
    nice = int(_setting("NICE", 0))
    soak = Soak(work, streams, rate, reconnect_s, nice)
    end: dict[str, Any] = {}
    opened: dict[str, Any] = {}
    try:
        opened = soak.start()
        began = time.time()
        common.log(f"soak: {minutes:g} min, {rate:g} publishes/s, reopen every ~{reconnect_s:g} s")
        for i in range(math.ceil(minutes)):
            time.sleep(max(0.0, began + min((i + 1) * 60, minutes * 60) - time.time()))
            soak.samples.append(soak.sample(began))
            common.log(json.dumps(soak.samples[-1]))
        end = soak.finish(drain_limit)
        common.log(json.dumps(end))
    finally:
        soak.close()
    return {
        "config": {
            "minutes": minutes,
            "streams": streams,
            "rate": rate,
            "reconnect_mean_s": reconnect_s,
            "reconnect_gap_s": [0.1, 1.0],
            "scheduled_share": 1 / SCHEDULED_EVERY,
            "scheduled_ahead_s": [2, 10],
            "read_and_archive_per_s": rate / 10,
            "nofile": [soft, hard],
            "nice": nice,
            "drain_limit_s": drain_limit,
        },
        "opened": opened,
        "samples": soak.samples,
        "overall": {
            "p50_ms": ms(pct(soak.immediate, 0.5)),
            "p99_ms": ms(pct(soak.immediate, 0.99)),
            "max_ms": ms(max(soak.immediate) if soak.immediate else None),
            "scheduled_p50_ms": ms(pct(soak.scheduled, 0.5)),
            "scheduled_p99_ms": ms(pct(soak.scheduled, 0.99)),
            "note": "latencies after the first minute; a scheduled one from its due time",
        },
        **end,
        "note": (
            "lost: published (acknowledged) notifications that never reached any connection of "
            "their user after publishing stopped, drops stopped, every stream reopened, and "
            f"nothing new arrived for {DRAIN_QUIET_S:g} s (or SOAK_DRAIN_S ran out)"
        ),
    }


def scenario_soak(work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    return run(work)


def table(result: dict[str, Any], every: int = 1) -> str:
    """The curve as a Markdown table: every `every`-th minute, and the last."""
    head = (
        "| min | RSS MB | fds | streams | store MB | p50 ms | p99 ms | sched. p99 ms "
        "| published (so far) | reopens (so far) | server CPU % | waited for CPU % "
        "| gen. CPU max % | load (1 min) |"
    )
    lines = [head, "|" + "|".join("---:" for _ in range(head.count("|") - 1)) + "|"]
    samples = result["samples"]
    for i, r in enumerate(samples):
        if (i + 1) % every and i != len(samples) - 1:
            continue
        cells = [
            f"{r['minute']:.0f}",
            f"{r['rss_mb']:.0f}",
            f"{r['open_fds']:,}",
            f"{r['streams_open_server']:,.0f}" if r["streams_open_server"] is not None else "–",
            f"{r['store_mb']:.1f}",
            _num(r["p50_ms"]),
            _num(r["p99_ms"]),
            _num(r["scheduled_p99_ms"]),
            f"{r['published']:,}",
            f"{r['drops']:,}",
            f"{r['server_cpu_pct']:.0f}",
            f"{r['server_cpu_wait_pct']:.0f}",
            f"{r['generator_cpu_share_max'] * 100:.0f}",
            f"{r['loadavg'][0]:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["table"]:
        every = int(sys.argv[3]) if len(sys.argv) > 3 else 1
        print(table(json.loads(Path(sys.argv[2]).read_text()), every))
    else:
        with common.cleanup():
            print(json.dumps(scenario_soak(common.WORK / "soak"), indent=2))
