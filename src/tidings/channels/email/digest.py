"""The email digest: what a user who is away gets after `TIDINGS_EMAIL_AFTER` minutes.

The notification log is the outbox. Each user with an address has a cursor in the store (see
`Store.claim_email`); every node runs `Digester.run`, which every `TIDINGS_EMAIL_INTERVAL`
seconds asks the store whose digest is due, claims it with a lease (a compare-and-set, so of
several nodes exactly one sends it), builds one email of everything in the claimed range that
is still unseen, unread, not archived, not expired and not muted, sends it, and then moves the
cursor past the range. Nothing is held in memory between those steps, so:

- an SMTP failure releases the lease with a backoff; nothing is marked sent, and the next try
  sends the range again (widened to what became due meanwhile, unless the server may have
  accepted the message: then the very same one);
- a node killed between claim and send leaves a lease that runs out; another node (or this one
  after its restart) sends the range then;
- a node killed after the SMTP server accepted the message but before the cursor moved sends
  it again after the lease: the one window where a digest can repeat. The Message-ID is made of
  the user and the range, so the repeat carries the same one (mail providers fold such repeats).

One email per user per window: after a digest is sent, the user's next one waits
`TIDINGS_EMAIL_AFTER` minutes, and what arrives meanwhile goes into that one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import html
import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import NoReturn, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

from tidings.channels.away import left_out
from tidings.channels.base import Loop
from tidings.channels.email import EmailDigest, mailer
from tidings.clock import Clock
from tidings.loops import forever
from tidings.metrics import Metrics
from tidings.models import EmailClaim, Notification, Preferences
from tidings.settings import Settings
from tidings.store import StoreUnavailable
from tidings.store.base import EmailStore, LogStore, PreferenceStore

__all__ = ["Digest", "Digester", "build_message", "check_unsubscribe", "unsubscribe_url"]


class DigestStore(LogStore, PreferenceStore, EmailStore, Protocol):
    """What the digest uses of the store: the log it reads, the channels the user chose, and
    the users' addresses and cursors."""


log = logging.getLogger("tidings.email")

# The registry's name: the preference key and the metrics label.
CHANNEL = EmailDigest.name
UNSUBSCRIBE_PATH = "/notifications/unsubscribe"
# What the signature covers besides the user id: a signature for anything else (a token, a
# future link of another purpose) is never a valid unsubscribe signature.
_PURPOSE = b"tidings:email-unsubscribe:"
# Notifications read from the store per query while collecting a digest's range.
PAGE = 500
# Moving the cursor after a send is retried this often (a short store outage must not turn a
# sent digest into a repeat); past that the lease runs out and the digest may go out again.
FINISH_ATTEMPTS = 5
FINISH_PAUSE = 0.5


def _signature(secret: str, user_id: str) -> bytes:
    # surrogatepass: a query string can carry a lone surrogate; it must fail the check, not crash.
    message = _PURPOSE + user_id.encode(errors="surrogatepass")
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


def unsubscribe_url(settings: Settings, user_id: str) -> str:
    """The signed link that turns email off for `user_id`; it never expires (it is in emails
    people keep), and changing TIDINGS_SECRET invalidates every one sent before."""
    query = urlencode({"user": user_id, "sig": _signature(settings.secret, user_id).decode()})
    return f"{settings.public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?{query}"


def check_unsubscribe(settings: Settings, user_id: str, signature: str) -> bool:
    given = signature.encode(errors="surrogatepass")
    return hmac.compare_digest(_signature(settings.secret, user_id), given)


@dataclass(frozen=True, slots=True)
class Digest:
    """What one email carries: the notifications to show (newest first, at most
    TIDINGS_EMAIL_MAX_ITEMS) and how many more there are besides."""

    user_id: str
    email: str
    shown: tuple[Notification, ...]
    more: int
    first_seq: int
    last_seq: int
    # Per shown notification, how many it stands for: the newest of a group is listed once,
    # with the group's count (empty: one each).
    counts: tuple[int, ...] = ()

    def count_of(self, index: int) -> int:
        return self.counts[index] if self.counts else 1

    @property
    def count(self) -> int:
        return sum(self.count_of(i) for i in range(len(self.shown))) + self.more


