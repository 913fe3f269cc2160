"""One push per conversation: the notifications of a folded group replace the group's previous
push (one tag, one Topic), read "Carol and 4 others", and every payload is both tidings-sw.js's
and WebKit's declarative form, checked after the stand-in decrypted it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.push.helpers import PUBLIC_KEY, PUSH_ENV, subscribe
from tests.push.standin import check_shapes, standin
from tests.support import Server, serving

pytestmark = pytest.mark.anyio

PEOPLE = ("Ann", "Bo", "Cy", "Dee", "Carol")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = {**PUSH_ENV, "TIDINGS_PUBLIC_URL": "https://app.example/"}
    with serving(tmp_path_factory.mktemp("group-push"), settings) as started:
        yield started


def comment(server: Server, user: str, name: str) -> int:
    response = server.publish(
        user,
        f"{name} commented on the launch plan",
        link="/threads/42",
        group="thread-42",
        actor={"name": name, "avatar_url": None},
    )
    assert response.status_code == 201, response.text
    seq: int = response.json()["id"]
    return seq


async def test_five_comments_in_a_group_push_under_one_tag_and_topic(server: Server) -> None:
    async with standin() as push:
        push.vapid_public_key = PUBLIC_KEY
        subscribe(server, "away-g", push.browser("away-g"))
        seqs = [await asyncio.to_thread(comment, server, "away-g", name) for name in PEOPLE]
        # A notification of no group after them: pushed after every push of the group.
        sentinel = server.publish("away-g", "sentinel", link="https://app.example/s")
        assert sentinel.status_code == 201
        pushes = await push.wait_for_id("away-g", sentinel.json()["id"])
    assert push.problems == []
    *grouped, last = pushes
    assert last.payload["message"] == "sentinel"
    assert grouped, "the group was never pushed"
    # However the pushes fell into passes: one tag and one Topic for the group, the newest
    # comment pushed last, standing for all five.
    assert len({p.payload["tag"] for p in grouped}) == 1
    assert len({p.headers["Topic"] for p in grouped}) == 1
    assert {p.payload["notification"]["tag"] for p in grouped} == {grouped[0].payload["tag"]}
    assert grouped[0].payload["tag"] != last.payload["tag"]
    assert grouped[0].headers["Topic"] != last.headers["Topic"]
    assert [p.payload["id"] for p in grouped] == sorted(p.payload["id"] for p in grouped)
    newest = grouped[-1].payload
    assert (newest["id"], newest["group"], newest["group_count"]) == (seqs[-1], "thread-42", 5)
    shown = newest["notification"]
    assert (shown["title"], shown["body"], shown["navigate"]) == (
        "Carol and 4 others",
        "Carol commented on the launch plan",
        "https://app.example/threads/42",
    )
    for p in pushes:
        check_shapes(p.payload)
    # The older comments of a pass went as folded, never as pushes of their own tag.
    assert server.metric("tidings_away_skipped_total", 'reason="folded"') == 5 - len(grouped)
