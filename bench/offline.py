"""Publish while the server is down (the reconnect-storm scenario): `offline.py tidings|polling`.

Reads {"users": [...], "per_user": N, "k0": K} on stdin; publish number K+r (r < N) goes to every
user. tidings publishes through its own Python API (what `tidings send` does): the store is the
event log, so streams replay these on reconnect. The polling design's observer writes its cache
rows.
Prints how many notifications were stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time


async def tidings(spec: dict[str, object]) -> int:
    from tidings.models import Draft
    from tidings.service import build_service
    from tidings.settings import Settings

    settings = Settings.from_env(os.environ)
    users = tuple(str(u) for u in spec["users"])  # type: ignore[attr-defined]
    stored = 0
    async with build_service(settings).publishing() as service:
        for r in range(int(spec["per_user"])):  # type: ignore[call-overload]
            for i in range(0, len(users), settings.max_user_ids):
                data = {"t": time.time(), "k": int(spec["k0"]) + r}  # type: ignore[call-overload]
                draft = Draft(
                    user_ids=users[i : i + settings.max_user_ids], message="bench", data=data
                )
                result = await service.publish(draft)
                stored += len(result.notifications)
    return stored


def polling(spec: dict[str, object]) -> int:
    os.environ.setdefault("BENCH_POLLING_DB", "polling.db")
    from bench.servers import polling as server

    conn = server.db()
    stored = 0
    conn.execute("BEGIN IMMEDIATE")
    for r in range(int(spec["per_user"])):  # type: ignore[call-overload]
        for user in spec["users"]:  # type: ignore[attr-defined]
            data = {"t": time.time(), "k": int(spec["k0"]) + r}  # type: ignore[call-overload]
            note = {"_id": None, "user_id": str(user), "message": "bench", "data": data}
            server.observe_created(conn, note)
            stored += 1
    conn.execute("COMMIT")
    return stored


def main() -> None:
    spec = json.loads(sys.stdin.read())
    if sys.argv[1] == "tidings":
        print(asyncio.run(tidings(spec)))
    else:
        print(polling(spec))


if __name__ == "__main__":
    main()
