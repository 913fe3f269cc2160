"""Several `tidings serve` processes on one store and one bus, and a publisher for them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import PUBLISHER_KEY, free_port, tidings_env, wait_for_200

START_TIMEOUT = 60.0


@dataclass
class Node:
    """One tidings process, started again on the same port after a stop or a kill."""

    env: dict[str, str]
    log_path: Path
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tidings", "serve", "--port", str(self.port), *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until /readyz answers 200: the store answers and the bus subscription is live."""
        assert self.proc is not None
        wait_for_200(self.proc, f"{self.url}/readyz", timeout, self.log)

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def stop(self, timeout: float = 30) -> float:
        """SIGTERM and wait for the exit; return how long the drain took."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.terminate()
        self.proc.wait(timeout=timeout)
        return time.monotonic() - began

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def streams_open(self) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("tidings_streams_open "):
                return float(line.split()[1])
        return 0.0


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
            Node(self.env, self.tmp_path / f"node-{len(self.nodes) + i}.log", args)
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
            except httpx.TransportError:
                response = None
            # 200 is an idempotent replay: an earlier attempt was stored, its answer was lost.
            if response is not None and response.status_code in (200, 201):
                seq: int = response.json()["id"]
                self.stored.setdefault(user, []).append(seq)
                return seq
            self.failures += 1
            await asyncio.sleep(0.1)
        raise AssertionError(f"could not publish {message!r}")

    async def aclose(self) -> None:
        await self.client.aclose()
