"""Real parts for tests: a tidings server in its own process on a free port, and SSE clients."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import jwt
from httpx_sse import aconnect_sse

SECRET = "test-secret-0123456789-abcdefghijklmnop"
PUBLISHER_KEY = "test-publisher-key"
# A process imports for seconds on a busy machine (two cores, several suites at once).
STARTUP_TIMEOUT = 60.0
# The message of the notification a test publishes to show that nothing else is on its way.
SENTINEL = "sentinel: nothing before me"


def wait_for_200(
    proc: subprocess.Popen[bytes], url: str, timeout: float, log: Callable[[], str]
) -> None:
    """Poll `url` until it answers 200; fail with the process's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tidings exited at start:\n{log()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"tidings did not answer 200 on {url} within {timeout}s:\n{log()}")


def cookieless_client() -> httpx.Client:
    """A client without a cookie jar: each request names its credential itself, and a session
    cookie remembered from an earlier response would override it."""
    return httpx.Client(
        timeout=10, cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    )


# One client for the whole test session: building one costs ~0.2 s (it loads the CA bundle).
# tests/conftest.py closes it at the end.
HTTP = cookieless_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_token(user_id: str, ttl: float = 3600, secret: str = SECRET, **claims: Any) -> str:
    body: dict[str, Any] = {"sub": user_id, "exp": int(time.time() + ttl), **claims}
    return jwt.encode(body, secret, algorithm="HS256")


def tidings_env(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        {
            "TIDINGS_DATABASE_URL": database_url,
            "TIDINGS_SECRET": SECRET,
            "TIDINGS_PUBLISHER_KEYS": PUBLISHER_KEY,
            "TIDINGS_HEARTBEAT": "15",
        }
    )
    env.update(extra or {})
    return env


