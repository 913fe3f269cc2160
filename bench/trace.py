"""Split the slow notifications of a run: `python -m bench.trace FOLDER`.

With `BENCH_TRACE_DIR=FOLDER` each bench/loadgen.py process leaves there, per notification, what
it saw: the publisher the scheduled time, when the request went out, when its answer came and
the node it went to; a reader when (and from which node) the notification arrived. bench/cluster.py
traces every run this way and keeps `summarize`'s figures in the run as `tail`. They split the
slowest 1 % against all notifications into:

- `queued`: scheduled time to the request going out (the load generator's own lag);
- `request`: the publish request (the publishing node, the store's commit, the announce's write);
- `answered_to_received`: the answer to the reader (the bus hop, the receiving node, the reader;
  negative when the stream had it before the publisher had its answer);

and say whether the slow ones were delivered by the node that took their publish, which nodes
delivered them, and when in the schedule they came: a tail bunched in a few 100 ms windows is a
stall (one node, or the whole machine), one spread over the run is steady queueing for a core.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PARTS = ("lat", "queued", "request", "sent_to_received", "answered_to_received")


def load(folder: Path) -> list[dict[str, Any]]:
    """One row per notification published and received (the first receipt counts)."""
    pub: dict[int, tuple[float, float, float, int]] = {}
    recv: dict[int, tuple[float, int]] = {}
    for path in folder.glob("publish-*.jsonl"):
        for line in path.read_text().splitlines():
            for k, t, sent, answered, port in json.loads(line):
                pub[k] = (t, sent, answered, port)
    for path in folder.glob("receive-*.jsonl"):
        for line in path.read_text().splitlines():
            for k, now, port in json.loads(line):
                if k not in recv or now < recv[k][0]:
                    recv[k] = (now, port)
    rows = []
    for k, (t, sent, answered, port) in pub.items():
        if k not in recv:
            continue
        now, rport = recv[k]
        rows.append(
            {
                "lat": now - t,
                "queued": sent - t,
                "request": answered - sent,
                "sent_to_received": now - sent,
                "answered_to_received": now - answered,
                "same_node": port == rport,
                "t": t,
                "node": rport,
                "pub_node": port,
            }
        )
    rows.sort(key=lambda r: r["lat"])
    return rows


def _medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    out = {f"{p}_ms": round(statistics.median(r[p] for r in rows) * 1000, 2) for p in PARTS}
    out["same_node_share"] = round(sum(1 for r in rows if r["same_node"]) / len(rows), 3)
    return out


def summarize(folder: Path) -> dict[str, Any] | None:
    """The medians of each part for all notifications and for the slowest 1 %, and where and
    when the slowest 1 % came (None when nothing was traced)."""
    rows = load(folder)
    if len(rows) < 100:
        return None
    tail = rows[int(len(rows) * 0.99) :]
    t0 = min(r["t"] for r in rows)
    ports = sorted({r["node"] for r in rows})
    windows = Counter(int((r["t"] - t0) * 10) for r in tail)
    return {
        "traced": len(rows),
        "all": _medians(rows),
        "slowest_1pct": _medians(tail),
        # Per node (in the order of their ports), how many of the slowest 1 % it delivered
        # and how many it took the publish of.
        "slowest_by_receiving_node": [sum(1 for r in tail if r["node"] == p) for p in ports],
        "slowest_by_publishing_node": [sum(1 for r in tail if r["pub_node"] == p) for p in ports],
        # How many 100 ms windows of the schedule hold the slowest 1 %, and the busiest
        # window's share of them (1.0: one stall; small: spread over the run).
        "slowest_windows": len(windows),
        "slowest_top_window_share": round(max(windows.values()) / len(tail), 2),
    }


def main(folder: Path) -> None:
    rows = load(folder)
    summary = summarize(folder)
    if summary is None:
        print("fewer than 100 traced notifications")
        return
    print(json.dumps(summary, indent=1))
    t0 = min(r["t"] for r in rows)
    print("the slowest 15:")
    for r in rows[-15:]:
        print(
            f"  t+{r['t'] - t0:6.3f}s lat {r['lat'] * 1000:6.1f} queued {r['queued'] * 1000:5.1f} "
            f"request {r['request'] * 1000:6.1f} answered->received "
            f"{r['answered_to_received'] * 1000:6.1f} ms, node {r['pub_node']} -> {r['node']}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
