"""Nothing lost across a restart, and nothing lost or doubled with many publisher processes."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import (
    PUBLISHER_KEY,
    Server,
    Stream,
    make_token,
    open_stream,
    publish_sentinel,
)

pytestmark = pytest.mark.anyio


async def cli_send(server: Server, user: str, message: str) -> dict[str, Any]:
    """`tidings send` in its own process, against the server's database."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidings",
        "send",
        user,
        message,
        env=server.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    [line] = out.decode().splitlines()
    body: dict[str, Any] = json.loads(line)
    return body


async def seqs_of(stream: Stream, count: int, timeout: float = 10.0) -> list[int]:
    return [n["id"] for n in await stream.notifications(count, timeout)]


# --- 3. a restart in between ---------------------------------------------------------------------


@pytest.mark.slow
async def test_a_reconnect_after_a_restart_receives_exactly_what_it_missed(
    make_server: ServerFactory,
) -> None:
    server = make_server()
    token = make_token("alice")
    async with open_stream(server.url, token) as stream:
        assert server.publish("alice", "before 1").status_code == 201
        # `tidings send` next to a running server shows up live too.
        sent = await cli_send(server, "alice", "before 2")
        assert sent["id"] == 2
        got = await stream.notifications(2)
        assert [(n["id"], n["message"]) for n in got] == [(1, "before 1"), (2, "before 2")]

        server.stop(signal.SIGTERM)
        await asyncio.wait_for(stream.ended.wait(), 10)
        assert len(stream.retries) == 2  # the opening one, and the drain's

    # Published while no server runs: straight into the database.
    missed = await asyncio.gather(*(cli_send(server, "alice", f"while down {i}") for i in (1, 2)))
    assert sorted(n["id"] for n in missed) == [3, 4]

    server.start()
    async with open_stream(server.url, token, last_event_id="2") as stream:
        got = await stream.notifications(2)
        assert [n["id"] for n in got] == [3, 4]
        assert {n["message"] for n in got} == {"while down 1", "while down 2"}
        assert server.publish("alice", "after").status_code == 201
        [after] = await stream.notifications(1)
        assert (after["id"], after["message"]) == (5, "after")
        await publish_sentinel(server, "alice", stream)


# --- 4. many publisher processes at once ---------------------------------------------------------

PUBLISHERS_HTTP = 14
PUBLISHERS_CLI = 6
PER_PUBLISHER = 50
TOTAL = (PUBLISHERS_HTTP + PUBLISHERS_CLI) * PER_PUBLISHER

# Both wait for the `go` file, so that the twenty start publishing together.
HTTP_PUBLISHER = """
import http.client, json, os, sys, time
port, key, user, name, go, count = sys.argv[1:]
while not os.path.exists(go):
    time.sleep(0.01)
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
for i in range(int(count)):
    body = json.dumps({"user_id": user, "message": f"{name}:{i}"})
    headers = {"authorization": "Bearer " + key, "content-type": "application/json"}
    conn.request("POST", "/api/notifications", body, headers)
    response = conn.getresponse()
    text = response.read()
    if response.status != 201:
        sys.exit(f"{name}: {response.status} {text!r}")
"""

# The `tidings send` command itself, called once per notification, minus a process start each.
CLI_PUBLISHER = """
import os, sys, time
from tidings.cli import main
user, name, go, count = sys.argv[1:]
while not os.path.exists(go):
    time.sleep(0.01)
for i in range(int(count)):
    if main(["send", user, f"{name}:{i}"]) != 0:
        sys.exit(f"{name}: tidings send failed")
"""


async def read_chain(
    server: Server, token: str, total: int, rng: random.Random, log: list[int]
) -> list[dict[str, Any]]:
    """Read everything through reconnects at random points, resuming from the last id seen."""
    got: list[dict[str, Any]] = []
    while len(got) < total:
        resume = str(got[-1]["id"]) if got else "0"
        log.append(int(resume))
        async with open_stream(server.url, token, last_event_id=resume) as stream:
            want = min(rng.randint(1, 150), total - len(got))
            got += await stream.notifications(want, timeout=60)
    return got


def check_log(notifications: list[dict[str, Any]]) -> None:
    """Seqs 1..TOTAL once each, ascending; every publisher's messages in its own order."""
    assert [n["id"] for n in notifications] == list(range(1, TOTAL + 1))
    assert {n["user_id"] for n in notifications} == {"crowd"}
    by_publisher: dict[str, list[int]] = {}
    for n in notifications:
        name, _, index = n["message"].partition(":")
        by_publisher.setdefault(name, []).append(int(index))
    assert len(by_publisher) == PUBLISHERS_HTTP + PUBLISHERS_CLI
    for indexes in by_publisher.values():
        assert indexes == list(range(PER_PUBLISHER))


@pytest.mark.slow
async def test_twenty_publisher_processes_every_stream_sees_every_seq_once_in_order(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(max_streams_per_user="10")
    token = make_token("crowd")
    go = tmp_path / "go"
    procs: list[asyncio.subprocess.Process] = []
    for i in range(PUBLISHERS_HTTP):
        args = [str(server.port), PUBLISHER_KEY, "crowd", f"http{i}", str(go), str(PER_PUBLISHER)]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", HTTP_PUBLISHER, *args, stderr=asyncio.subprocess.PIPE
            )
        )
    for i in range(PUBLISHERS_CLI):
        args = ["crowd", f"cli{i}", str(go), str(PER_PUBLISHER)]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CLI_PUBLISHER,
                *args,
                env=server.env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    resumes: list[list[int]] = [[], []]
    async with (
        open_stream(server.url, token) as s1,
        open_stream(server.url, token) as s2,
        open_stream(server.url, token) as s3,
    ):
        go.touch()
        chains = [
            asyncio.create_task(read_chain(server, token, TOTAL, random.Random(seed), log))
            for seed, log in zip((1, 2), resumes, strict=True)
        ]
        outcomes = await asyncio.gather(*(p.communicate() for p in procs))
        for proc, (_, err) in zip(procs, outcomes, strict=True):
            assert proc.returncode == 0, err.decode()
        for stream in (s1, s2, s3):
            check_log(await stream.notifications(TOTAL, timeout=60))
        for chain in chains:
            check_log(await asyncio.wait_for(chain, 60))
        async with httpx.AsyncClient(timeout=10) as client:
            count = await client.get(
                f"{server.url}/notifications/unread-count",
                headers={"authorization": f"Bearer {token}"},
            )
        assert count.json() == {
            "unread": TOTAL,
            "unseen": TOTAL,
            "last_seq": TOTAL,
            "categories": {},
        }
        # Nothing after the last seq either (no duplicate, no late straggler).
        await publish_sentinel(server, "crowd", s1, s2, s3)
    # The chains really did reconnect all along the way.
    for log in resumes:
        assert len(log) > 5
