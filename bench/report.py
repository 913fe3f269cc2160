"""Render docs/benchmarks.md and PNG plots from the newest bench/results/<scenario>-*.json.

`python -m bench.report` (bench/run calls it at the end). Tables compare every target with tidings
side by side; ratios are tidings / other (below 1 means tidings needs less, or is faster).
Plots need matplotlib (the `bench` extra); without it the tables are still written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT

DOC = ROOT / "docs" / "benchmarks.md"
PLOTS = RESULTS
ORDER = ("tidings", "tidings-granian", "floor", "polling", "centrifugo", "mercure")


def newest(scenario: str) -> dict[str, Any] | None:
    files = sorted(RESULTS.glob(f"{scenario}-*.json"))
    if not files:
        return None
    data: dict[str, Any] = json.loads(files[-1].read_text())
    data["_file"] = files[-1].relative_to(ROOT).as_posix()
    return data


def fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        x = f"{x:,.2f}" if abs(x) < 100 else f"{x:,.0f}"
    elif isinstance(x, int):
        x = f"{x:,}"
    return f"{x}{unit}"


def ratio(ours: Any, other: Any) -> str:
    if not isinstance(ours, int | float) or not isinstance(other, int | float) or other == 0:
        return "–"
    return f"{ours / other:.2f}×"


def targets(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = data.get("targets", {})
    return [(name, found[name]) for name in ORDER if name in found]


def skipped_lines(data: dict[str, Any]) -> list[str]:
    out = []
    for name, entry in targets(data):
        why = entry.get("skipped") or entry.get("error")
        if why:
            out.append(f"- **{name}** not measured: {why}")
    return out


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def idle_section(data: dict[str, Any]) -> list[str]:
    out = ["## 1. Idle capacity", "", f"Source: `{data['_file']}`.", ""]
    ours = {lv["streams"]: lv for lv in data["targets"].get("tidings", {}).get("levels", [])}
    rows = []
    for name, entry in targets(data):
        for lv in entry.get("levels", []):
            if "skipped" in lv:
                rows.append([name, fmt(lv["streams"]), "skipped: " + lv["skipped"]] + [""] * 6)
                continue
            mine = ours.get(lv["streams"], {})
            rows.append(
                [
                    name,
                    fmt(lv["streams"]),
                    f"{fmt(lv['opened'])} ({fmt(lv['failed'])} failed)",
                    fmt(lv["open_rate"], "/s"),
                    fmt(lv["rss_per_stream_kb"], " KB"),
                    ratio(mine.get("rss_per_stream_kb"), lv["rss_per_stream_kb"]),
                    fmt(lv["idle_cpu_pct"], " %"),
                    fmt(lv["queries_per_s"]),
                    fmt(lv["generator_cpu_share_max"]),
                ]
            )
    head = [
        "server",
        "streams",
        "opened",
        "open rate",
        "RSS / stream",
        "tidings / this (RSS)",
        "idle CPU",
        "store queries/s",
        "generator CPU (max proc)",
    ]
    out += [*table(head, rows), ""]
    stall_rows = []
    for name, entry in targets(data):
        for lv in entry.get("levels", []):
            st = lv.get("stalls")
            if not st:
                continue
            gc = (
                "–"
                if st.get("gc_pauses") is None
                else f"{fmt(st['gc_pauses'])} (max {fmt(st['gc_max_ms'], ' ms')})"
            )
            stall_rows.append(
                [
                    name,
                    fmt(lv["streams"]),
                    fmt(st["probes"]),
                    fmt(st["p50_ms"], " ms"),
                    fmt(st["p99_ms"], " ms"),
                    fmt(st["max_ms"], " ms"),
                    fmt(st["over_20ms"]),
                    gc,
                ]
            )
    if stall_rows:
        head = [
            "server",
            "idle streams",
            "probes",
            "p50",
            "p99",
            "max",
            "probes over 20 ms",
            "collector pauses ≥ 5 ms",
        ]
        out += [
            "**Loop stalls.** At the largest one-process level, `GET /healthz` (Centrifugo: "
            "`/health`) every 10 ms over one keep-alive connection for the window below; a "
            "probe's time is how long the server's event loop kept it waiting. Collector pauses "
            "come from tidings' own log (`TIDINGS_DEBUG_STALLS=5`, docs/operations.md).",
            "",
            *table(head, stall_rows),
            "",
        ]
    return out + skipped_lines(data) + [""]


def med(x: Any, unit: str = "") -> str:
    """A figure summarized over repeated runs: `median (min–max)`; a plain value as it is."""
    if not isinstance(x, dict):
        return fmt(x, unit)
    if x.get("median") is None:
        return "–"
    if x.get("n", 1) <= 1 or x["min"] == x["max"]:
        return fmt(x["median"], unit)
    return f"{fmt(x['median'], unit)} ({fmt(x['min'])}–{fmt(x['max'])})"


def med_value(x: Any) -> Any:
    return x.get("median") if isinstance(x, dict) else x


def latency_summary_section(data: dict[str, Any]) -> list[str]:
    """The latency table from repeated runs: each figure the median with its spread."""
    out = ["## 2. Latency under load", "", f"Source: `{data['_file']}`.", ""]
    ours = {
        (r["streams"], r["rate"]): r for r in data["targets"].get("tidings", {}).get("summary", [])
    }
    rows = []
    for name, entry in targets(data):
        for r in entry.get("summary", []):
            mine = ours.get((r["streams"], r["rate"]), {})
            flag = " (generator-limited)" if r.get("generator_limited") else ""
            cpu = r["server_cpu_us_per_notification"]
            rows.append(
                [
                    name,
                    fmt(r["streams"]),
                    fmt(r["rate"], "/s") + flag,
                    f"**{med(cpu, ' µs')}**",
                    ratio(med_value(mine.get("server_cpu_us_per_notification")), med_value(cpu)),
                    med(r["p50_ms"], " ms"),
                    med(r["p99_ms"], " ms"),
                    ratio(med_value(mine.get("p99_ms")), med_value(r["p99_ms"])),
                    med(r["max_ms"], " ms"),
                    f"{fmt(r['lost'])} / {fmt(r['duplicates'])}",
                    fmt(r["publish_errors"]),
                    med(r["server_cpu_pct"], " %"),
                    f"{fmt(r['generator_cpu_pct'], ' %')} ({fmt(r.get('publisher_processes'))})",
                    fmt(r["runs"]),
                ]
            )
    head = [
        "server",
        "streams",
        "rate",
        "server CPU / notification",
        "tidings / this (CPU)",
        "p50",
        "p99",
        "tidings / this (p99)",
        "max",
        "lost / dup (all runs)",
        "publish errors",
        "server CPU",
        "generator CPU (publishers)",
        "runs",
    ]
    out += [
        "Each figure is the median over the runs (a fresh server each) with the lowest and "
        "highest in brackets; *server CPU / notification* is the headline, the figure least "
        "moved by whatever else the machine runs. A rate passes when its median p99 is under "
        "100 ms and no run lost anything.",
        "",
        *table(head, rows),
        "",
    ]
    best = [
        f"- {name}: "
        + ", ".join(
            f"{fmt(int(n))} streams → {fmt(v, '/s') if v else 'none of the rates'}"
            for n, v in entry.get("highest_rate_p99_under_100ms", {}).items()
        )
        for name, entry in targets(data)
        if entry.get("highest_rate_p99_under_100ms")
    ]
    if best:
        out += ["Highest rate with median p99 < 100 ms and nothing lost:", "", *best, ""]
    return out + skipped_lines(data) + [""]


def latency_section(data: dict[str, Any]) -> list[str]:
    if any("summary" in entry for _, entry in targets(data)):
        return latency_summary_section(data)
    out = ["## 2. Latency under load", "", f"Source: `{data['_file']}`.", ""]
    ours = {
        (r["streams"], r["rate"]): r for r in data["targets"].get("tidings", {}).get("runs", [])
    }
    rows = []
    for name, entry in targets(data):
        for r in entry.get("runs", []):
            mine = ours.get((r["streams"], r["rate"]), {})
            flag = " (generator-limited)" if r.get("generator_limited") else ""
            rows.append(
                [
                    name,
                    fmt(r["streams"]),
                    fmt(r["rate"], "/s") + flag,
                    fmt(r["p50_ms"], " ms"),
                    fmt(r["p99_ms"], " ms"),
                    fmt(r["max_ms"], " ms"),
                    ratio(mine.get("p99_ms"), r["p99_ms"]),
                    f"{fmt(r['lost'])} / {fmt(r['duplicates'])}",
                    fmt(r["publish_errors"]),
                    fmt(r["server_cpu_pct"], " %"),
                    fmt(r.get("server_cpu_us_per_notification"), " µs"),
                    generator_cell(r),
                ]
            )
    head = [
        "server",
        "streams",
        "rate",
        "p50",
        "p99",
        "max",
        "tidings / this (p99)",
        "lost / dup",
        "publish errors",
        "server CPU",
        "server CPU / notification",
        "generator CPU (publishers)",
    ]
    out += [*table(head, rows), ""]
    best = [
        f"- {name}: "
        + ", ".join(
            f"{fmt(int(n))} streams → {fmt(v, '/s') if v else 'none of the rates'}"
            for n, v in entry.get("highest_rate_p99_under_100ms", {}).items()
        )
        for name, entry in targets(data)
        if entry.get("highest_rate_p99_under_100ms")
    ]
    if best:
        out += ["Highest rate measured with p99 < 100 ms and nothing lost:", "", *best, ""]
    return out + skipped_lines(data) + [""]


def generator_cell(r: dict[str, Any]) -> str:
    """The generator's own CPU (all its processes, % of one core) and how many publishers."""
    if "generator_cpu_pct" not in r:
        return fmt(r.get("publisher_cpu_share"))
    return f"{fmt(r['generator_cpu_pct'], ' %')} ({fmt(r.get('publisher_processes'))})"


