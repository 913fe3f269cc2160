"""SQLite publish throughput with `synchronous = NORMAL` against `FULL`, in one run.

    .venv/bin/python -m bench.sqlite_sync [--count 2000] [--rounds 3]

The store API as `bench.stores` measures it (one publisher in sequence, then 16 concurrent
publishers over 16 users, group-committed), on a fresh database per level and round, the two
levels alternating round by round so a busy neighbour on a shared machine weighs on both alike.
Writes bench/results/sqlite-sync-<date>.json; compare the levels within one file.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sqlite3
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.stores import measure_single
from tidings.store.sqlite import SYNCHRONOUS, SqliteStore

RESULTS = Path(__file__).resolve().parent / "results"


async def one(path: Path, level: str, count: int) -> dict[str, float]:
    store = SqliteStore(str(path), synchronous=level)
    await store.open()
    try:
        return await measure_single(store, count)
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_sync")
    parser.add_argument("--count", type=int, default=2000, help="publishes per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {level: [] for level in SYNCHRONOUS}
    # On disk next to the results, not in a tmpfs where a sync costs nothing.
    with tempfile.TemporaryDirectory(prefix="sqlite-sync-", dir=RESULTS) as tmp:
        for r in range(args.rounds):
            for level in SYNCHRONOUS if r % 2 == 0 else tuple(reversed(SYNCHRONOUS)):
                path = Path(tmp) / f"{level}-{r}.db"
                runs[level].append(asyncio.run(one(path, level, args.count)))
                print(level, runs[level][-1], flush=True)
    summary: dict[str, Any] = {}
    for level, found in runs.items():
        summary[level] = {
            name: round(statistics.median(r[name] for r in found), 1)
            for name in ("sequential_per_s", "concurrent16_per_s")
        }
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "note": "shared with other jobs while measured: compare the levels, not the figures",
        },
        "sqlite": sqlite3.sqlite_version,
        "count": args.count,
        "rounds": runs,
        "median": summary,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"sqlite-sync-{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
