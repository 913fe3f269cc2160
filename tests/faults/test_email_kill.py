"""A node killed (kill -9) in the middle of sending a digest: the claim's lease runs out and
another node sends it. Killed before the SMTP server accepted it: exactly one email. Killed after
it accepted but before the cursor moved: the one documented repeat, recognisable by its
Message-ID (docs/away.md)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multinode.cluster import Cluster
from tests.smtp import SmtpSink, email_settings, listed_messages
from tests.support import HTTP, PUBLISHER_KEY

# Waits on timers (a grace window, a lease, a token's lifetime) more than it computes: in the
# lane of its own beside the parallel pass (scripts/test).
pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.serial]

LEASE = "6"  # seconds: how long a killed node's claim blocks the digest


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    started = SmtpSink()
    started.start()
    yield started
    started.stop()


@pytest.mark.parametrize("accepted", [False, True], ids=["before-accepted", "after-accepted"])
async def test_a_node_killed_while_sending_leaves_the_digest_to_another(
    tmp_path: Path, postgres_url: str, tag: str, sink: SmtpSink, accepted: bool
) -> None:
    settings = email_settings(sink, smtp_timeout="2", email_lease=LEASE)
    cluster = Cluster(tmp_path, postgres_url, f"{postgres_url}?channel=mn_{tag}", **settings)
    try:
        [first] = cluster.start(1)
        user, address = f"{tag}-ada", f"{tag}-ada@mail.example"
        key = {"authorization": f"Bearer {PUBLISHER_KEY}"}
        put = HTTP.put(f"{first.url}/api/users/{user}", json={"email": address}, headers=key)
        assert put.status_code == 200, put.text
        sink.hold(address, accept=accepted)
        assert first.publish(user, "one").status_code == 201
        # The node claimed the digest and is inside DATA: kill it there.
        held = await sink.wait_held()
        first.stop(signal.SIGKILL)
        sink.release()
        [second] = cluster.start(1)
        expected = 2 if accepted else 1
        received = await sink.wait_for(address, expected, timeout=60)
        assert len(received) == expected
        # The taken-over digest is the same one, down to its Message-ID.
        for message in received:
            assert message["Message-ID"] == held["Message-ID"]
            assert listed_messages(message) == ["one"]
        # The sentinel: the next email lists only what came after, so nothing else repeated.
        assert second.publish(user, "two").status_code == 201
        *_, last = await sink.wait_for(address, expected + 1, timeout=60)
        assert listed_messages(last) == ["two"]
        assert len(sink.to(address)) == expected + 1
    finally:
        cluster.close()