def broadcast_section(data: dict[str, Any]) -> list[str]:
    out = ["## 3. Broadcast", "", f"Source: `{data['_file']}`.", ""]
    ours = data["targets"].get("tidings", {}).get("last_ms_median")
    rows = []
    for name, entry in targets(data):
        rounds = entry.get("rounds", [])
        if not rounds:
            continue
        rows.append(
            [
                name,
                fmt(rounds[0]["users"]),
                med(entry.get("last_ms", entry.get("last_ms_median")), " ms"),
                ratio(ours, entry.get("last_ms_median")),
                ", ".join(fmt(r["last_ms"], " ms") for r in rounds),
                fmt(sum(r["lost"] for r in rounds)),
                fmt(sum(r["duplicates"] for r in rounds)),
                med(entry.get("publish_call_ms", rounds[0]["publish_call_ms"]), " ms"),
                med(entry.get("server_cpu_s"), " s"),
            ]
        )
    head = [
        "server",
        "users",
        "last received (median)",
        "tidings / this",
        "each round",
        "lost",
        "dup",
        "publish call",
        "server CPU per broadcast",
    ]
    return out + table(head, rows) + [""] + skipped_lines(data) + [""]


def storm_section(data: dict[str, Any]) -> list[str]:
    out = ["## 4. Reconnect storm", "", f"Source: `{data['_file']}`.", ""]
    if any("generator_cpu_s" in entry for _, entry in targets(data)):
        out += [
            "The clients are the harness's reader processes on the same two cores as the server "
            "(each connect leaves its source port to `connect()`; a `bind()` to port 0 before it "
            "cost the readers 11–21 s of CPU per storm until 2026-12-07, bench/changes.md: the "
            "storm waited for its own readers): their CPU is shown beside the server's, and a "
            "handshake the full listen queue dropped waits TCP's 1 s (then 3 s) before its "
            "client tries again.",
            "",
        ]
    rows = []
    for name, entry in targets(data):
        if "streams" not in entry:
            continue
        rows.append(
            [
                name,
                fmt(entry["opened"]),
                fmt(entry["per_user"]),
                fmt(entry["server_ready_s"], " s"),
                storm_cell(entry),
                after_ready_cell(entry),
                returned_cell(entry),
                served_cell(entry),
                cpu_cell(entry),
                fmt(entry.get("listen_overflows", "–")),
                fmt(entry["lost"]),
                fmt(entry["duplicates"]),
                fmt(entry["reconnect_attempts"]),
            ]
        )
    head = [
        "server",
        "streams",
        "published per user while down",
        "server ready after",
        "every stream has its notifications after",
        "of it after ready (clients told retry ≤)",
        "clients back after ready (p50 / p99)",
        "from a client's return to its last notification (p50 / max)",
        "CPU: server / readers",
        "handshakes dropped (listen queue full)",
        "lost",
        "dup",
        "reconnect attempts",
    ]
    return out + table(head, rows) + [""] + skipped_lines(data) + [""]