def absolute(settings: Settings, link: str) -> str:
    """A notification's link as an email needs it: a path (`/invoices/7`) is resolved against
    TIDINGS_PUBLIC_URL's origin (the bell resolves it against the page's)."""
    return urljoin(settings.public_url, link)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def message_id(settings: Settings, digest: Digest) -> str:
    """The same for the same user and range: a repeated digest is recognisable as one."""
    user = hashlib.sha256(digest.user_id.encode()).hexdigest()[:20]
    host = urlsplit(settings.public_url).hostname or "tidings.invalid"
    return f"<digest.{user}.{digest.first_seq}-{digest.last_seq}@{host}>"


def build_message(settings: Settings, digest: Digest, now_ms: int) -> EmailMessage:
    # Bodies encoded with 76-character lines (RFC 2045); mailer.send writes the headers.
    message = EmailMessage(policy=policy.SMTP)
    count = digest.count
    message["Subject"] = f"{count} new notification{'s' if count != 1 else ''}"
    message["From"] = settings.email_from
    message["To"] = digest.email
    message["Date"] = format_datetime(datetime.fromtimestamp(now_ms / 1000, UTC))
    message["Message-ID"] = message_id(settings, digest)
    unsubscribe = unsubscribe_url(settings, digest.user_id)
    # RFC 2369 and RFC 8058: mail clients show an "unsubscribe" button that POSTs to the link.
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # RFC 3834: no auto-replies (vacation notices) to a machine's email.
    message["Auto-Submitted"] = "auto-generated"
    text = [f"You have {message['Subject']}.", ""]
    rows = []
    for index, n in enumerate(digest.shown):
        link = absolute(settings, n.link) if n.link else None
        folded = digest.count_of(index)
        # A group is listed once, as its newest notification with the group's count.
        when = _when(n.created_ms) + (f" · {folded} in this conversation" if folded > 1 else "")
        text += [f"* {n.message}", f"  {when}"]
        if link:
            text.append(f"  {link}")
        text.append("")
        body = html.escape(n.message)
        if link:
            body = f'<a href="{html.escape(link, quote=True)}">{body}</a>'
        rows.append(
            f'<li style="margin:0 0 12px">{body}<br>'
            f'<small style="color:#666">{html.escape(when)}</small></li>\n'
        )
    if digest.more:
        text += [f"… and {digest.more} more.", ""]
        rows.append(f"<li>… and {digest.more} more.</li>\n")
    text += ["--", f"To stop these emails: {unsubscribe}"]
    # Quoted-printable: 7-bit clean for any relay (no 8BITMIME needed), lines kept short.
    message.set_content("\n".join(text), cte="quoted-printable")
    message.add_alternative(
        "<!doctype html>\n<html><body>\n"
        f"<p>You have {html.escape(str(message['Subject']))}.</p>\n"
        f'<ul style="padding-left:20px">\n{"".join(rows)}</ul>\n'
        '<p style="color:#666;font-size:small">'
        f'<a href="{html.escape(unsubscribe, quote=True)}">Stop these emails</a></p>\n'
        "</body></html>\n",
        subtype="html",
        cte="quoted-printable",
    )
    return message


