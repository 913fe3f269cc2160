"""`TIDINGS_BACKLOG`: how many connections the kernel queues for `tidings serve` before it
accepts them. A real server is paused (SIGSTOP, so it accepts nothing) and connected to: the
kernel completes the handshakes its queue has room for (backlog + 1 on Linux) and drops the next
ones, which a client sees as a connect that does not finish."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import STARTUP_TIMEOUT, free_port, tidings_env, wait_for_200

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux's accept queue")

BACKLOG = 3


def test_serve_queues_as_many_connections_as_the_backlog_allows(tmp_path: Path) -> None:
    env = tidings_env(f"sqlite:///{tmp_path / 'tidings.db'}", {"TIDINGS_BACKLOG": str(BACKLOG)})
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    socks: list[socket.socket] = []
    try:
        wait_for_200(proc, f"http://127.0.0.1:{port}/healthz", STARTUP_TIMEOUT, log_path.read_text)
        os.kill(proc.pid, signal.SIGSTOP)
        outcomes = []
        for _ in range(BACKLOG + 3):
            sock = socket.socket()
            socks.append(sock)
            sock.settimeout(0.5)
            try:
                sock.connect(("127.0.0.1", port))
                outcomes.append("queued")
            except TimeoutError:
                outcomes.append("dropped")
        # uvicorn's own default (2048) would have queued them all.
        assert outcomes == ["queued"] * (BACKLOG + 1) + ["dropped"] * 2, outcomes
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        for sock in socks:
            sock.close()
        proc.kill()
        proc.wait(timeout=10)