def cpu_cell(entry: dict[str, Any]) -> str:
    """The server's CPU through the storm beside the readers' (the median run's): the readers
    share the machine's cores with the server; older results have no readers' figure."""
    readers = entry.get("generator_cpu_s")
    server = fmt(entry.get("server_cpu_s"), " s")
    return server if readers is None else f"{server} / {fmt(readers, ' s')}"


def storm_cell(entry: dict[str, Any]) -> str:
    """The time until every stream had its notifications: median and spread over the runs."""
    spread = entry.get("all_received")
    if spread is not None:
        cell = med(spread, " s")
        if spread.get("incomplete"):
            cell += f", {spread['incomplete']} of {len(entry['runs'])} runs not all"
        return cell
    if entry["all_received_s"] is None:
        return f"not all ({fmt(entry['resumed'])} done)"
    return fmt(entry["all_received_s"], " s")


def after_ready_cell(entry: dict[str, Any]) -> str:
    """The server's share of the storm (ready to the last stream done), and the drain spread
    the clients came back over; older results have neither."""
    if "after_ready_s" not in entry:
        return "–"
    spread = entry.get("after_ready")
    cell = med(spread, " s") if spread is not None else fmt(entry["after_ready_s"], " s")
    return f"{cell} ({fmt(entry['drain_retry_max_ms'])} ms)"


def returned_cell(entry: dict[str, Any]) -> str:
    """When the clients began the attempt that got their notifications, after ready (the
    median run's): the part of "after ready" that is the clients' `retry:`, not the server."""
    spread = entry.get("returned_after_ready_s")
    if not spread:
        return "–"
    return f"{fmt(spread.get('p50'), ' s')} / {fmt(spread.get('p99'), ' s')}"


