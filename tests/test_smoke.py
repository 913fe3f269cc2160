from __future__ import annotations

import pytest

from tests.support import Server, make_token, open_stream, publish_sentinel

pytestmark = pytest.mark.anyio


async def test_a_notification_reaches_both_streams_of_its_user_and_no_other(server: Server) -> None:
    alice = make_token("alice")
    bob = make_token("bob")
    async with (
        open_stream(server.url, alice) as a1,
        open_stream(server.url, alice) as a2,
        open_stream(server.url, bob) as b,
    ):
        assert (a1.status, a2.status, b.status) == (200, 200, 200)
        response = server.publish("alice", "hello alice")
        assert response.status_code == 201
        for stream in (a1, a2):
            [got] = await stream.notifications(1)
            assert got["message"] == "hello alice"
            assert got["user_id"] == "alice"
            assert got["id"] == 1
        await publish_sentinel(server, "bob", b)