class Digester:
    """One node's digest loop (started by `Service.running` only when email is on)."""

    def __init__(
        self, settings: Settings, store: DigestStore, metrics: Metrics, clock: Clock
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.target = mailer.SmtpTarget.parse(settings.smtp_url)
        self.after_ms = int(settings.email_after * 60_000)
        self.lease_ms = int(settings.email_lease * 1000)

    def loops(self) -> Mapping[str, Loop]:
        return {"tidings-email": self.run}

    async def run(self) -> NoReturn:
        await forever(
            self._pass, pause=self._pause, failure="email digests failed; trying again", log=log
        )

    async def _pass(self) -> None:
        try:
            await self.run_once()
        except StoreUnavailable as exc:
            # Expected while the store is away: one line, no traceback.
            log.warning("email digests: the store is unavailable (%s); trying again", exc)

    async def _pause(self) -> None:
        # Jittered, so the nodes of a cluster do not all ask at the same moment.
        await asyncio.sleep(self.settings.email_interval * random.uniform(0.75, 1.25))

    async def run_once(self) -> int:
        """Send every digest that is due now (at most TIDINGS_EMAIL_BATCH); return how many
        were sent."""
        sent = 0
        for user_id in await self.store.email_due(self.after_ms, self.settings.email_batch):
            owner = secrets.token_hex(8)
            # The lease runs from here: a message is handed over only while it surely holds.
            deadline = time.monotonic() + self.settings.email_lease - self.settings.smtp_timeout
            claim = await self.store.claim_email(user_id, owner, self.after_ms, self.lease_ms)
            if claim is None:
                continue  # another node took it, or it stopped being due
            job = asyncio.ensure_future(self.deliver(claim, deadline))
            try:
                sent += await asyncio.shield(job)
            except asyncio.CancelledError:
                # Shutting down mid-digest: let the send and the cursor's move finish (bounded),
                # or the digest would go out again from another node after the lease.
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(job, 2 * self.settings.smtp_timeout)
                raise
        return sent

    async def deliver(self, claim: EmailClaim, deadline: float) -> int:
        """Send the claimed digest (or skip it); 1 when an email went out. `deadline`
        (time.monotonic()) is the last moment the message may be handed over."""
        now = self.clock.now_ms()
        preferences = await self.store.preferences(claim.user_id)
        listed, more, skipped = await self._collect(claim, preferences, now)
        shown = [n for n, _ in listed]
        if not preferences.allows(CHANNEL):
            skipped["unsubscribed"] += sum(c for _, c in listed) + more
            shown, more = [], 0
        if not shown:
            # Nothing to send: the range is dealt with, and no window is used up.
            await self._finish(claim, now)
            self._skipped(skipped)
            return 0
        digest = Digest(
            claim.user_id,
            claim.email,
            tuple(shown),
            more,
            claim.done_seq + 1,
            claim.claimed_seq,
            tuple(c for _, c in listed),
        )
        message = build_message(self.settings, digest, now)
        try:
            await asyncio.to_thread(
                mailer.send,
                self.target,
                message,
                timeout=self.settings.smtp_timeout,
                deadline=deadline,
            )
        except mailer.SendFailed as exc:
            self.metrics.away_failed.labels(CHANNEL).inc()
            backoff = min(
                self.settings.email_retry * 2**claim.attempts, self.settings.email_retry_max
            )
            log.warning(
                "email digest for user %s not sent (%s); next try in %.0f s",
                claim.user_id,
                exc,
                backoff,
            )
            next_ms = self.clock.now_ms() + int(backoff * 1000)
            await self.store.release_email(claim, next_ms, keep_claim=exc.maybe_sent)
            return 0
        self.metrics.away_sent.labels(CHANNEL).inc()
        log.info("email digest sent for user %s: %d notifications", claim.user_id, digest.count)
        await self._finish(claim, self.clock.now_ms() + self.after_ms)
        self._skipped(skipped)
        return 1

    def _skipped(self, skipped: Counter[str]) -> None:
        # Counted once the range is dealt with, not at each failed attempt to send it.
        for reason, count in skipped.items():
            self.metrics.away_skipped.labels(CHANNEL, reason).inc(count)

    async def _collect(
        self, claim: EmailClaim, preferences: Preferences, now: int
    ) -> tuple[list[tuple[Notification, int]], int, Counter[str]]:
        """The claimed range's notifications that go out (newest first, at most
        TIDINGS_EMAIL_MAX_ITEMS rows, a group as its newest with the group's count), how many
        more go out unlisted, and the skipped by reason."""
        limit = self.settings.email_max_items
        # Oldest first; a group's key moves to the end with each newer one of it. The newest
        # `limit` rows are kept: an older one pushed out is counted, not listed.
        rows: dict[tuple[str, str | int], tuple[Notification, int]] = {}
        more = 0
        skipped: Counter[str] = Counter()
        seq = claim.done_seq
        while seq < claim.claimed_seq:
            page = await self.store.after(claim.user_id, seq, PAGE)
            for n in page:
                if n.seq > claim.claimed_seq:
                    break
                reason = left_out(n, preferences, now)
                if reason is not None:
                    skipped[reason] += 1
                    continue
                key: tuple[str, str | int] = ("g", n.group) if n.group is not None else ("s", n.seq)
                _, count = rows.pop(key, (n, 0))
                rows[key] = (n, count + 1)
                if len(rows) > limit:
                    oldest = next(iter(rows))
                    more += rows.pop(oldest)[1]
            if len(page) < PAGE:
                break
            seq = page[-1].seq
        return list(reversed(rows.values())), more, skipped

    async def _finish(self, claim: EmailClaim, next_ms: int) -> None:
        for attempt in range(FINISH_ATTEMPTS):
            try:
                if not await self.store.finish_email(claim, next_ms):
                    log.warning(
                        "email digest for user %s: the claim ran out before it was finished; "
                        "it may be sent again",
                        claim.user_id,
                    )
                return
            except StoreUnavailable:
                if attempt == FINISH_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(FINISH_PAUSE)