def served_cell(entry: dict[str, Any]) -> str:
    """How long the server took per client from its return (the median run's): the server's
    own part of the storm."""
    spread = entry.get("served_in_s")
    if not spread:
        return "–"
    return f"{fmt(spread.get('p50'), ' s')} / {fmt(spread.get('max'), ' s')}"


def profile_section(data: dict[str, Any]) -> list[str]:
    out = ["## 5. CPU budget per notification", "", f"Source: `{data['_file']}`.", ""]
    found = [(name, e) for name, e in targets(data) if "parts" in e]
    if not found:
        return out + skipped_lines(data) + [""]
    first = found[0][1]
    out += [
        f"`py-spy record --rate 200 --nonblocking` on the server while {fmt(first['streams'])} "
        f"streams are open and {fmt(first['rate'])} notifications/s are published for "
        f"{fmt(first['seconds'])} s (`bench/run profile`, bench/profile.py). Each sample is "
        "charged to the innermost frame that belongs to a part of the path (an encode inside "
        "the hub counts as encoding); the shares of the samples, times the server CPU per "
        "notification from /proc over the same window, give microseconds per notification. "
        "*event loop (uvloop, C)* is time below the last Python frame: uvloop's socket reads "
        "and writes, callbacks and selector, which py-spy does not see into. *store write* "
        "includes the SQLite writer thread waiting for its disk flush (py-spy counts a thread "
        "blocked in a system call as busy), so the shares overstate it: the last row gives "
        "each thread's own CPU from /proc.",
        "",
    ]
    names: list[str] = []
    for _, e in found:
        names += [p for p in e["parts"] if p not in names]
    rows = []
    for part in names:
        cells = [part]
        for _, e in found:
            got = e["parts"].get(part)
            cells.append(
                "–" if got is None else f"{fmt(got['us_per_notification'])} µs ({got['share']:.0%})"
            )
        rows.append(cells)
    rows.append(
        ["**total (server CPU / notification)**"]
        + [f"**{fmt(e['server_cpu_us_per_notification'])} µs**" for _, e in found]
    )
    rows.append(["server CPU at this rate"] + [fmt(e["server_cpu_pct"], " %") for _, e in found])
    rows.append(
        ["threads (share of samples)"]
        + [", ".join(f"{k} {v:.0%}" for k, v in e["threads"].items()) for _, e in found]
    )
    rows.append(
        ["threads (CPU / notification, from /proc)"]
        + [
            ", ".join(
                f"{k} {fmt(v)} µs" for k, v in e.get("thread_cpu_us_per_notification", {}).items()
            )
            or "–"
            for _, e in found
        ]
    )
    out += [*table(["part", *(name for name, _ in found)], rows), ""]
    return out + skipped_lines(data) + [""]


def stores_section() -> list[str]:
    out = ["## 6. Stores and buses", ""]
    stores = _newest_with("stores*.json", "stores", row="single")
    if stores is not None:
        path, data = stores
        out += [
            f"Source: `{path.relative_to(ROOT).as_posix()}` (`{data.get('command', '')}`).",
            "",
        ]
        rows = []
        for name, entry in data["stores"].items():
            single = entry.get("single", {})
            batch = entry.get("batch_10k", {})
            replay = entry.get("replay_100", {})
            rows.append(
                [
                    name,
                    fmt(single.get("sequential_per_s")) + "/s",
                    fmt(single.get("concurrent16_per_s")) + "/s",
                    fmt(batch.get("median_s")) + " s",
                    f"{fmt(replay.get('median_ms'))} / {fmt(replay.get('p95_ms'))} ms",
                ]
            )
        head = [
            "store",
            "publishes, one publisher",
            "publishes, 16 concurrent",
            "10,000-user batch (median)",
            "replay of 100 missed (median / p95)",
        ]
        out += [
            *table(head, rows),
            "",
            "MongoDB is measured against FerretDB v1 on SQLite (a wire-protocol test server, "
            "no MongoDB server is installable here): a protocol check, not a production figure.",
            "",
        ]
    buses = _newest_with("buses*.json", "cases")
    if buses is not None:
        path, data = buses
        out += buses_table(path, data)
    if stores is None and buses is None:
        out += ["No results yet (bench/stores.py and bench/buses.py produce them).", ""]
    return out


def buses_table(path: Path, data: dict[str, Any]) -> list[str]:
    out = [f"Source: `{path.relative_to(ROOT).as_posix()}` (`bench/run buses`).", ""]
    rows = []
    for bus, case in data["cases"].items():
        if "runs" not in case:
            rows.append([bus, "not measured: " + str(case.get("error", case))[:300]] + [""] * 8)
            continue
        for r in case["runs"]:
            rows.append(
                [
                    f"{bus}, --workers {case.get('workers')}",
                    fmt(r["streams"]),
                    fmt(r["rate"], "/s")
                    + (" (generator-limited)" if r["generator_limited"] else ""),
                    fmt(r["p50_ms"], " ms"),
                    fmt(r["p99_ms"], " ms"),
                    fmt(r["max_ms"], " ms"),
                    f"{fmt(r['lost'])} / {fmt(r['duplicates'])}",
                    fmt(r["server_cpu_pct"], " %"),
                    fmt(r.get("server_cpu_us_per_notification"), " µs"),
                    generator_cell(r),
                ]
            )
    head = [
        "bus",
        "streams",
        "rate",
        "p50",
        "p99",
        "max",
        "lost / dup",
        "server CPU",
        "server CPU / notification",
        "generator CPU (publishers)",
    ]
    out += [
        "Shared buses: `tidings serve --workers 2` with the PostgreSQL store, publishes "
        "landing on either worker, streams on both (compare with the one-process local bus in "
        "section 2).",
        "",
        *table(head, rows),
        "",
    ]
    return out