def run_cli(
    env: Mapping[str, str], *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    """`tidings serve` in a subprocess; stop and start it again on the same database."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # Arguments of `tidings serve` besides the port, on every start.
    args: tuple[str, ...] = ()
    # What `start` waits for: /healthz (the process serves) or /readyz (its store and bus too).
    ready_path: str = "/healthz"
    start_timeout: float = STARTUP_TIMEOUT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, *extra_args: str) -> None:
        """Start the process without waiting (several at once start faster on a busy machine)."""
        assert self.proc is None or self.proc.poll() is not None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "tidings", "serve", "--port", str(self.port),
                    *self.args, *extra_args,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_ready(self) -> None:
        assert self.proc is not None
        wait_for_200(self.proc, f"{self.url}{self.ready_path}", self.start_timeout, self.log)

    def start(self, *extra_args: str) -> None:
        self.spawn(*extra_args)
        self.wait_ready()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> float:
        """Send `sig`, wait for the exit; return how long the process took to exit."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        return time.monotonic() - began

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def publish(self, user: str | list[str], message: str, **fields: Any) -> httpx.Response:
        body: dict[str, Any] = {"message": message, **fields}
        body["user_ids" if isinstance(user, list) else "user_id"] = user
        return HTTP.post(
            f"{self.url}/api/notifications",
            json=body,
            headers={"authorization": f"Bearer {PUBLISHER_KEY}"},
            timeout=10,
        )

    def listed(self, user: str) -> list[dict[str, Any]]:
        """The user's notifications as `GET /notifications` answers them (newest first)."""
        response = HTTP.get(
            f"{self.url}/notifications",
            headers={"authorization": f"Bearer {make_token(user)}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        answer: list[dict[str, Any]] = response.json()
        return answer

    def metric(self, name: str, labels: str = "") -> float:
        """The value of one sample of /metrics, e.g. metric("tidings_store_queries_total")."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        found = False
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            sample, _, sample_labels = key.partition("{")
            if sample == name and (not labels or labels in sample_labels):
                total += float(value)
                found = True
        if not found:
            return 0.0
        return total


@dataclass
class ThreadServer(Server):
    """The same app and HTTP as `Server`, served by uvicorn in a thread of the test process.

    Starting takes a tenth of a second, where a process spends seconds importing on a busy
    machine: for a test that does not kill or signal the process (its `proc` is None; `kill`
    and signals other than SIGTERM refuse). `stop()` is SIGTERM's path (the streams are drained,
    then uvicorn ends); `start` after it serves the same database on the same port again.
    Arguments: `--demo` only. The log holds the records of the server's own thread.
    """

    def __post_init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._uvicorn: Any = None
        self._handler: logging.Handler | None = None
        self._failure: BaseException | None = None
        self._gc_threshold: tuple[int, int, int] = gc.get_threshold()

    def spawn(self, *extra_args: str) -> None:
        import uvicorn

        from tidings.app import create_app
        from tidings.heads import bound_heads
        from tidings.logs import PlainFormatter
        from tidings.server import DrainingServer
        from tidings.settings import Settings

        assert self._thread is None or not self._thread.is_alive()
        args = [*self.args, *extra_args]
        if [a for a in args if a != "--demo"]:
            raise ValueError(f"a ThreadServer takes --demo only, not {args}: use a Server")
        settings = Settings.from_env(self.env, demo="--demo" in args)
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,  # the test process keeps its logging; see the handler below
            lifespan="on",
            timeout_graceful_shutdown=5,
            access_log=False,
        )
        bound_heads(config, settings)
        self._uvicorn = DrainingServer(config, app.service)
        for name in ("tidings", "uvicorn", "uvicorn.error"):
            logging.getLogger(name).setLevel(settings.log_level.upper())
        self._failure = None
        self._gc_threshold = gc.get_threshold()
        self._thread = threading.Thread(target=self._run, name=f"tidings-{self.port}", daemon=True)
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(PlainFormatter())
        thread = self._thread
        handler.addFilter(lambda record: record.thread == thread.ident)
        self._handler = handler
        logging.getLogger().addHandler(handler)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._uvicorn.run()
        except BaseException as exc:  # shown by wait_ready, with the log
            self._failure = exc
            raise

    def wait_ready(self) -> None:
        assert self._thread is not None
        url = f"{self.url}{self.ready_path}"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                self._detach_log()
                raise RuntimeError(f"tidings ended at start: {self._failure!r}\n{self.log()}")
            if self._uvicorn.started:
                with contextlib.suppress(httpx.TransportError):
                    if HTTP.get(url, timeout=2).status_code == 200:
                        # The server's start-up tuned the collector for a server process
                        # (stalls.settle): the test process keeps its own settings.
                        from tidings import stalls

                        stalls.unsettle(self._gc_threshold)
                        return
            time.sleep(0.01)
        raise RuntimeError(f"tidings did not answer 200 on {url} within {self.start_timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> float:
        """SIGTERM's path (drain, then end); returns how long the server took to end."""
        if sig not in (signal.SIGTERM, signal.SIGINT):
            raise ValueError(f"a ThreadServer takes no signal {sig}: use a Server")
        assert self._thread is not None
        began = time.monotonic()
        self._uvicorn.handle_exit(sig, None)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"tidings did not end within {timeout}s"
        self._detach_log()
        return time.monotonic() - began

    def kill(self) -> None:
        raise NotImplementedError("a thread cannot be killed: use a Server for this test")

    def open_streams(self) -> int:
        """The streams the server holds open, read in this process (no request, no garbage)."""
        assert self._uvicorn is not None
        return len(self._uvicorn.service.hub)

    def streams_written_directly(self) -> int:
        """Of those, the streams whose frames the hub may write to the connection itself."""
        assert self._uvicorn is not None
        return sum(sub.writer is not None for sub in self._uvicorn.service.hub.subscribers())

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.stop()
        self._detach_log()

    def _detach_log(self) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None


@contextlib.contextmanager
def serving(folder: Path, extra: Mapping[str, str] | None = None) -> Iterator[Server]:
    """A server on a new SQLite database in `folder`, for a module's tests to share.

    Its tests use users of their own. On the way out it must still publish and be ready, and its
    log must hold no traceback: whatever the tests sent, in whatever order they ran.
    """
    server = Server(
        env=tidings_env(f"sqlite:///{folder / 'tidings.db'}", extra),
        log_path=folder / "server.log",
    )
    server.start()
    try:
        yield server
        assert server.publish("after-the-module", "still here").status_code == 201
        assert HTTP.get(f"{server.url}/readyz", timeout=10).status_code == 200
        assert "Traceback" not in server.log(), server.log()
    finally:
        server.close()


@dataclass
class Event:
    event: str
    data: str
    id: str
    retry: int | None

    def json(self) -> Any:
        return json.loads(self.data)


class Stream:
    """An SSE client reading in the background; events land in a queue to await."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.status: int | None = None
        self.ended = asyncio.Event()
        self.opened = asyncio.Event()
        # Every `retry:` value the server sent, in order (a block with only retry is no event).
        self.retries: list[int] = []

    async def next(self, timeout: float = 5.0, *, skip_pings: bool = True) -> Event:
        while True:
            event = await asyncio.wait_for(self.events.get(), timeout)
            if skip_pings and event.event == "ping":
                continue
            return event

    async def notifications(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next `count` new-notification payloads (other events are skipped)."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            event = await self.next(max(0.01, deadline - time.monotonic()))
            if event.event == "new-notification":
                found.append(event.json())
        return found

    async def expect_sentinel(self, message: str = SENTINEL, timeout: float = 10.0) -> None:
        """The next event is the notification `message`: nothing came before it.

        How a test proves that something did not arrive: publish a sentinel after it (a stream
        sends a user's events in order) and wait for the sentinel, instead of a quiet window.
        """
        event = await self.next(timeout)
        assert event.event == "new-notification", event
        assert event.json()["message"] == message, event


async def publish_sentinel(server: Server, user: str, *streams: Stream) -> None:
    """Publish the sentinel to `user` and check it is the next event on each of `streams`."""
    response = await asyncio.to_thread(server.publish, user, SENTINEL)
    assert response.status_code == 201, response.text
    for stream in streams:
        await stream.expect_sentinel()


@contextlib.asynccontextmanager
async def open_stream(
    base_url: str,
    token: str | None,
    *,
    last_event_id: str | None = None,
    query: str = "",
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[Stream]:
    """Open the SSE stream and read it in a task until the block ends."""
    stream = Stream()
    sent_headers = dict(headers or {})
    if token is not None:
        sent_headers["authorization"] = f"Bearer {token}"
    if last_event_id is not None:
        sent_headers["last-event-id"] = last_event_id
    url = f"{base_url}/notifications/stream{query}"

    async def read() -> None:
        try:
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
                aconnect_sse(client, "GET", url, headers=sent_headers) as source,
            ):
                stream.status = source.response.status_code
                stream.opened.set()
                if source.response.status_code != 200:
                    return
                async for sse in source.aiter_sse():
                    if sse.retry is not None:
                        stream.retries.append(sse.retry)
                    if sse.event in ("", "message") and not sse.data:
                        continue
                    await stream.events.put(Event(sse.event, sse.data, sse.id, sse.retry))
        except httpx.TransportError:
            pass
        finally:
            stream.opened.set()
            stream.ended.set()

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(stream.opened.wait(), 10)
        yield stream
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def schedule_each(
    urls: Sequence[str], users: Sequence[str], due: str, tag: str, count: int
) -> None:
    """Schedule `count` publishes to `users`, all due at `due` (ISO 8601): message `m{i}`,
    idempotency key `{tag}-{i}`, the i-th through `urls[i % len(urls)]`; each answered 202."""
    async with httpx.AsyncClient(
        headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10
    ) as http:
        for i in range(count):
            response = await http.post(
                f"{urls[i % len(urls)]}/api/notifications",
                json={
                    "user_ids": list(users),
                    "message": f"m{i}",
                    "deliver_at": due,
                    "idempotency_key": f"{tag}-{i}",
                },
            )
            assert response.status_code == 202, response.text
