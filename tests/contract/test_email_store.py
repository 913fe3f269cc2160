"""The email digest's part of the store contract, on every store: a user's address, and the
cursor whose claim makes each digest go out once (see `Store.claim_email`)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tidings.clock import Clock
from tidings.models import Draft, EmailClaim, UserRecord
from tidings.store import Store, create_store

pytestmark = pytest.mark.anyio

AFTER = 60_000  # a digest takes what is at least this old (TIDINGS_EMAIL_AFTER)
LEASE = 30_000


async def publish(store: Store, user: str, *messages: str) -> list[int]:
    seqs = []
    for message in messages:
        [n] = (await store.add(Draft(user_ids=(user,), message=message))).notifications
        seqs.append(n.seq)
    return seqs


async def claim(store: Store, user: str, owner: str = "a") -> EmailClaim | None:
    return await store.claim_email(user, owner, AFTER, LEASE)


def seen(claim: EmailClaim | None) -> EmailClaim | None:
    """The claim without the store's own lease handle, to compare."""
    return None if claim is None else dataclasses.replace(claim, lease="")


async def test_an_address_is_set_read_and_removed(store: Store, clock: Clock) -> None:
    assert await store.user("ada") is None
    set_at = clock.now_ms()
    assert await store.set_user_email("ada", "ada@example.com") == UserRecord(
        "ada", "ada@example.com", set_at
    )
    clock.advance(5)
    assert await store.user("ada") == UserRecord("ada", "ada@example.com", set_at)
    changed = await store.set_user_email("ada", "ada@example.org")
    assert await store.user("ada") == changed == UserRecord("ada", "ada@example.org", set_at + 5)
    await store.set_user_email("ada", None)
    assert await store.user("ada") == UserRecord("ada", None, set_at + 5)
    assert await store.user("bob") is None


async def test_a_digest_takes_what_is_old_enough_and_starts_after_the_address(
    store: Store, clock: Clock
) -> None:
    await publish(store, "ada", "before the address")
    await store.set_user_email("ada", "ada@example.com")
    await store.set_user_email("bob", "bob@example.com")
    clock.advance(AFTER)
    # What was published before the address is never emailed.
    assert await store.email_due(AFTER, 10) == []
    assert await claim(store, "ada") is None
    [first] = await publish(store, "ada", "one")
    assert first == 2
    clock.advance(AFTER - 1)
    assert await store.email_due(AFTER, 10) == []
    assert await claim(store, "ada") is None
    [young] = await publish(store, "ada", "too young for this digest")
    clock.advance(1)
    assert await store.email_due(AFTER, 10) == ["ada"]
    got = await claim(store, "ada")
    assert got is not None
    assert seen(got) == EmailClaim("ada", "ada@example.com", 1, 2, "a", 0)
    # Claimed: not due for anyone else, and not claimable by another owner.
    assert await store.email_due(AFTER, 10) == []
    assert await claim(store, "ada", "b") is None
    assert await store.finish_email(got, clock.now_ms() + AFTER)
    # One email per window: the young one waits for the next one, even once it is old enough.
    clock.advance(AFTER - 1)
    assert await store.email_due(AFTER, 10) == []
    clock.advance(1)
    again = await claim(store, "ada", "b")
    assert seen(again) == EmailClaim("ada", "ada@example.com", 2, young, "b", 0)


async def test_a_removed_address_stops_digests_and_a_new_one_starts_from_now(
    store: Store, clock: Clock
) -> None:
    await store.set_user_email("ada", "ada@example.com")
    await publish(store, "ada", "one")
    await store.set_user_email("ada", None)
    clock.advance(AFTER)
    assert await store.email_due(AFTER, 10) == []
    await store.set_user_email("ada", "ada@example.net")
    assert await claim(store, "ada") is None
    # Changing one address for another keeps the cursor: what is due stays due.
    await publish(store, "ada", "two")
    await store.set_user_email("ada", "ada@example.org")
    clock.advance(AFTER)
    got = await claim(store, "ada")
    assert got is not None
    assert (got.email, got.done_seq, got.claimed_seq) == ("ada@example.org", 1, 2)


async def test_a_lease_that_ran_out_is_taken_over_with_the_same_range(
    store: Store, clock: Clock
) -> None:
    await store.set_user_email("ada", "ada@example.com")
    await publish(store, "ada", "one", "two")
    clock.advance(AFTER)
    first = await claim(store, "ada", "dead-node")
    assert first is not None
    assert first.claimed_seq == 2
    await publish(store, "ada", "three")
    clock.advance(LEASE - 1)
    assert await claim(store, "ada", "other") is None
    clock.advance(1)
    # The dead node's range exactly, not widened by "three": a repeat would be the same email.
    taken = await claim(store, "ada", "other")
    assert taken is not None
    assert seen(taken) == EmailClaim("ada", "ada@example.com", 0, 2, "other", 0)
    # The first owner lost it: its late finish changes nothing.
    assert not await store.finish_email(first, clock.now_ms())
    assert not await store.release_email(first, clock.now_ms(), keep_claim=False)
    assert await store.finish_email(taken, clock.now_ms())
    clock.advance(AFTER)
    nxt = await claim(store, "ada", "third")
    assert nxt is not None
    assert (nxt.done_seq, nxt.claimed_seq) == (2, 3)


async def test_a_failed_send_is_tried_again_after_the_backoff(store: Store, clock: Clock) -> None:
    await store.set_user_email("ada", "ada@example.com")
    await publish(store, "ada", "one")
    clock.advance(AFTER)
    failed = await claim(store, "ada")
    assert failed is not None
    assert await store.release_email(failed, clock.now_ms() + 1000, keep_claim=False)
    await publish(store, "ada", "during the outage")
    clock.advance(AFTER)
    # Not sent, so nothing is done; the retry takes what became due meanwhile too.
    retry = await claim(store, "ada", "b")
    assert retry is not None
    assert seen(retry) == EmailClaim("ada", "ada@example.com", 0, 2, "b", 1)
    # The server may have accepted it: the next try is the very same range.
    assert await store.release_email(retry, clock.now_ms() + 1000, keep_claim=True)
    await publish(store, "ada", "later")
    clock.advance(AFTER)
    same = await claim(store, "ada", "c")
    assert same is not None
    assert seen(same) == EmailClaim("ada", "ada@example.com", 0, 2, "c", 2)
    # A sent digest resets the attempts.
    assert await store.finish_email(same, clock.now_ms())
    last = await claim(store, "ada", "d")
    assert last is not None
    assert (last.done_seq, last.claimed_seq, last.attempts) == (2, 3, 0)


async def test_of_concurrent_claims_on_two_connections_exactly_one_wins(
    store: Store, store_url: str, clock: Clock
) -> None:
    other = create_store(store_url, clock=clock)
    await other.open()
    try:
        users = [f"u{i}" for i in range(5)]
        for user in users:
            await store.set_user_email(user, f"{user}@example.com")
            await publish(store, user, "hello")
        clock.advance(AFTER)
        assert sorted(await other.email_due(AFTER, 10)) == users
        assert len(await other.email_due(AFTER, 2)) == 2
        claims = await asyncio.gather(
            *(
                s.claim_email(user, f"{name}-{i}", AFTER, LEASE)
                for user in users
                for i in range(3)
                for name, s in (("one", store), ("two", other))
            )
        )
        won = [c for c in claims if c is not None]
        assert sorted(c.user_id for c in won) == users
    finally:
        await other.close()
