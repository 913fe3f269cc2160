"""A TCP proxy for browser tests that can stall: pause forwarding, resume it, drop connections.

What the browser client must survive, made on demand: a proxy or a network that stops passing
bytes without closing anything (pings held back, then delivered together; a connect nobody
answers) and one that cuts every connection. asyncio on 127.0.0.1, in its own thread, so a sync
Playwright test drives it between page actions.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from tests.support import free_port

T = TypeVar("T")

CONNECT_TIMEOUT = 5.0
# A request line, as a browser sends it (HTTP/1.1: no TLS and no HTTP/2 on 127.0.0.1). Searched
# to the line's end: on a kept-alive connection it follows the previous request's body (JSON, with
# no newline) on the same line.
REQUEST_LINE = re.compile(rb"(GET|POST|PUT|DELETE|OPTIONS|HEAD) (\S+) HTTP/1\.[01]\r$")


class _Link:
    """One client connection and its upstream: bytes held in each direction while paused."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.to_upstream = bytearray()
        self.to_client = bytearray()

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class PausingProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`; see pause(), resume(), drop()."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.requests: list[tuple[str, str]] = []  # (method, path) as the browser sent them
        self._paused = False
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PausingProxy:
        self._thread.start()
        self._server = self._run(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._run(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    # --- control, from the test's thread ---------------------------------------------------------

    def pause(self) -> None:
        """Stop forwarding: what either side sends is held; new connections are accepted too."""
        self._call(self._set_paused, True)

    def resume(self) -> None:
        """Forward again: first what was held, in one write per direction (it arrives together)."""
        self._call(self._set_paused, False)

    def drop(self) -> None:
        """Cut every open connection (a reset, as when a proxy or NAT forgets them)."""
        self._call(self._drop)

    def held_count(self, needle: bytes) -> int:
        """How often `needle` occurs in what is held for the browser (e.g. b"event: ping")."""
        return self._call(lambda: sum(link.to_client.count(needle) for link in self._links))

    def count(self, path_prefix: str) -> int:
        return sum(1 for _, path in list(self.requests) if path.startswith(path_prefix))

    def wait_held(self, needle: bytes, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.held_count(needle) < count:
            assert time.monotonic() < deadline, f"{needle!r} held {self.held_count(needle)}x"
            time.sleep(0.05)

    def wait_requests(self, path_prefix: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count(path_prefix) < count:
            assert time.monotonic() < deadline, f"{count} x {path_prefix}? {self.requests}"
            time.sleep(0.05)

    # --- the proxy, in its loop ------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONNECT_TIMEOUT)

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        async def call() -> T:
            return fn(*args)

        return self._run(call())

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if paused:
            return
        for link in self._links:
            for writer, held in ((link.upstream, link.to_upstream), (link.client, link.to_client)):
                if held:
                    writer.write(bytes(held))
                    held.clear()

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=CONNECT_TIMEOUT)
        if self._server is not None:
            await self._server.wait_closed()

    def _drop(self) -> None:
        for link in self._links:
            link.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(link, reader, up_writer, link.to_upstream, True))
                tg.create_task(self._pump(link, up_reader, writer, link.to_client, False))
        except* (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(link)
            link.abort()

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        held: bytearray,
        from_browser: bool,
    ) -> None:
        lines = b""
        while chunk := await reader.read(65536):
            if from_browser:
                # Request lines, also of later requests on a kept-alive connection.
                lines = (lines + chunk)[-65536:]
                *complete, lines = lines.split(b"\n")
                for line in complete:
                    match = REQUEST_LINE.search(line)
                    if match:
                        self.requests.append((match[1].decode(), match[2].decode()))
            if self._paused or held:
                held.extend(chunk)
            else:
                writer.write(chunk)
                await writer.drain()
        # One side closed: close the other (a half-close is not what these tests are about).
        link.abort()
