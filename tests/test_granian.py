"""tidings served by Granian (`tidings.granian_app`): the same guarantees as under uvicorn.

Under Granian none of uvicorn's internals are there (the one-write answer, a stream's frames
written straight to its transport, the request-head guard): every path takes its plain-ASGI
fallback. So the stream's own tests run here again, imported from their modules, against a
Granian-served app; the fixtures below replace the ones they use (`shared`, `server`,
`make_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ServerFactory
from tests.support import HTTP, Server, make_token, tidings_env

# An extra (tidings[granian]); `dev` installs it, so the suite and CI always run these.
pytest.importorskip("granian", reason="tidings[granian] is not installed")

# Re-run against Granian: pytest collects what a module imports, with this module's fixtures.
from tests.test_shutdown import hold_stream
from tests.test_smoke import (
    test_a_notification_reaches_both_streams_of_its_user_and_no_other,
)
from tests.test_stream import (
    alice,
    bob,
    test_a_deletion_reaches_every_stream_of_the_user,
    test_an_idle_stream_makes_no_store_query_and_gets_a_ping_every_heartbeat,
    test_each_notification_reaches_every_stream_of_its_user_only,
    test_mark_read_reaches_every_stream_and_respects_up_to,
    test_no_duplicate_and_no_gap_at_the_seam_while_publishing,
    test_resume_replays_exactly_what_follows_then_continues_live,
    test_streams_past_the_per_user_cap_get_429,
)

pytestmark = pytest.mark.anyio

__all__ = [
    "alice",
    "bob",
    "test_a_deletion_reaches_every_stream_of_the_user",
    "test_a_notification_reaches_both_streams_of_its_user_and_no_other",
    "test_an_idle_stream_makes_no_store_query_and_gets_a_ping_every_heartbeat",
    "test_each_notification_reaches_every_stream_of_its_user_only",
    "test_mark_read_reaches_every_stream_and_respects_up_to",
    "test_no_duplicate_and_no_gap_at_the_seam_while_publishing",
    "test_resume_replays_exactly_what_follows_then_continues_live",
    "test_streams_past_the_per_user_cap_get_429",
]


@dataclass
class GranianServer(Server):
    """`granian --interface asgi --factory tidings.granian_app:create` in a subprocess."""

    def spawn(self, *extra_args: str) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
                    "--port", str(self.port), "--http", "1", "--no-ws", "--loop", "uvloop",
                    "--workers-kill-timeout", "10", *self.args, *extra_args,
                    "tidings.granian_app:create",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own group: Granian's worker is a child process, which a kill of the main
                # process alone would leave running (and serving).
                start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        self._kill_group()
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc is not None:
            self._kill_group()
            self.proc.wait(timeout=10)

    def _kill_group(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """As tests/test_stream.py's `shared`, served by Granian."""
    folder = tmp_path_factory.mktemp("granian")
    env = {"TIDINGS_HEARTBEAT": "0.5", "TIDINGS_MAX_STREAMS_PER_USER": "2"}
    server = GranianServer(
        env=tidings_env(f"sqlite:///{folder / 'tidings.db'}", env),
        log_path=folder / "server.log",
    )
    server.start()
    try:
        # Served by Granian, not by a uvicorn that something else started.
        assert HTTP.get(f"{server.url}/healthz").headers["server"] == "granian"
        yield server
        assert server.publish("after-the-module", "still here").status_code == 201
        assert "Traceback" not in server.log(), server.log()
    finally:
        server.close()


@pytest.fixture
def server(shared: Server) -> Server:
    return shared


@pytest.fixture
def make_server(tmp_path: Path, database_url: str) -> Iterator[ServerFactory]:
    started: list[Server] = []

    def make(*args: str, **env: str) -> Server:
        extra = {f"TIDINGS_{k.upper()}": v for k, v in env.items()}
        server = GranianServer(
            env=tidings_env(database_url, extra), log_path=tmp_path / f"server-{len(started)}.log"
        )
        started.append(server)
        server.start(*args)
        return server

    yield make
    for server in started:
        server.close()


async def test_sigterm_ends_each_stream_with_a_retry_and_granian_exits(
    make_server: ServerFactory,
) -> None:
    """Granian waits for every connection to end before it stops the app: without the drain
    on its signal (`tidings.granian_app`) a stream would hold the worker until it is killed."""
    server = make_server()
    count = 50
    opening = asyncio.Semaphore(50)
    opened: list[int] = []
    streams = [
        asyncio.create_task(hold_stream(server.port, make_token(f"user{i % 5}"), opening, opened))
        for i in range(count)
    ]
    deadline = time.monotonic() + 30
    while len(opened) < count:
        assert time.monotonic() < deadline, f"only {len(opened)} streams opened"
        await asyncio.sleep(0.05)

    took = await asyncio.to_thread(server.stop)
    responses = await asyncio.wait_for(asyncio.gather(*streams), 10)

    assert took < 5.0, f"Granian took {took:.1f}s to exit"
    assert server.proc is not None
    assert server.proc.returncode == 0, server.log()
    for response in responses:
        assert response.complete, response.events
        assert len(response.retries) == 2, response.events
        assert 500 <= response.retries[1] <= 1000
    assert "Traceback" not in server.log(), server.log()


def refused(tmp_path: Path, extra: dict[str, str], *args: str) -> str:
    """Start Granian with settings it must refuse; its log, once it has exited non-zero with
    one line, as from `tidings serve`, not a traceback per worker."""
    server = GranianServer(
        env=tidings_env(f"sqlite:///{tmp_path / 'tidings.db'}", extra),
        log_path=tmp_path / "server.log",
    )
    server.spawn(*args)
    try:
        assert server.proc is not None
        server.proc.wait(timeout=30)
    finally:
        server.close()
    assert server.proc.returncode != 0
    assert "Traceback" not in server.log(), server.log()
    return server.log()


@pytest.mark.parametrize("bus", [None, " LOCAL://"], ids=["default", "spelled-otherwise"])
def test_granian_workers_on_the_local_bus_are_refused(tmp_path: Path, bus: str | None) -> None:
    """Several Granian workers would each bind the local bus's one socket: refused, not served
    with publishes that miss the streams of the other workers (however the URL is spelled that
    the bus reads as local)."""
    extra = {} if bus is None else {"TIDINGS_BUS_URL": bus}
    log = refused(tmp_path, extra, "--workers", "2")
    assert "Granian's --workers needs a shared bus" in log


def test_a_bus_url_it_cannot_serve_is_one_line_and_no_traceback(tmp_path: Path) -> None:
    """The bus's factory refuses the URL when the app is made: said as `tidings serve` says it."""
    log = refused(tmp_path, {"TIDINGS_BUS_URL": "foo://x"})
    assert "tidings: TIDINGS_BUS_URL: unsupported scheme 'foo'" in log, log
