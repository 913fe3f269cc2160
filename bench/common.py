"""Shared plumbing: the machine, versions, processes we start, /proc sampling, result files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

_spawned: list[subprocess.Popen[bytes]] = []


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, Any]:
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    # The first processor's block. "AMD EPYC" alone named two hosts whose figures differed by
    # 2-3x (bench/changes.md, section 28): the family, model and clock tell them apart.
    cpu: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if not line.strip():
                break
            key, _, value = line.partition(":")
            cpu[key.strip()] = value.strip()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu.get("model name", ""),
        "cpu_id": "family {} model {} stepping {}".format(
            cpu.get("cpu family", "?"), cpu.get("model", "?"), cpu.get("stepping", "?")
        ),
        "cpu_mhz": cpu.get("cpu MHz", ""),
        "bogomips": cpu.get("bogomips", ""),
        "avx512": "avx512f" in cpu.get("flags", "").split(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "nofile": [soft, hard],
        "somaxconn": _read_int("/proc/sys/net/core/somaxconn"),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in (
        "uvicorn",
        "uvloop",
        "httptools",
        "starlette",
        "fastapi",
        "aiosqlite",
        "tidings",
        "granian",
    ):
        try:
            from importlib.metadata import version

            out[name] = version(name)
        except Exception:
            out[name] = "absent"
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


def write_result(scenario: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"{scenario}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
    return path


# --- processes ---------------------------------------------------------------------------------


def spawn(
    argv: list[str], env: dict[str, str] | None = None, log_path: Path | None = None, **kw: Any
) -> subprocess.Popen[bytes]:
    """Start a process in its own session, so stopping it also stops what it started."""
    out: Any = subprocess.DEVNULL
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115 - closed when the process is reaped
    proc = subprocess.Popen(
        argv, env=env, stdout=kw.pop("stdout", out), stderr=out, start_new_session=True, **kw
    )
    _spawned.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # Whatever the group leader left behind (uvicorn workers) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc in _spawned:
        _spawned.remove(proc)


def stop_all() -> None:
    for proc in list(_spawned):
        with contextlib.suppress(Exception):
            stop(proc, signal.SIGKILL, 5)


def tree(pid: int) -> list[int]:
    """pid and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def sample(pid: int) -> dict[str, float]:
    """CPU seconds and RSS bytes of a process tree."""
    cpu = 0.0
    rss = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
        rss += int(fields[21]) * PAGE
    return {"cpu": cpu, "rss": rss, "t": time.time()}


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (utime + stime) of each thread of `pid`, by thread id; a thread that ends
    while it is read is left out."""
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def schedstat(pid: int) -> tuple[float, float]:
    """Seconds the threads of a process tree ran on a core, and spent runnable waiting for one
    (/proc/…/task/*/schedstat, ns). The first is the CPU time to the nanosecond, where
    /proc/PID/stat counts 10 ms ticks; the second, on a machine with more work than cores, is
    the part of the latency that no code of the process's own can shorten."""
    ran = waited = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    fields = Path(f"/proc/{p}/task/{tid}/schedstat").read_text().split()
                    ran += int(fields[0]) / 1e9
                    waited += int(fields[1]) / 1e9
    return ran, waited


def tcp_ext() -> dict[str, int]:
    """The kernel's TcpExt counters (/proc/net/netstat; machine-wide: read them under the
    bench lock). ListenOverflows counts handshakes dropped because a listen queue was full."""
    found: dict[str, int] = {}
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return found
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            found.update(zip(names.split()[1:], map(int, values.split()[1:]), strict=False))
    return found


@contextlib.contextmanager
def cleanup() -> Iterator[None]:
    def on_signal(signum: int, frame: Any) -> None:
        stop_all()
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    finally:
        stop_all()
        signal.signal(signal.SIGTERM, old)


# --- tiny HTTP client (one-off requests from the coordinator) ----------------------------------


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    conn = HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_http(port: int, path: str, timeout: float = 30, proc: Any = None) -> float:
    """Seconds until `path` answers 2xx; raises when the process died or time ran out."""
    start = time.time()
    while time.time() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            status, _ = request(port, "GET", path, timeout=2)
            if 200 <= status < 300:
                return time.time() - start
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not ready on :{port}{path} within {timeout} s")