CLUSTER_COMMAND = "bench/run cluster"
CLUSTER_ABOUT = """\
N real nodes (separate `tidings serve` processes on their own ports, one PostgreSQL store, streams
spread evenly over the nodes: user i on node i mod N), 10,000 streams, 1,000 publishes/s for 8 s
with the publisher's connections spread over every node (a publish lands on any node, most often
not the one holding the user), then one publish to all 10,000 users sent to one node. Per engine:
one Redis (`redis`), standalone Redis instances hashed by the client (`redis-hashed`, 2
instances), a Redis Cluster of 3 masters with sharded pub/sub (`redis-cluster`), one NATS server
(`nats`), at N = 1, 2 and 4; one node on the local bus as the baseline (`local`, N = 1); and
Centrifugo at the same N with its Redis engine on one Redis instance (personal channels, HTTP
API). The harness starts and stops its own redis-server and nats-server processes
(bench/cluster.py). *server CPU* is all nodes together (from /proc), *engine CPU* the Redis or NATS
servers' own; PostgreSQL's CPU is in neither (the same store for every tidings case; Centrifugo
has none). The store is the test server of `scripts/services`, which runs with
`synchronous_commit=off`: a commit does not wait for its WAL flush, so a publish's round trip is
shorter than on a server that keeps the default `on` (see PostgreSQL in docs/deploy.md).
*bus share* is the most announcements any one node received from the bus during the rate window
(`tidings_bus_announcements_received_total`; for Centrifugo its
`centrifugo_node_messages_received_count{type="publication"}`) divided by the announcements
published: 1.0 means every node hears everything, 1/N is perfect routing. The cases run
round-robin three times (`--repeat`); each figure is the median of the three, with the spread
(min–max) in brackets.

Run it on a quiet machine (after `.venv/bin/pip install -c constraints.txt -e '.[bench,nats]'`,
for the plots this page keeps and the NATS client): `bench/run cluster` runs every case in about
30 minutes; `--nodes 1,2,4`, `--engines local,redis,redis-hashed,redis-cluster,nats,centrifugo`
and `--repeat 3` choose a subset. `bench/run cluster --quick` is a smoke run (1,000 streams,
500/s for 2 s, N = 2, one run, under 2 minutes): its figures say only that every part works.
`BENCH_CLUSTER_SHAPE="streams=2000,rate=800,seconds=6,broadcast_users=500"` runs a smaller
shape (any field of `ClusterConfig`), for an A/B on a shared machine; its figures are not the
issue's.

Besides the table, each run in the result file records where the CPU went: `idle_cpu_pct` (all
nodes with the streams open and nothing published, the last 2 s of the settle time),
`server_cpu_us_per_notification_above_idle` (the same cost without that idle part),
`server_sys_cpu_pct` (the nodes' kernel share: system calls, loopback TCP) and `postgres_cpu_pct`
(the store's server over the rate window). `BENCH_CLUSTER_PROFILE=1 bench/run cluster …` also
samples every node with py-spy through the rate window and adds `profile` (µs per notification per
part of the path, summed over the nodes; folded stacks beside the nodes' logs in
`bench/.work/run/cluster/`). What one such profile showed at 4 nodes on Redis (a loaded machine,
so shares rather than totals): the store write ~45 % (asyncpg round trips: BEGIN, the
statements, COMMIT, and the pool's reset query on release, which the store no longer sends; a
publish is now one statement in one round trip, and concurrent one-user publishes on a node
share one, see PostgreSQL in docs/deploy.md),
uvloop's own C code ~19 %, the bus ~11 % (half of it the write of each PUBLISH), the SSE writes
~10 %; a socket write costs tens of µs on this virtual machine, so the many-node path pays per
round trip more than per byte.

Every run is also traced per notification (`bench/trace.py`; the load generator's files in
`trace`): `tail` splits the slowest 1 % against all notifications into the generator's own lag,
the publish request and the time from its answer to the reader, says which nodes took and
delivered them and how bunched in time they were; `node_run_queue_wait_pct` is, per node, the
share of the rate window its threads were ready to run and waited for a core
(`/proc/PID/task/*/schedstat`). The second table below gives their medians."""


