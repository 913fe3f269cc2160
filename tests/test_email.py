"""The email digest against a real server and a real SMTP server on 127.0.0.1: what arrives, when,
for whom; what does not (proved with a later email that must arrive, never with a quiet wait);
the unsubscribe link; an SMTP outage; and `PUT /api/users/{user_id}`."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.smtp import (
    AFTER_MINUTES,
    PUBLIC,
    SmtpSink,
    email_settings,
    listed_messages,
    parts,
    until,
)
from tests.support import HTTP, PUBLISHER_KEY, Server, make_token, serving, tidings_env

pytestmark = pytest.mark.anyio

AFTER = AFTER_MINUTES * 60


def email_env(sink: SmtpSink) -> dict[str, str]:
    return {f"TIDINGS_{k.upper()}": v for k, v in email_settings(sink).items()}


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    started = SmtpSink()
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("email"), email_env(sink)) as started:
        yield started


def new_user() -> tuple[str, str]:
    user = f"user-{uuid.uuid4().hex[:10]}"
    return user, f"{user}@mail.example"


def put_user(
    server: Server, user: str, body: Any, key: str | None = PUBLISHER_KEY
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return HTTP.put(f"{server.url}/api/users/{user}", json=body, headers=headers, timeout=10)


def as_user(server: Server, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {make_token(user)}"}
    return HTTP.request(method, f"{server.url}{path}", headers=headers, timeout=10, **kwargs)


def published(server: Server, user: str, message: str, **fields: Any) -> dict[str, Any]:
    response = server.publish(user, message, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def local(server: Server, link: str) -> str:
    """An emailed tidings link (on TIDINGS_PUBLIC_URL) as this test server answers it."""
    assert link.startswith(PUBLIC + "/"), link
    return server.url + link.removeprefix(PUBLIC)


def unsubscribe_link(message: EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    found = re.fullmatch(r"<(https://[^>]+)>", header)
    assert found, header
    return found.group(1)


def email_on(server: Server, user: str) -> bool:
    response = as_user(server, user, "GET", "/notifications/preferences")
    assert response.status_code == 200, response.text
    on: bool = response.json()["channels"]["email"]
    return on


def in_order(emails: list[EmailMessage]) -> list[str]:
    """What the emails list, oldest first (each lists its own newest first, as the bell does)."""
    return [m for e in emails for m in reversed(listed_messages(e))]


def containing(emails: list[EmailMessage], message: str) -> EmailMessage:
    [found] = [e for e in emails if message in listed_messages(e)]
    return found


async def test_the_digest_arrives_after_email_after_with_every_unseen_notification(
    server: Server, sink: SmtpSink
) -> None:
    user, address = new_user()
    assert put_user(server, user, {"email": address}).status_code == 200
    began = time.monotonic()
    sent = ["Invoice <b>7</b> & co is due", "Ada mentioned you", "No link here"]
    published(server, user, sent[0], link="/invoices/7")
    published(server, user, sent[1], link="https://other.example/m?a=1&b=2")
    published(server, user, sent[2])
    # Usually one email; two when the third became due only after the first was sent (each
    # notification waits its own TIDINGS_EMAIL_AFTER). Each one is in exactly one email.
    emails = await sink.digests_of(address, sent)
    assert in_order(emails) == sent
    assert sink.arrived(emails[0]) - began >= AFTER
    for earlier, later in itertools.pairwise(emails):
        # One email per window.
        assert sink.arrived(later) - sink.arrived(earlier) >= AFTER - 0.1
    for digest in emails:
        count = len(listed_messages(digest))
        assert digest["Subject"] == f"{count} new notification{'s' if count > 1 else ''}"
        assert digest["From"] == "Example <notifications@app.example>"
        assert digest["To"] == address
        assert digest["Auto-Submitted"] == "auto-generated"
        assert re.fullmatch(r"<digest\.[0-9a-f]{20}\.\d-\d@app\.example>", digest["Message-ID"])
        assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = unsubscribe_link(digest)
        assert link.startswith(f"{PUBLIC}/notifications/unsubscribe?")
        assert parse_qs(urlsplit(link).query)["user"] == [user]
        text, _ = parts(digest)
        assert link in text
    # Links are absolute (a path is resolved on TIDINGS_PUBLIC_URL's origin).
    text, markup = parts(containing(emails, sent[0]))
    assert "https://app.example/invoices/7" in text
    # The HTML part escapes what a publisher sent: the message is text, never markup.
    assert "Invoice &lt;b&gt;7&lt;/b&gt; &amp; co is due" in markup
    assert "<b>7</b>" not in markup
    assert '<a href="https://app.example/invoices/7">' in markup
    text, markup = parts(containing(emails, sent[1]))
    assert "https://other.example/m?a=1&b=2" in text
    assert '<a href="https://other.example/m?a=1&amp;b=2">Ada mentioned you</a>' in markup
    assert "No link here" in parts(containing(emails, sent[2]))[1]

    # Two more go out later in their own window; nothing already sent is sent again.
    published(server, user, "fourth")
    published(server, user, "fifth")
    more = await sink.digests_of(address, ["fourth", "fifth"])
    assert more[: len(emails)] == emails
    assert in_order(more) == [*sent, "fourth", "fifth"]
    assert sink.arrived(more[len(emails)]) - sink.arrived(emails[-1]) >= AFTER - 0.1
    assert server.metric("tidings_away_sent_total", 'channel="email"') >= len(more)


async def test_none_for_what_was_seen_read_archived_or_muted(
    server: Server, sink: SmtpSink
) -> None:
    user, address = new_user()
    assert put_user(server, user, {"email": address}).status_code == 200
    seen = published(server, user, "seen in the bell")
    assert as_user(
        server, user, "POST", "/notifications/seen", json={"up_to": seen["id"]}
    ).is_success
    read = published(server, user, "read")
    assert as_user(
        server, user, "POST", "/notifications/read", json={"ids": [read["id"]]}
    ).is_success
    archived = published(server, user, "archived")
    response = as_user(
        server, user, "POST", "/notifications/archive", json={"ids": [archived["id"]]}
    )
    assert response.is_success
    published(server, user, "in a category muted after it was stored", category="billing")
    prefs = {"muted_categories": ["billing"], "channels": {"push": True, "email": True}}
    assert as_user(server, user, "PUT", "/notifications/preferences", json=prefs).is_success
    published(server, user, "expired", expires_at="2020-01-01T00:00:00Z")
    # The sentinel: the first email this user ever gets lists it alone.
    published(server, user, "still unseen")
    [digest] = await sink.wait_for(address)
    assert digest["Subject"] == "1 new notification"
    assert listed_messages(digest) == ["still unseen"]
    # An expired notification is not listed by the store at all (so not counted as skipped).
    for reason in ("seen", "read", "archived", "muted"):
        assert server.metric("tidings_away_skipped_total", f'reason="{reason}"') >= 1, reason


async def test_unsubscribe_one_click_stops_the_digests_and_a_get_only_asks(
    server: Server, sink: SmtpSink
) -> None:
    user, address = new_user()
    assert put_user(server, user, {"email": address}).status_code == 200
    published(server, user, "first")
    [digest] = await sink.wait_for(address)
    link = local(server, unsubscribe_link(digest))

    # Opening the link (a person, or a mail scanner) shows a page and changes nothing.
    page = HTTP.get(link, timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<form method=post>" in page.text
    assert "Unsubscribe</button>" in page.text
    assert email_on(server, user)

    # A changed signature or user is refused, and changes nothing either.
    query = parse_qs(urlsplit(link).query)
    tampered = link.replace(query["sig"][0], query["sig"][0][:-2] + "AA")
    other, _ = new_user()
    forged = link.replace(f"user={user}", f"user={other}")
    for bad in (tampered, forged):
        for method in ("GET", "POST"):
            refused = HTTP.request(method, bad, data={"List-Unsubscribe": "One-Click"}, timeout=10)
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"] == "forbidden"
    assert email_on(server, user)
    assert email_on(server, other)

    # RFC 8058: the mail client's one-click POST, a form body without any credential.
    done = HTTP.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert done.status_code == 200, done.text
    assert "Unsubscribed" in done.text
    assert not email_on(server, user)

    # Nothing more for this user: another user published to after them gets their digest, and
    # by then this user's due digest was dealt with and skipped as unsubscribed.
    skipped = server.metric("tidings_away_skipped_total", 'reason="unsubscribed"')
    published(server, user, "after unsubscribing")
    witness, witness_address = new_user()
    assert put_user(server, witness, {"email": witness_address}).status_code == 200
    published(server, witness, "for the witness")
    await sink.wait_for(witness_address)
    await until(
        lambda: server.metric("tidings_away_skipped_total", 'reason="unsubscribed"') > skipped,
        "the unsubscribed user's digest to be skipped",
    )
    assert sink.to(address) == [digest]


async def test_a_refused_digest_is_sent_once_later(server: Server, sink: SmtpSink) -> None:
    user, address = new_user()
    assert put_user(server, user, {"email": address}).status_code == 200
    sink.refuse(address, 2)
    failed = server.metric("tidings_away_failed_total", 'channel="email"')
    published(server, user, "refused twice")
    [digest] = await sink.wait_for(address)
    assert listed_messages(digest) == ["refused twice"]
    assert server.metric("tidings_away_failed_total", 'channel="email"') >= failed + 2
    # The sentinel: the next email lists only the next notification.
    published(server, user, "next")
    first, second = await sink.wait_for(address, 2)
    assert first is digest
    assert listed_messages(second) == ["next"]


def test_a_user_record_is_set_read_and_removed(server: Server) -> None:
    user, address = new_user()
    missing = HTTP.get(
        f"{server.url}/api/users/{user}",
        headers={"authorization": f"Bearer {PUBLISHER_KEY}"},
        timeout=10,
    )
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    stored = put_user(server, user, {"email": address})
    assert stored.status_code == 200
    assert stored.json()["user_id"] == user
    assert stored.json()["email"] == address
    got = HTTP.get(
        f"{server.url}/api/users/{user}",
        headers={"authorization": f"Bearer {PUBLISHER_KEY}"},
        timeout=10,
    )
    assert got.json() == stored.json()
    removed = put_user(server, user, {"email": None})
    assert removed.status_code == 200
    assert removed.json()["email"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not an address"},
        {"email": "two@@example.com"},
        {"email": "no-domain@"},
        {"email": "@example.com"},
        {"email": "nodot@localhost"},
        {"email": "a@example.com\r\nBcc: victim@example.com"},
        {"email": "Ada <ada@example.com>"},
        {"email": "ünï@example.com"},
        {"email": "x" * 250 + "@example.com"},
        {"email": 42},
        {},
        {"email": "a@example.com", "name": "Ada"},
    ],
)
def test_a_bad_address_is_refused(server: Server, body: dict[str, Any]) -> None:
    user, _ = new_user()
    response = put_user(server, user, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert (
        HTTP.get(
            f"{server.url}/api/users/{user}",
            headers={"authorization": f"Bearer {PUBLISHER_KEY}"},
            timeout=10,
        ).status_code
        == 404
    )


def test_the_user_routes_need_a_publisher_key(server: Server) -> None:
    user, address = new_user()
    assert put_user(server, user, {"email": address}, key=None).status_code == 401
    # A wrong key is forbidden (as on every publisher route), and so is a user's token.
    assert put_user(server, user, {"email": address}, key="wrong").status_code == 403
    assert put_user(server, user, {"email": "bad"}, key=None).status_code == 401
    assert HTTP.get(f"{server.url}/api/users/{user}", timeout=10).status_code == 401
    token = make_token(user)
    as_the_user = HTTP.put(
        f"{server.url}/api/users/{user}",
        json={"email": address},
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert as_the_user.status_code == 403


async def test_an_smtp_outage_loses_nothing_and_sends_one_email_after_it(
    tmp_path: Path,
) -> None:
    sink = SmtpSink()  # not started: connection refused
    server = Server(
        env=tidings_env(f"sqlite:///{tmp_path / 'tidings.db'}", email_env(sink)),
        log_path=tmp_path / "server.log",
    )
    server.start()
    try:
        user, address = new_user()
        assert put_user(server, user, {"email": address}).status_code == 200
        for message in ("one", "two", "three"):
            published(server, user, message)
        all_due = time.monotonic() + AFTER
        # A failed attempt after all three were due: the next one, with the server back, has
        # them all.
        await until(lambda: time.monotonic() >= all_due, "all three to be due")
        failed = server.metric("tidings_away_failed_total", 'channel="email"')
        await until(
            lambda: server.metric("tidings_away_failed_total", 'channel="email"') > failed,
            "an attempt to fail",
        )
        assert server.metric("tidings_away_sent_total", 'channel="email"') == 0
        sink.start()
        [digest] = await sink.wait_for(address)
        assert listed_messages(digest) == ["three", "two", "one"]
        # Sent once: the next email holds only what came after.
        published(server, user, "after the outage")
        first, second = await sink.wait_for(address, 2)
        assert first is digest
        assert listed_messages(second) == ["after the outage"]
        assert "Traceback" not in server.log(), server.log()
    finally:
        server.close()
        sink.stop()


def test_email_off_starts_no_digests(make_server: Any, tmp_path: Path) -> None:
    # TIDINGS_EMAIL_AFTER=0 turns it off even with an SMTP URL: nothing checks its settings.
    server = make_server(TIDINGS_SMTP_URL="smtp://127.0.0.1:1", TIDINGS_EMAIL_AFTER="0")
    assert server.publish("u", "hello").status_code == 201
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert 'tidings_store_queries_total{op="email_due"}' not in text


@pytest.mark.parametrize(
    ("tls", "url"),
    [
        ("starttls", "smtp://mailer:p%40ss@127.0.0.1:{port}?starttls=1&verify=0"),
        ("smtps", "smtps://mailer:p%40ss@127.0.0.1:{port}?verify=0"),
    ],
)
# aiosmtpd warns when AUTH does not require its STARTTLS; with smtps the socket is TLS already.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_a_digest_goes_through_tls_with_a_login(tmp_path: Path, tls: str, url: str) -> None:
    sink = SmtpSink(tls=tls, login=("mailer", "p@ss"), folder=tmp_path)
    sink.start()
    env = {**email_env(sink), "TIDINGS_SMTP_URL": url.format(port=sink.port)}
    server = Server(
        env=tidings_env(f"sqlite:///{tmp_path / 'tidings.db'}", env),
        log_path=tmp_path / "server.log",
    )
    server.start()
    try:
        user, address = new_user()
        assert put_user(server, user, {"email": address}).status_code == 200
        published(server, user, "over TLS")
        [digest] = await sink.wait_for(address)
        assert listed_messages(digest) == ["over TLS"]
        assert sink.logins == ["mailer"]
    finally:
        server.close()
        sink.stop()


async def test_starttls_required_but_not_offered_sends_nothing(tmp_path: Path) -> None:
    sink = SmtpSink()  # plain: no STARTTLS
    sink.start()
    env = {**email_env(sink), "TIDINGS_SMTP_URL": f"{sink.url}?starttls=1"}
    server = Server(
        env=tidings_env(f"sqlite:///{tmp_path / 'tidings.db'}", env),
        log_path=tmp_path / "server.log",
    )
    server.start()
    try:
        user, address = new_user()
        assert put_user(server, user, {"email": address}).status_code == 200
        published(server, user, "never in the clear")
        await until(
            lambda: server.metric("tidings_away_failed_total", 'channel="email"') >= 1,
            "the attempt to fail",
        )
        assert "does not offer STARTTLS" in server.log()
        assert sink.mailbox.received == []
    finally:
        server.close()
        sink.stop()


async def test_sigterm_while_sending_finishes_that_digest_first(tmp_path: Path) -> None:
    sink = SmtpSink()
    sink.start()
    server = Server(
        env=tidings_env(f"sqlite:///{tmp_path / 'tidings.db'}", email_env(sink)),
        log_path=tmp_path / "server.log",
    )
    server.start()
    try:
        user, address = new_user()
        assert put_user(server, user, {"email": address}).status_code == 200
        sink.hold(address, accept=True)
        published(server, user, "in flight at shutdown")
        await sink.wait_held()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        # The node is shutting down while the SMTP server still holds the message: it waits for
        # the answer, and moves the cursor, before it exits.
        await until(lambda: "Waiting for application shutdown" in server.log(), "the shutdown")
        sink.release()
        await asyncio.to_thread(server.proc.wait, 30)
        assert "Application shutdown complete" in server.log()
        server.start()
        published(server, user, "after the restart")
        first, second = await sink.wait_for(address, 2)
        assert listed_messages(first) == ["in flight at shutdown"]
        assert listed_messages(second) == ["after the restart"]
        assert "Traceback" not in server.log(), server.log()
    finally:
        server.close()
        sink.stop()
