"""The servers compared, each started the same way and driven by the same generator.

A target knows how to start its server, how a browser opens a stream on it, how a publisher
publishes to one user and to many, and (where it has one) how to read its store-query counter.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from bench import common

SECRET = "bench-" + secrets.token_hex(24)
PUBLISHER_KEY = "bench-publisher-" + secrets.token_hex(8)
PYTHON = sys.executable
# One process holds at most ~19,986 sockets (the open-file limit): leave room for its own files.
PER_PROCESS = 19_000


def token(user: str, ttl: int = 7200) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + ttl}, SECRET, algorithm="HS256")


@dataclass
class Server:
    target: Target
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    workers: int
    startup_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self, graceful: bool = True) -> None:
        common.stop(self.proc, 15 if graceful else 9)

    def sample(self) -> dict[str, float]:
        return common.sample(self.proc.pid)

    def queries(self) -> float | None:
        return self.target.queries(self)


class Target:
    name = ""
    label = ""
    has_store = True
    multi_process_reason: str | None = None  # why it cannot span processes, if it cannot
    durable_reason: str | None = None  # why publishing while it is down cannot work, if not
    ready_path = "/healthz"
    opt_in = False  # True: runs only when --targets names it

    def available(self) -> str | None:
        """None when it can run here, else why not."""
        return None

    def version(self) -> str:
        return ""

    def start(self, workdir: Path, workers: int = 1, fresh: bool = True, port: int = 0) -> Server:
        raise NotImplementedError

    def _launch(
        self, argv: list[str], env: dict[str, str], workdir: Path, workers: int, port: int
    ) -> Server:
        proc = common.spawn(argv, env=env, log_path=workdir / f"{self.name}.log", cwd=common.ROOT)
        server = Server(self, proc, port, workdir, workers)
        try:
            server.startup_s = common.wait_http(port, self.ready_path, 60, proc)
        except RuntimeError:
            server.stop(False)
            raise
        return server

    def stream(self, user: str) -> dict[str, Any]:
        return {
            "user": user,
            "path": "/notifications/stream",
            "headers": {"Authorization": f"Bearer {token(user)}"},
        }

    def publish_template(self) -> dict[str, Any]:
        return {
            "method": "POST",
            "path": "/api/notifications",
            "headers": {"Authorization": f"Bearer {PUBLISHER_KEY}"},
            "body": '{"user_id": "__USER__", "message": "bench", "data": {"t": __T__, "k": __K__}}',
        }

    def broadcast(self, server: Server, users: list[str], k: int) -> tuple[int, float]:
        """One publish to every user in `users`; returns (status, the stamped send time)."""
        t = time.time()
        body = json.dumps({"user_ids": users, "message": "bench", "data": {"t": t, "k": k}})
        status, _ = common.request(
            server.port,
            "POST",
            "/api/notifications",
            body.encode(),
            {"Authorization": f"Bearer {PUBLISHER_KEY}", "Content-Type": "application/json"},
            timeout=120,
        )
        return status, t

    def queries(self, server: Server) -> float | None:
        try:
            status, body = common.request(server.port, "GET", "/metrics", timeout=10)
        except OSError:
            return None
        if status != 200:
            return None
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith("tidings_store_queries_total"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def publish_offline(self, server: Server, users: list[str], per_user: int, k0: int) -> int:
        """Publish `per_user` notifications to each user while the server is down."""
        raise NotImplementedError


def _offline(kind: str, env: dict[str, str], users: list[str], per_user: int, k0: int) -> int:
    """Run bench.offline for `kind` (a server that is down); return how many it stored."""
    spec = json.dumps({"users": users, "per_user": per_user, "k0": k0})
    out = subprocess.run(
        [PYTHON, "-m", "bench.offline", kind],
        input=spec.encode(),
        env=env,
        capture_output=True,
        timeout=600,
        cwd=common.ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.decode()[-2000:])
    return int(out.stdout.decode().strip() or 0)


def _uvicorn(app: str, port: int, workers: int) -> list[str]:
    argv = [PYTHON, "-m", "uvicorn", app, "--host", common.HOST, "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level"]
    argv += ["warning", "--timeout-graceful-shutdown", "3"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return argv


class Tidings(Target):
    name = "tidings"
    label = "tidings (SQLite, local bus)"

    def __init__(self) -> None:
        # Empty: the local bus, which also joins the workers of `--workers N` (one machine).
        self.bus_url = os.environ.get("BENCH_TIDINGS_BUS_URL", "")

    def version(self) -> str:
        return common.versions().get("tidings", "")

    def env(self, workdir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        env.update(
            TIDINGS_DATABASE_URL=f"sqlite:///{workdir / 'tidings.db'}",
            TIDINGS_SECRET=SECRET,
            TIDINGS_PUBLISHER_KEYS=PUBLISHER_KEY,
            # Collector pauses of 5 ms or more in the log, read by the idle scenario's stall probe.
            TIDINGS_DEBUG_STALLS="5",
        )
        if self.bus_url:
            env["TIDINGS_BUS_URL"] = self.bus_url
        # An A/B of the SQLite commit window (docs/benchmarks.md, section 8).
        window = os.environ.get("BENCH_TIDINGS_SQLITE_COMMIT_WINDOW_MS")
        if window:
            env["TIDINGS_SQLITE_COMMIT_WINDOW_MS"] = window
        # Any other setting for an A/B: BENCH_TIDINGS_ENV="TIDINGS_SQLITE_SYNCHRONOUS=NORMAL,…".
        for pair in filter(None, os.environ.get("BENCH_TIDINGS_ENV", "").split(",")):
            name, _, value = pair.partition("=")
            env[name.strip()] = value.strip()
        return env

    def start(self, workdir: Path, workers: int = 1, fresh: bool = True, port: int = 0) -> Server:
        if fresh:
            for p in workdir.glob("tidings.db*"):
                p.unlink()
        port = port or common.free_port()
        exe = str(Path(PYTHON).parent / "tidings")
        argv = [exe, "serve", "--port", str(port), "--log-level", "warning"]
        # BENCH_TIDINGS_WORKERS=2: a scenario that runs one process (broadcast, storm) runs
        # `--workers 2` instead, both cores as the Go peers use them; reported as its own run.
        workers = max(workers, int(os.environ.get("BENCH_TIDINGS_WORKERS", "1")))
        if workers > 1:
            argv += ["--workers", str(workers)]
        return self._launch(argv, self.env(workdir), workdir, workers, port)

    def publish_offline(self, server: Server, users: list[str], per_user: int, k0: int) -> int:
        # Through tidings' own Python API, as `tidings send` does, with no server running.
        return _offline("tidings", self.env(server.workdir), users, per_user, k0)


class TidingsGranian(Tidings):
    """tidings' app served by Granian (`tidings.granian_app`) instead of `tidings serve`'s
    uvicorn: the same store, bus and settings, one worker process with its Rust HTTP/1 I/O.

    BENCH_GRANIAN_LOOP picks its loop (uvloop, asyncio, rloop; default uvloop, as uvicorn's),
    BENCH_GRANIAN_ARGS adds options for an A/B ("--runtime-threads 2 --task-impl rust").
    """

    name = "tidings-granian"
    label = "tidings on Granian (SQLite, local bus)"
    multi_process_reason = "measured as one Granian worker (bench/changes.md, section 25)"
    opt_in = True

    def available(self) -> str | None:
        try:
            import granian  # noqa: F401
        except ImportError:
            return "granian is not installed (pip install 'tidings[granian]')"
        return None

    def version(self) -> str:
        from importlib.metadata import version

        return f"tidings {common.versions().get('tidings', '')}, granian {version('granian')}"

    def start(self, workdir: Path, workers: int = 1, fresh: bool = True, port: int = 0) -> Server:
        if fresh:
            for p in workdir.glob("tidings.db*"):
                p.unlink()
        port = port or common.free_port()
        loop = os.environ.get("BENCH_GRANIAN_LOOP", "uvloop")
        argv = [PYTHON, "-m", "granian", "--interface", "asgi", "--factory"]
        argv += ["--host", common.HOST, "--port", str(port), "--loop", loop, "--http", "1"]
        # Granian admits `--backpressure` requests at a time per worker (default: its backlog,
        # 1,024): every open stream is one, so it must exceed the streams a level opens.
        # The listen queue as `tidings serve` asks for it (TIDINGS_BACKLOG's default; the kernel
        # caps both at net.core.somaxconn), so a storm compares like with like.
        argv += ["--no-ws", "--backlog", "65535", "--backpressure", "100000"]
        argv += ["--log-level", "warning", "--no-access-log", "--workers-kill-timeout", "10"]
        argv += os.environ.get("BENCH_GRANIAN_ARGS", "").split()
        argv.append("tidings.granian_app:create")
        return self._launch(argv, self.env(workdir), workdir, 1, port)


class Polling(Target):
    name = "polling"
    label = "polling design (2 s cache scan, SQLite)"

    def __init__(self) -> None:
        self.like = os.environ.get("BENCH_POLLING_LIKE", "index")
        if self.like != "index":
            self.label = "polling design (naive LIKE)"

    def env(self, workdir: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            BENCH_POLLING_DB=str(workdir / "polling.db"),
            BENCH_POLLING_LIKE=self.like,
            TIDINGS_SECRET=SECRET,
            TIDINGS_PUBLISHER_KEYS=PUBLISHER_KEY,
        )
        return env

    def start(self, workdir: Path, workers: int = 1, fresh: bool = True, port: int = 0) -> Server:
        if fresh:
            for p in workdir.glob("polling.db*"):
                p.unlink()
        port = port or common.free_port()
        argv = _uvicorn("bench.servers.polling:app", port, workers)
        return self._launch(argv, self.env(workdir), workdir, workers, port)

    def publish_offline(self, server: Server, users: list[str], per_user: int, k0: int) -> int:
        # The observer runs in the app (still up in the original); it writes cache rows.
        return _offline("polling", self.env(server.workdir), users, per_user, k0)


class Floor(Target):
    name = "floor"
    label = "raw floor (ASGI + in-memory queues)"
    has_store = False
    durable_reason = "no store: a notification published while it is down has nowhere to go"

    def start(self, workdir: Path, workers: int = 1, fresh: bool = True, port: int = 0) -> Server:
        port = port or common.free_port()
        argv = _uvicorn("bench.servers.floor:app", port, workers)
        return self._launch(argv, dict(os.environ), workdir, workers, port)

    def queries(self, server: Server) -> float | None:
        return 0.0


class Centrifugo(Target):
    name = "centrifugo"
    label = "Centrifugo (uni SSE, personal channels)"
    has_store = False
    ready_path = "/health"
    multi_process_reason = (
        "one process holds < 20,000 connections (open-file limit); more needs several nodes "
        "with its Redis or NATS engine"
    )
    durable_reason = (
        "its server API is the publish path and the memory engine's history does not survive "
        "a restart"
    )

    def __init__(self) -> None:
        self.binary = common.WORK / "bin" / "centrifugo"

    def available(self) -> str | None:
        if self.binary.exists():
            return None
        log = common.WORK / "centrifugo-build.log"
        why = log.read_text()[-600:] if log.exists() else "not installed (bench/peers.py)"
        return "not built: " + re.sub(r"https?://\S+", "<proxy>", why.strip())

    def version(self) -> str:
        try:
            out = subprocess.run(
                [str(self.binary), "version"], capture_output=True, text=True, timeout=10
            )
            return out.stdout.strip()
        except OSError:
            return ""

    def start(self, workdir: Path, workers: int = 1, fresh: bool = True, port: int = 0) -> Server:
        port = port or common.free_port()
        config = {
            "http_server": {"address": common.HOST, "port": str(port)},
            "log": {"level": "error"},
            "client": {
                "token": {"hmac_secret_key": SECRET},
                "allowed_origins": ["*"],
                "subscribe_to_user_personal_channel": {"enabled": True},
            },
            "http_api": {"key": PUBLISHER_KEY},
            "uni_sse": {"enabled": True},
            "health": {"enabled": True},
        }
        path = workdir / "centrifugo.json"
        path.write_text(json.dumps(config, indent=1))
        argv = [str(self.binary), "--config", str(path)]
        env = dict(os.environ, GOMAXPROCS=str(os.cpu_count() or 2))
        return self._launch(argv, env, workdir, 1, port)

    def stream(self, user: str) -> dict[str, Any]:
        connect = json.dumps({"token": token(user)}, separators=(",", ":"))
        path = "/connection/uni_sse?cf_connect=" + urllib.parse.quote(connect)
        return {"user": user, "path": path, "headers": {}}

    def publish_template(self) -> dict[str, Any]:
        return {
            "method": "POST",
            "path": "/api/publish",
            "headers": {"X-API-Key": PUBLISHER_KEY},
            "body": '{"channel": "#__USER__", "data": {"t": __T__, "k": __K__}}',
        }

    def broadcast(self, server: Server, users: list[str], k: int) -> tuple[int, float]:
        t = time.time()
        body = json.dumps({"channels": [f"#{u}" for u in users], "data": {"t": t, "k": k}})
        status, _ = common.request(
            server.port,
            "POST",
            "/api/broadcast",
            body.encode(),
            {"X-API-Key": PUBLISHER_KEY, "Content-Type": "application/json"},
            timeout=120,
        )
        return status, t

    def queries(self, server: Server) -> float | None:
        return 0.0  # memory engine: no store to query


class Mercure(Target):
    name = "mercure"
    label = "Mercure"
    has_store = False

    def available(self) -> str | None:
        if (common.WORK / "bin" / "mercure").exists():
            return "built, but this harness has no Mercure driver yet"
        log = common.WORK / "mercure-build.log"
        lines = log.read_text().splitlines() if log.exists() else []
        if any("403" in x for x in lines):
            return (
                "could not be installed: the Go module proxy answers 403 Forbidden (“This module "
                "version is not available”) for github.com/dunglas/mercure and its caddy module"
            )
        return "could not be installed from the Go module proxy: see bench/.work/mercure-build.log"


def all_targets() -> list[Target]:
    return [Tidings(), TidingsGranian(), Polling(), Floor(), Centrifugo(), Mercure()]


def which(name: str) -> str | None:
    return shutil.which(name)