def cluster_section() -> list[str]:
    out = ["## Cluster", "", CLUSTER_ABOUT, ""]
    full = _newest_cluster(quick=False)
    if full is None:
        quick = _newest_cluster(quick=True)
        text = (
            "**Figures: placeholder.** No full cluster run is committed yet: the table is filled "
            f"by `{CLUSTER_COMMAND}` on a quiet machine (it rewrites this page)."
        )
        if quick is not None:
            text += (
                f" The newest result, `{quick[0]}`, is a `--quick` smoke run (`quick`: true in "
                "the file): it shows that every engine and node count runs, not how fast, so "
                "its figures are not shown here."
            )
        from bench.cluster import ENGINES, FULL, cases

        planned = {
            "cases": [
                {
                    "target": t,
                    "bus": "redis" if t == "centrifugo" else e,
                    "nodes": n,
                    "placeholder": True,
                }
                for t, e, n in cases(FULL, ENGINES, set())
            ]
        }
        return [*out, text, "", *cluster_rows(planned)]
    path, data = full
    return out + cluster_table(path, data)


def _newest_cluster(quick: bool) -> tuple[str, dict[str, Any]] | None:
    files = sorted(RESULTS.glob("cluster-*.json"))
    for f in reversed(files):
        data = json.loads(f.read_text())
        if bool(data.get("quick")) == quick and data.get("cases"):
            return f.relative_to(ROOT).as_posix(), data
    return None


def spread(case: dict[str, Any], key: str, unit: str = "") -> str:
    value, rng = case.get(key), case.get(f"{key}_spread")
    if value is None:
        return "–"
    if not rng or rng[0] == rng[1]:
        return fmt(value, unit)
    return f"{fmt(value, unit)} ({fmt(rng[0])}–{fmt(rng[1])})"


def measured(value: Any) -> str:
    """A criterion's figures: `p99_ms 9.86 (Centrifugo 7.29)`, `lost 0`."""
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if isinstance(v, list) and len(v) == 2:
                parts.append(f"{k} {fmt(v[0])} (Centrifugo {fmt(v[1])})")
            else:
                parts.append(f"{k} {fmt(v)}")
        return ", ".join(parts)
    return fmt(value)


def cpu_detail(m: dict[str, Any]) -> str:
    """The CPU's family, model and clock, where a result records them (since section 28)."""
    if "cpu_id" not in m:
        return ""
    # Not every CPU reports its clock in /proc/cpuinfo (ARM does not).
    mhz = f", {float(m['cpu_mhz']):.0f} MHz" if m.get("cpu_mhz") else ""
    return f", {m['cpu_id']}{mhz}"


def cluster_table(path: str, data: dict[str, Any]) -> list[str]:
    m, e = data["machine"], data.get("engines", {}).get("versions", {})
    out = [
        f"Source: `{path}` (`{CLUSTER_COMMAND}`{' --quick' if data.get('quick') else ''}, "
        f"commit {data.get('git')}, load at start {m.get('loadavg_at_start')}). Engines: "
        + ", ".join(f"{k} {v}" for k, v in e.items())
        + ".",
        "",
    ]
    return out + cluster_rows(data)


