"""An SSE client that reconnects like a browser's EventSource, and records what it received.

It keeps the last `id:` it saw and sends it as `Last-Event-ID` when it reconnects, waits the
server's `retry:` before reconnecting (capped, so tests stay short), and records every
notification exactly as it arrives: a duplicate or a gap shows up in `seqs`, never hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse


@dataclass
class Received:
    seq: int
    message: str
    created_ms: int
    at: float  # time.time() when it arrived


@dataclass
class ReconnectingClient:
    base_url: str
    token: str
    verify: Any = True
    http2: bool = False
    last_event_id: str | None = None
    max_retry_s: float = 1.0
    # What a browser's watchdog does: a stream silent for this long is dead (heartbeat x 3).
    read_timeout: float = 45.0
    received: list[Received] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)
    connects: int = 0
    statuses: list[int] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def seqs(self) -> list[int]:
        return [r.seq for r in self.received]

    async def run(self) -> None:
        retry = 0.2
        timeout = httpx.Timeout(10, read=self.read_timeout)
        async with httpx.AsyncClient(
            timeout=timeout, verify=self.verify, http2=self.http2
        ) as client:
            while True:
                headers = {"authorization": f"Bearer {self.token}"}
                if self.last_event_id is not None:
                    headers["last-event-id"] = self.last_event_id
                try:
                    async with aconnect_sse(
                        client, "GET", f"{self.base_url}/notifications/stream", headers=headers
                    ) as source:
                        self.statuses.append(source.response.status_code)
                        if source.response.status_code == 200:
                            self.connects += 1
                            self.connected.set()
                            async for sse in source.aiter_sse():
                                if sse.retry is not None:
                                    retry = sse.retry / 1000
                                if sse.id:
                                    self.last_event_id = sse.id
                                self._handle(sse.event, sse.data)
                except (httpx.TransportError, httpx.HTTPStatusError):
                    pass
                await asyncio.sleep(min(retry, self.max_retry_s))

    def _handle(self, event: str, data: str) -> None:
        if event == "new-notification":
            body: dict[str, Any] = httpx.Response(200, content=data).json()
            created = body["created_at"]
            self.received.append(
                Received(body["id"], body["message"], _parse_ms(created), time.time())
            )
            self.changed.set()
        elif event == "reset":
            self.resets.append(data)
            self.changed.set()

    async def wait_for(self, count: int, timeout: float) -> None:
        """Until `count` notifications arrived (then returns), or `timeout` (then also returns)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)


def _parse_ms(iso: str) -> int:
    from datetime import datetime

    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
    epoch = datetime(1970, 1, 1)
    return int((moment - epoch).total_seconds() * 1000)


@contextlib.asynccontextmanager
async def running(*clients: ReconnectingClient, timeout: float = 15) -> AsyncIterator[None]:
    """Run the clients in the background; yield once each has its first stream open."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(c.run()) for c in clients]
        try:
            async with asyncio.timeout(timeout):
                for c in clients:
                    await c.connected.wait()
            yield
        finally:
            for task in tasks:
                task.cancel()
