"""Logs: a real server whose bus it cannot reach (Redis on a closed port), publishing for a few
seconds. Every publish fails to announce; the log shows each line with its time, level and
logger, the traceback once, and the repeats as counted lines, not thousands of tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.multinode.cluster import START_TIMEOUT, Node
from tests.support import PUBLISHER_KEY, free_port, run_cli, tidings_env, wait_for_200
from tidings.store import create_store

# Short, so several windows pass while the test publishes (their ratio is what the test is about).
WINDOW = 0.5
PUBLISHING = 1.75
ANNOUNCE_FAILED = "bus announce failed"
PLAIN_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"(?P<logger>[\w.]+): (?P<message>.*)$"
)
pytestmark = pytest.mark.slow

REPEATED = re.compile(r"\(repeated (\d+) times in (\d+) s\)$")


async def _create_database(url: str) -> None:
    store = create_store(url)
    await store.open()
    await store.close()


def unreachable_bus_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # A port nothing listens on: every announce is refused at once.
    return tidings_env(
        f"sqlite:///{tmp_path / 'tidings.db'}",
        {
            "TIDINGS_BUS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "TIDINGS_LOG_REPEAT_WINDOW": str(WINDOW),
            **{f"TIDINGS_{k.upper()}": v for k, v in extra.items()},
        },
    )


def publish_for(server: Node, seconds: float) -> int:
    """Publish as fast as one client can for `seconds`; every one must still be stored."""
    count = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10) as http:
        while time.monotonic() < deadline:
            response = http.post(
                f"{server.url}/api/notifications", json={"user_id": "u", "message": f"m{count}"}
            )
            assert response.status_code == 201, response.text
            count += 1
    return count


def run_and_stop(server: Node) -> tuple[int, str]:
    """Start, publish, stop with SIGTERM (as systemd does); the log is complete then."""
    server.spawn()
    try:
        # Not /readyz: the bus stays down. The multi-node start-up bound: workers start slowly.
        assert server.proc is not None
        wait_for_200(server.proc, f"{server.url}/healthz", START_TIMEOUT, server.log)
        published = publish_for(server, PUBLISHING)
        server.stop()
    finally:
        server.close()
    return published, server.log()


def test_plain_lines_have_time_level_and_logger_and_repeats_are_counted(tmp_path: Path) -> None:
    server = Node(unreachable_bus_env(tmp_path), tmp_path / "server.log")
    published, log = run_and_stop(server)
    records: list[re.Match[str]] = []
    traceback_lines = 0
    for line in log.splitlines():
        match = PLAIN_LINE.match(line)
        if match:
            records.append(match)
        else:
            # Anything else belongs to the one traceback: its frames and its chained causes.
            traceback_lines += 1
    assert any(
        r["logger"] == "uvicorn.error" and "Started server process" in r["message"] for r in records
    ), log
    failed = [r for r in records if ANNOUNCE_FAILED in r["message"]]
    assert failed, log
    assert log.count("Traceback (most recent call last)") <= 2, log  # one, with its cause
    assert 0 < traceback_lines < 100, log
    # The first failure is written with its traceback, then one counted line per window.
    first_line = log.splitlines().index(failed[0].group(0))
    assert log.splitlines()[first_line + 1].startswith("Traceback"), log
    counts = [int(m[1]) for r in failed if (m := REPEATED.search(r["message"]))]
    assert counts, log
    assert len(failed) <= PUBLISHING / WINDOW + 4, log
    # Every publish is accounted for: written once or counted.
    assert len(failed) - len(counts) + sum(counts) == published, (published, log)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_json_lines_parse_and_carry_level_logger_and_counts(tmp_path: Path, workers: str) -> None:
    env = unreachable_bus_env(tmp_path, log_format="json")
    server = Node(env, tmp_path / "server.log", args=("--workers", workers))
    published, log = run_and_stop(server)
    entries = [json.loads(line) for line in log.splitlines()]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), entry
    messages = [e["message"] for e in entries]
    assert any("Application startup complete" in m for m in messages), log
    if workers == "2":  # the parent's lines and each worker's are in the same format
        assert sum("Started worker process" in m for m in messages) == 2, log
    failed = [e for e in entries if ANNOUNCE_FAILED in e["message"]]
    with_traceback = [e for e in failed if "traceback" in e]
    # One traceback per process that saw the failure.
    assert 1 <= len(with_traceback) <= int(workers), log
    assert "redis" in with_traceback[0]["traceback"].lower()
    repeated = [e for e in failed if "repeated" in e]
    assert repeated, log
    assert all(e["level"] == "WARNING" and e["logger"] == "tidings" for e in failed)
    assert len(failed) - len(repeated) + sum(e["repeated"] for e in repeated) == published


def test_the_cli_logs_in_the_same_format(tmp_path: Path) -> None:
    env = unreachable_bus_env(tmp_path, log_format="json")
    # `tidings send` writes only to a database a server created (it refuses a fresh path).
    asyncio.run(_create_database(env["TIDINGS_DATABASE_URL"]))
    result = run_cli(env, "send", "u", "hello")
    assert result.returncode == 0, result.stderr  # stored; the bus only says so to live streams
    assert json.loads(result.stdout)["message"] == "hello"
    [entry] = [json.loads(line) for line in result.stderr.splitlines()]
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "tidings"
    assert ANNOUNCE_FAILED in entry["message"]
