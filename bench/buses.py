"""The shared buses under `tidings serve --workers 2`, on the same generator as the other scenarios.

    bench/run buses            # or: python -m bench.buses [--quick]

For each shared bus (Redis pub/sub, PostgreSQL LISTEN/NOTIFY) one `tidings serve --workers 2`
with the PostgreSQL store (a fresh database per case, so the bus is the only difference between
cases) is driven exactly like the latency scenario: streams opened from reader processes, an
open-loop publisher schedule split over publisher processes, each rate until p99 reaches 100 ms.
A publish lands on whichever worker accepted its connection and reaches the streams held by the
other worker through the bus. The one-process local-bus figures to compare with are the latency
scenario's. PostgreSQL and Redis come from `scripts/services up` (started here when not set).
"""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import common
from bench.targets import Tidings

WORKERS = 2


class TidingsOnBus(Tidings):
    def __init__(self, bus: str, bus_url: str, database_url: str) -> None:
        super().__init__()
        self.name = f"tidings-{bus}"
        self.label = f"tidings --workers {WORKERS} ({bus} bus, PostgreSQL store)"
        self.bus_url = bus_url
        self.database_url = database_url
        self.multi_process_reason = None

    def env(self, workdir: Path) -> dict[str, str]:
        env = super().env(workdir)
        env["TIDINGS_DATABASE_URL"] = self.database_url
        env["TIDINGS_BUS_URL"] = self.bus_url
        return env


def scenario_buses(cfg: Any, work: Path) -> dict[str, Any]:
    from bench.main import latency_levels
    from bench.stores import fresh, services_env

    urls = services_env(("postgres", "redis"))
    missing = [k for k in ("postgres", "redis") if k not in urls]
    if missing:
        return {"skipped": f"no {' and '.join(missing)} server (scripts/services up)"}
    cases: dict[str, Any] = {}
    tag = secrets.token_hex(3)
    channel = f"bench_{tag}"
    buses = {
        "redis": f"{urls['redis']}?channel={channel}",
        "postgres": f"{urls['postgres']}?channel={channel}",
    }
    with tempfile.TemporaryDirectory(prefix="tidings-bench-buses-") as tmp:
        for bus, bus_url in buses.items():
            with fresh("postgres", urls["postgres"], Path(tmp)) as database_url:
                target = TidingsOnBus(bus, bus_url, database_url)
                try:
                    cases[bus] = {
                        "label": target.label,
                        "workers": WORKERS,
                        **latency_levels(target, cfg, work, cfg.buses, WORKERS, f"{bus}-{tag}-"),
                    }
                except Exception as exc:
                    common.log(f"  {target.name} failed: {exc!r}")
                    cases[bus] = {"label": target.label, "error": repr(exc)[:2000]}
    return {"cases": cases}


def main(argv: list[str]) -> int:
    from bench.main import main as run

    return run(["buses", "--no-install", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
