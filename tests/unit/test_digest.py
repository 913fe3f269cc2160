"""The digest's pure parts, in-process: which notifications an email lists, how it counts the
rest, what the message looks like, and the unsubscribe signature."""

from __future__ import annotations

import pytest

from tests.unit.conftest import unit_settings
from tests.unit.fakes import FakeStore
from tidings.channels.email.digest import (
    Digest,
    Digester,
    build_message,
    check_unsubscribe,
    unsubscribe_url,
)
from tidings.clock import Clock, now_ms
from tidings.metrics import Metrics
from tidings.models import Draft, Preferences
from tidings.settings import Settings

pytestmark = pytest.mark.anyio


def email_settings(**changes: object) -> Settings:
    return unit_settings(
        smtp_url="smtp://127.0.0.1:25",
        email_from="n@app.example",
        public_url="https://app.example/t",
        **changes,
    )


async def test_an_email_lists_the_newest_and_counts_the_rest() -> None:
    store = FakeStore()
    settings = email_settings(email_max_items=2)
    await store.set_user_email("ada", "ada@example.com")
    for i in range(1, 7):
        await store.add(Draft(user_ids=("ada",), message=f"n{i}", category="c" if i == 2 else None))
    await store.mark_read("ada", ids=[1])
    await store.set_preferences("ada", Preferences(muted_categories=("c",)))
    claim = await store.claim_email("ada", "me", 0, 60_000)
    assert claim is not None
    digester = Digester(settings, store, Metrics(), Clock())
    listed, more, skipped = await digester._collect(claim, await store.preferences("ada"), now_ms())
    assert [(n.message, count) for n, count in listed] == [("n6", 1), ("n5", 1)]
    assert more == 2  # n3 and n4
    assert skipped == {"read": 1, "muted": 1}
    digest = Digest("ada", "ada@example.com", tuple(n for n, _ in listed), more, 1, 6)
    message = build_message(settings, digest, now_ms())
    assert message["Subject"] == "4 new notifications"
    assert message["Message-ID"].endswith(".1-6@app.example>")
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "… and 2 more." in text.get_content()


async def test_a_group_is_listed_once_as_its_newest_with_its_count() -> None:
    store = FakeStore()
    settings = email_settings(email_max_items=2)
    await store.set_user_email("ada", "ada@example.com")
    people = ["Ann", "Bo", "Cy", "Dee", "Carol"]
    await store.add(Draft(user_ids=("ada",), message="alone, oldest"))
    for i, name in enumerate(people):
        await store.add(Draft(user_ids=("ada",), message=f"{name} commented", group="t-42"))
        if i == 1:
            await store.add(Draft(user_ids=("ada",), message="alone, between"))
    claim = await store.claim_email("ada", "me", 0, 60_000)
    assert claim is not None
    digester = Digester(settings, store, Metrics(), Clock())
    listed, more, _ = await digester._collect(claim, await store.preferences("ada"), now_ms())
    # The group once, as its newest, with its five; two rows at most, the oldest one counted.
    assert [(n.message, count) for n, count in listed] == [
        ("Carol commented", 5),
        ("alone, between", 1),
    ]
    assert more == 1
    shown = tuple(n for n, _ in listed)
    digest = Digest("ada", "ada@example.com", shown, more, 1, 7, (5, 1))
    message = build_message(settings, digest, now_ms())
    assert message["Subject"] == "7 new notifications"
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    content = text.get_content()
    assert content.count("Carol commented") == 1
    assert "5 in this conversation" in content
    assert "Ann commented" not in content


def test_the_unsubscribe_signature_is_the_users_alone() -> None:
    settings = email_settings()
    url = unsubscribe_url(settings, "ada/1 ü")
    assert url.startswith(
        "https://app.example/t/notifications/unsubscribe?user=ada%2F1+%C3%BC&sig="
    )
    sig = url.rpartition("sig=")[2]
    assert check_unsubscribe(settings, "ada/1 ü", sig)
    assert not check_unsubscribe(settings, "ada/1", sig)
    assert not check_unsubscribe(settings, "ada/1 ü", sig[:-1] + ("A" if sig[-1] != "A" else "B"))
    assert not check_unsubscribe(settings, "\ud800", "°")  # no crash on what a URL can carry
    other = email_settings(secret="another-secret-0123456789-abcdefghij")
    assert not check_unsubscribe(other, "ada/1 ü", sig)
