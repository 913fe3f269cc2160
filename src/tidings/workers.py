"""`tidings serve --workers N`: N server processes on one port, each with its own socket.

uvicorn's own supervisor builds a plain `uvicorn.Server` in each worker, which would lose the
drain on SIGTERM; this one is small enough to own. The parent checks that the port is free,
starts N spawned workers, each binding its own listening socket with SO_REUSEPORT (so the kernel
spreads new connections evenly and no worker runs into its open-file limit while another idles,
as happens when they all accept from one shared socket) and running the server `make_server`
builds (so each drains its streams on SIGTERM). It starts a new worker in the same slot when one
dies, and on SIGTERM or SIGINT passes SIGTERM to every worker and waits for them to drain and
exit. Each worker knows its slot, so the local bus can reach its siblings (tidings.bus.local).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

__all__ = ["run_workers"]

# Builds a worker's server from the config (picklable: workers are spawned).
MakeServer = Callable[[uvicorn.Config], uvicorn.Server]

log = logging.getLogger("uvicorn.error")

# A worker exiting with this code never started (bad configuration): starting another is futile.
STARTUP_FAILURE = 3
# Grace beyond uvicorn's own shutdown timeout before a worker that hangs is killed.
EXIT_GRACE = 10.0
# A worker that dies within this many seconds of its start is not restarted at once.
RESTART_PAUSE = 1.0
# How often a worker checks that its parent is still there.
PARENT_CHECK_SECONDS = 1.0


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _free_port(host: str, port: int) -> int:
    """The port to serve on, checked free: a plain bind, so a server already listening there
    (another tidings with its SO_REUSEPORT sockets included) is an error, not a silent share."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return int(probe.getsockname()[1])


def _listen(config: uvicorn.Config) -> socket.socket:
    sock = socket.socket(_family(config.host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((config.host, config.port))
    sock.listen(config.backlog)
    return sock


def _exit_with_parent() -> None:
    """Drain and exit when the parent dies without stopping us (SIGKILL, a crash): an orphan
    would keep serving on the port alone, and a restarted server would find the port taken."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tidings-parent-watch", daemon=True).start()


def _worker(make_server: MakeServer, config: uvicorn.Config, slot: int, workers: int) -> None:
    """The body of one worker process (spawned: a fresh interpreter, so logging is set anew)."""
    from tidings.bus import local

    config.configure_logging()
    _exit_with_parent()
    # Before the app (and its bus) is built: the local bus reaches the sibling slots.
    local.join_workers(slot, workers)
    try:
        sock = _listen(config)
    except OSError as exc:
        log.error("Worker %d could not listen on %s:%d: %s", slot, config.host, config.port, exc)
        sys.exit(STARTUP_FAILURE)
    server = make_server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def run_workers(config: uvicorn.Config, workers: int, make_server: MakeServer) -> int:
    """Serve with `workers` processes until SIGTERM/SIGINT; return the exit status."""
    context = multiprocessing.get_context("spawn")
    try:
        config.port = _free_port(config.host, config.port)
    except OSError as exc:
        log.error("%s", exc)  # e.g. "[Errno 98] Address already in use", as uvicorn says it
        return 1
    stop = threading.Event()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def start(slot: int) -> tuple[BaseProcess, float]:
        process = context.Process(
            target=_worker, args=(make_server, config, slot, workers), name="tidings-worker"
        )
        process.start()
        log.info("Started worker process [%s]", process.pid)
        return process, time.monotonic()

    status = 0
    processes = [start(slot) for slot in range(workers)]
    log.info("Started parent process [%s] with %d workers", os.getpid(), workers)
    while not stop.wait(0.5):
        for index, (process, began) in enumerate(processes):
            if process.is_alive():
                continue
            if process.exitcode == STARTUP_FAILURE:
                log.error("Worker [%s] failed to start; stopping", process.pid)
                status = 1
                stop.set()
                break
            log.warning(
                "Worker [%s] died (exit %s); starting another", process.pid, process.exitcode
            )
            if time.monotonic() - began < RESTART_PAUSE:
                time.sleep(RESTART_PAUSE)
            processes[index] = start(index)

    for process, _ in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + (config.timeout_graceful_shutdown or 0) + EXIT_GRACE
    for process, _ in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.error("Worker [%s] did not exit in time; killing it", process.pid)
            process.kill()
            process.join()
    log.info("Stopped parent process [%s]", os.getpid())
    return status
