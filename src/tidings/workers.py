"""`tidings serve --workers N`: N server processes sharing one listening socket.

uvicorn's own supervisor builds a plain `uvicorn.Server` in each worker, which would lose the
drain on SIGTERM; this one is small enough to own. The parent binds the socket, starts N spawned
workers, each running the server `make_server` builds (so each drains its streams on SIGTERM),
starts a new worker when one dies, and on SIGTERM or SIGINT closes its copy of the socket, passes
SIGTERM to every worker and waits for them to drain and exit.
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


def _worker(make_server: MakeServer, config: uvicorn.Config, sock: socket.socket) -> None:
    """The body of one worker process (spawned: a fresh interpreter, so logging is set anew)."""
    config.configure_logging()
    server = make_server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def run_workers(config: uvicorn.Config, workers: int, make_server: MakeServer) -> int:
    """Serve with `workers` processes until SIGTERM/SIGINT; return the exit status."""
    context = multiprocessing.get_context("spawn")
    sock = config.bind_socket()
    stop = threading.Event()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def start() -> tuple[BaseProcess, float]:
        process = context.Process(
            target=_worker, args=(make_server, config, sock), name="tidings-worker"
        )
        process.start()
        log.info("Started worker process [%s]", process.pid)
        return process, time.monotonic()

    status = 0
    processes = [start() for _ in range(workers)]
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
            processes[index] = start()

    # Stop accepting here too, so new connections go to other nodes, not to a dead backlog.
    sock.close()
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