def cluster_rows(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    rows = []
    for c in data["cases"]:
        if c.get("placeholder"):
            rows.append([c["target"], c["bus"], fmt(c["nodes"]), "10,000 × 1,000/s"] + ["…"] * 8)
            continue
        if not c.get("runs"):
            why = "not measured: " + "; ".join(c["errors"])[:300]
            rows.append([c["target"], c["bus"], fmt(c["nodes"]), why] + [""] * 8)
            continue
        b = c.get("broadcast", {})
        rows.append(
            [
                c["target"],
                c["bus"],
                fmt(c["nodes"]),
                f"{fmt(c['streams'])} × {fmt(c['rate'], '/s')}"
                + (" (generator-limited)" if c.get("generator_limited") else ""),
                spread(c, "p50_ms", " ms"),
                spread(c, "p99_ms", " ms"),
                f"{fmt(c['lost'])} / {fmt(c['duplicates'])}",
                spread(c, "server_cpu_pct", " %"),
                spread(c, "server_cpu_us_per_notification", " µs"),
                spread(c, "engine_cpu_pct", " %"),
                spread(c, "bus_received_share"),
                f"{spread(b, 'last_ms', ' ms')}, lost {fmt(b.get('lost'))}",
            ]
        )
    head = [
        "target",
        "bus",
        "nodes",
        "streams × rate",
        "p50",
        "p99",
        "lost / dup",
        "server CPU (all nodes)",
        "server CPU / notification",
        "engine CPU",
        "bus share",
        "broadcast to all: last received",
    ]
    out += [*table(head, rows), ""]
    out += tail_rows(data)
    notes = sorted({c["bus_received_note"] for c in data["cases"] if c.get("bus_received_note")})
    out += [f"- bus share –: {n}" for n in notes]
    out += [f"- **{k}** not measured: {v}" for k, v in data.get("skipped", {}).items()]
    if notes or data.get("skipped"):
        out.append("")
    checks = data.get("criteria", [])
    if checks:
        rows = [
            [
                c["what"],
                measured(c["value"]),
                "–" if c["holds"] is None else ("yes" if c["holds"] else "no"),
            ]
            for c in checks
        ]
        head = ["target", "measured", "holds"]
        out += ["Issue 23's targets, on the medians above:", "", *table(head, rows), ""]
        if data.get("criteria_note"):
            out += [f"({data['criteria_note']})", ""]
    return out


def tail_rows(data: dict[str, Any]) -> list[str]:
    """Where the slowest 1 % of each case spent their time (bench/trace.py), when traced."""
    cases = [c for c in data["cases"] if c.get("tail_request_ms") is not None]
    if not cases:
        return []
    rows = [
        [
            c["target"],
            c["bus"],
            fmt(c["nodes"]),
            spread(c, "p99_ms", " ms"),
            spread(c, "tail_queued_ms", " ms"),
            spread(c, "tail_request_ms", " ms"),
            spread(c, "tail_answered_to_received_ms", " ms"),
            f"{spread(c, 'all_request_ms', ' ms')} / "
            f"{spread(c, 'all_answered_to_received_ms', ' ms')}",
            spread(c, "tail_top_window_share"),
            spread(c, "run_queue_wait_pct", " %"),
        ]
        for c in cases
    ]
    head = [
        "target",
        "bus",
        "nodes",
        "p99",
        "slowest 1 %: in the generator",
        "slowest 1 %: publish request",
        "slowest 1 %: answer to reader",
        "median: request / answer to reader",
        "slowest 1 % in the busiest 100 ms",
        "nodes' wait for a core",
    ]
    return [
        "Where the slowest 1 % spent their time (medians of the runs; `bench/trace.py`): the "
        "publish request is the publishing node, the store's commit and the announcement's "
        "write; answer to reader is the bus hop, the receiving node and the reader (below zero "
        "when the stream had it before the publisher had its answer). A tail bunched in one "
        "100 ms window is a stall; the nodes' wait for a core is the share of the rate window "
        "each node's threads were ready to run and waited (`/proc/PID/task/*/schedstat`).",
        "",
        *table(head, rows),
        "",
    ]


def _newest_with(
    pattern: str, key: str, row: str | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """The newest result file matching `pattern` that holds `key` (skips wrapper files), and
    with `row`, only one whose entries hold that row (a growth-only stores run holds none of
    the main table's)."""
    found: tuple[tuple[str, float], Path, dict[str, Any]] | None = None
    for path in RESULTS.glob(pattern):
        data = json.loads(path.read_text())
        value = data.get(key)
        # The coordinator's wrapper keeps the script's output as text; read the script's file.
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, dict) for v in value.values())
            and (row is None or any(row in v for v in value.values()))
        ):
            # By the date in the name (stores-2026-11-30, buses-20261130T040344), not the file's
            # time, which a checkout sets to the moment of the checkout.
            digits = "".join(ch for ch in path.stem if ch.isdigit()).ljust(14, "0")
            stamp = (digits, path.stat().st_mtime)
            if found is None or stamp > found[0]:
                found = (stamp, path, data)
    return None if found is None else (found[1], found[2])


def plots(latency: dict[str, Any] | None, idle: dict[str, Any] | None) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["(plots skipped: matplotlib is not installed; `pip install -e '.[bench]'`)", ""]
    PLOTS.mkdir(parents=True, exist_ok=True)
    out = []
    if latency:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, entry in targets(latency):
            by_streams: dict[int, list[tuple[int, float]]] = {}
            for r in entry.get("runs", []):
                if r["p99_ms"] is not None:
                    by_streams.setdefault(r["streams"], []).append((r["rate"], r["p99_ms"]))
            for n, pts in sorted(by_streams.items()):
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{name}, {n}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("notifications per second")
        ax.set_ylabel("p99 latency (ms)")
        ax.axhline(100, color="grey", linestyle=":", linewidth=1)
        ax.legend(fontsize=7)
        ax.set_title("p99 latency against publish rate (streams open)")
        fig.tight_layout()
        fig.savefig(PLOTS / "latency.png", dpi=110)
        plt.close(fig)
        out += ["![p99 latency against rate](../bench/results/latency.png)", ""]
    if idle:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, entry in targets(idle):
            pts = [(lv["opened"], lv["rss_mb"]) for lv in entry.get("levels", []) if "rss_mb" in lv]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xlabel("open streams")
        ax.set_ylabel("server RSS (MB)")
        ax.legend(fontsize=8)
        ax.set_title("server memory against open streams")
        fig.tight_layout()
        fig.savefig(PLOTS / "memory.png", dpi=110)
        plt.close(fig)
        out += ["![memory against open streams](../bench/results/memory.png)", ""]
    return out


