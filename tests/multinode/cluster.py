"""Several `tidings serve` processes on one store and one bus, and a publisher for them."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support import PUBLISHER_KEY, Server, tidings_env

START_TIMEOUT = 60.0


@dataclass
class Node(Server):
    """One node of a cluster: ready once its store answers and its bus subscription is live."""

    ready_path: str = "/readyz"
    start_timeout: float = START_TIMEOUT

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> float:
        # A node drains its streams under load on a busy machine: give it longer.
        return super().stop(sig, timeout)

    def streams_open(self) -> float:
        return self.metric("tidings_streams_open")


class Cluster:
    def __init__(self, tmp_path: Path, database_url: str, bus_url: str, **settings: str) -> None:
        extra = {
            "TIDINGS_BUS_URL": bus_url,
            # Short retries keep reconnect-heavy tests short; the drain still spreads them.
            "TIDINGS_RETRY_MS": "500",
            "TIDINGS_DRAIN_RETRY_MAX_MS": "1000",
            **{f"TIDINGS_{k.upper()}": v for k, v in settings.items()},
        }
        self.env = tidings_env(database_url, extra)
        self.tmp_path = tmp_path
        self.nodes: list[Node] = []

    def start(self, count: int, *args: str) -> list[Node]:
        new = [
            Node(
                env=self.env, log_path=self.tmp_path / f"node-{len(self.nodes) + i}.log", args=args
            )
            for i in range(count)
        ]
        self.nodes.extend(new)
        for node in new:  # start together: start-up is slow on a busy machine
            node.spawn()
        for node in new:
            node.wait_ready()
        return new

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def logs(self) -> str:
        return "\n".join(f"--- {n.log_path.name}\n{n.log()[-3000:]}" for n in self.nodes)


class Publisher:
    """Publishes like a careful app: an idempotency key per message, retried until stored."""

    def __init__(self, **client: Any) -> None:
        self.client = httpx.AsyncClient(
            headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=5, **client
        )
        self.stored: dict[str, list[int]] = {}
        self.attempts = 0
        self.failures = 0
        self.last_failure = ""

    async def publish(self, base_url: str | list[str], user: str, message: str) -> int:
        """Store one notification; returns its seq. `base_url` may be a list to rotate over."""
        urls = base_url if isinstance(base_url, list) else [base_url]
        for attempt in range(200):
            url = urls[(self.attempts + attempt) % len(urls)]
            self.attempts += 1
            try:
                response = await self.client.post(
                    f"{url}/api/notifications",
                    json={"user_id": user, "message": message, "idempotency_key": message},
                )
            except httpx.TransportError as exc:
                response = None
                self.last_failure = f"{url}: {exc!r}"
            # 200 is an idempotent replay: an earlier attempt was stored, its answer was lost.
            if response is not None and response.status_code in (200, 201):
                seq: int = response.json()["id"]
                self.stored.setdefault(user, []).append(seq)
                return seq
            if response is not None:
                self.last_failure = f"{url}: {response.status_code} {response.text[:300]}"
            self.failures += 1
            await asyncio.sleep(0.1)
        raise AssertionError(f"could not publish {message!r}; last: {self.last_failure}")

    async def aclose(self) -> None:
        await self.client.aclose()