INTRO = """\
# Benchmarks

tidings measured side by side, in one run on one machine, with the design it replaces, the raw
floor of SSE in Python, and the Go peers. Reproduce with `bench/run` (full, ≤ 22 min) or
`bench/run --quick` (≤ 5 min, small loads); `tidings bench …` is the same command. Results land
in `bench/results/<scenario>-<timestamp>.json` (machine, versions, configuration, every figure);
`python -m bench.report` renders this page from the newest file of each scenario.

**What is compared.** *tidings*: `tidings serve`, SQLite store, local bus. *floor*:
`bench/servers/floor.py`, a raw-ASGI SSE server with an in-memory queue per user and nothing else
(no auth check, store, replay or limits): the ratio tidings / floor is what the guarantees cost.
*polling*: `bench/servers/polling.py`, the replaced Laravel controller ported to Python on the same
uvicorn stack: the observer writes a cache row per notification, every stream scans the cache
table by key prefix and pulls what it finds every 2 s. *Centrifugo*: built from the Go module proxy
(`bench/peers.py`), unidirectional SSE, each user on their personal channel, publishing over its
HTTP API. *Mercure*: see the notes where it could not be installed.

**How.** Load generators are separate processes (`bench/loadgen.py`: raw asyncio sockets, uvloop,
HTTP/1.1 + chunked + SSE parsing), with real signed tokens, publishing over HTTP. A publish is
scheduled open-loop and stamped with its *scheduled* time in `data.t`; latency is receive time
minus that, on the same clock, so queueing in an overloaded server shows. Every publish carries a
unique `data.k`; a notification a stream never received is *lost*, one it received twice is a
*dup*. The publisher side is one schedule split round-robin over `ceil(rate / 1,000)` processes
(at most 4), so a rate above what one Python process can send still measures the server. Each
generator process reports its CPU share, and each row the generator's total CPU (all its
processes, % of one core, publisher processes in brackets); a row where a generator process used
more than 85 % of a core, or the publisher handed a publish out over 100 ms late, is marked
*generator-limited*. Server CPU and RSS come from `/proc` for the server's process tree; *server
CPU / notification* (CPU seconds over the rate's window divided by the notifications published,
heartbeats included) is the figure to compare changes by on a shared machine, where latency
suffers from every other process and CPU time much less.

**Scenarios** (`bench/run [SCENARIO…]`): `idle` (memory, idle CPU, store queries, loop stalls),
`latency` (rates at 1,000 and 10,000 streams), `broadcast`, `storm`, `profile` (py-spy, the CPU
budget per notification), `stores` (bench/stores.py), `buses` (tidings `--workers 2` on the Redis
and PostgreSQL buses, bench/buses.py). A full run takes about 20 minutes on this machine.
`cluster` (N nodes on Redis, a Redis Cluster, NATS; Centrifugo on Redis; bench/cluster.py) runs
only when named: `bench/run cluster`, see the Cluster section.

**Read with care.** The generator shares the machine's cores with the server, so absolute figures
are lower than on a dedicated box; compare ratios within one run. A `--quick` run uses small loads
and short windows, and its figures are indicative only.
"""


def render() -> str:
    idle, latency = newest("idle"), newest("latency")
    broadcast, storm = newest("broadcast"), newest("storm")
    profile = newest("profile")
    first = next((d for d in (idle, latency, broadcast, storm) if d), None)
    out = [INTRO]
    if first is not None:
        m, v = first["machine"], first["versions"]
        peers = first.get("peers", {})
        out += [
            "## Machine and versions",
            "",
            f"- {m['cores']} cores ({m['cpu']}{cpu_detail(m)}), {m['memory_gib']} GiB, "
            f"Linux {m['kernel']}, "
            f"open files {m['nofile'][0]}, somaxconn {m['somaxconn']}, load at start "
            f"{m['loadavg_at_start']}",
            f"- Python {v.get('python')}, uvicorn {v.get('uvicorn')}, uvloop {v.get('uvloop')}, "
            f"httptools {v.get('httptools')}, SQLite {v.get('sqlite')}, tidings {v.get('tidings')}"
            f" (commit {first.get('git')})",
            f"- Centrifugo: {v.get('centrifugo') or peers.get('centrifugo', 'not built')}",
            f"- Mercure: {peers.get('mercure', 'not attempted')}",
            f"- Run: {'--quick' if first.get('quick') else 'full'}",
            "",
        ]
    out += plots(latency, idle)
    for data, section in (
        (idle, idle_section),
        (latency, latency_section),
        (broadcast, broadcast_section),
        (storm, storm_section),
        (profile, profile_section),
    ):
        if data is not None:
            out += section(data)
    out += stores_section()
    out += cluster_section()
    # Hand-written sections, kept next to the harness so a new run does not erase them: the
    # SQLite durability levels (bench/sqlite_sync.py), the growth and soak scenarios (issue 22),
    # and which change moved which figure.
    for name in ("sqlite-durability.md", "growth-and-soak.md", "changes.md"):
        page = ROOT / "bench" / name
        if page.exists():
            out += ["", page.read_text().rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
