"""Durable, exactly-once Web Push: the notification log is the outbox.

Each subscription row is also its cursor: `done_seq` is the newest of its user's notifications it
is finished with. Every node runs `PushDelivery.run`: once per `push_interval` it asks the store
for subscriptions whose user has a notification past `done_seq` older than the grace, leases
each one by compare-and-set (`claim_push`), and for each such notification in seq order either
skips it (seen, read, archived, expired, muted, push turned off, or an open stream on some node
since it was created) or sends one push, and after each 2xx raises `done_seq` under the lease.

Exactly once, and its one window:
- A node killed after claiming and before sending holds a lease nobody renews; once it expires
  another node (or the restarted one) claims the row at the same `done_seq` and sends.
- A node whose lease expired during a slow send cannot raise `done_seq` (the write names the
  owner and checks the lease), and a lease outlives three request timeouts (settings), so two
  nodes never send under live leases at once.
- A node killed after the push service accepted and before `done_seq` is written (one store
  write, milliseconds) leaves the notification to be pushed again; so does an answer that was
  lost or late (past the timeout) after the push service accepted. The repeat carries the same
  `Topic` header, and the service worker shows it with the same `tag`, so the browser replaces
  the first notification instead of showing a second.

Presence (tidings.channels.presence) decides "away": a notification is skipped when a stream of
its user was open on some node at or after its creation.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn, Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from tidings.channels.away import left_out
from tidings.channels.base import Loop, Node
from tidings.channels.push import WebPush
from tidings.channels.push.endpoints import Refused, resolve
from tidings.channels.push.keys import Vapid
from tidings.clock import iso_ms
from tidings.loops import forever
from tidings.models import Notification, Preferences, PushSubscription
from tidings.store.base import InboxStore, LogStore, PreferenceStore, PushStore

__all__ = ["MAX_PLAINTEXT", "PushDelivery", "payload_of", "tag_of", "title_of", "topic_of"]


class PushOutbox(LogStore, InboxStore, PreferenceStore, PushStore, Protocol):
    """What push uses of the store: the log it reads (and its groups), the channels the user
    chose, the subscriptions with their cursors (presence is `tidings.channels.presence`'s)."""


log = logging.getLogger("tidings.push")

# The registry's name: the preference key and the metrics label.
CHANNEL: Final = WebPush.name
# RFC 8291 §4: a push message body is at most 4096 bytes; aes128gcm adds an 86-byte header (salt,
# record size, the sender's key), a 16-byte tag and a 1-byte padding delimiter.
MAX_PLAINTEXT: Final = 4096 - 86 - 16 - 1
# Never wait to send when less than this is left of the lease after a request's timeout.
LEASE_MARGIN_S: Final = 1.0


def payload_of(n: Notification, group_count: int = 1, public_url: str = "") -> bytes:
    """What a browser receives: the notification's visible fields for tidings-sw.js, and the same
    as WebKit's declarative Web Push (`web_push: 8030`, `notification`), which Safari shows
    without running a service worker. At most `MAX_PLAINTEXT` bytes (the actions, then the
    avatar, then the end of the message give way).

    A notification of a group stands for the group's `group_count` unread ones: its tag is the
    group's, so the browser replaces the group's previous push ("Carol and 4 others")."""
    body: dict[str, Any] = {
        "id": n.seq,
        "seq": n.seq,
        "message": n.message,
        "link": n.link,
        "category": n.category,
        "actor": None if n.actor is None else n.actor.to_json(),
        "actions": [a.to_json() for a in n.actions],
        "created_at": iso_ms(n.created_ms),
    }
    if n.group is not None:
        body["group"] = n.group
        body["group_count"] = max(1, group_count)
    body["tag"] = tag_of(n)
    data = _encode(_declared(body, n.created_ms, public_url))
    if len(data) > MAX_PLAINTEXT:
        body["actions"] = []
        data = _encode(_declared(body, n.created_ms, public_url))
    if len(data) > MAX_PLAINTEXT and body["actor"] is not None:
        body["actor"] = {"name": body["actor"]["name"], "avatar_url": None}
        data = _encode(_declared(body, n.created_ms, public_url))
    while len(data) > MAX_PLAINTEXT and body["message"] != "…":
        # Cut the message's UTF-8 by what is over plus the ellipsis (3 bytes), never inside a
        # character; more rounds cover characters JSON escapes into more bytes, and the message
        # appearing twice (here and as the declarative body).
        raw = body["message"].encode()
        times = 2 if b'"web_push":8030' in data else 1
        over = (len(data) - MAX_PLAINTEXT + times - 1) // times
        keep = max(0, len(raw) - over - 3)
        body["message"] = raw[:keep].decode(errors="ignore") + "…"
        data = _encode(_declared(body, n.created_ms, public_url))
    if len(data) > MAX_PLAINTEXT:
        # Only with limits raised far past their defaults: the link and the actor go as well.
        body.update(link=None, actor=None, category=None)
        data = _encode(_declared(body, n.created_ms, public_url))
    return data


def tag_of(n: Notification) -> str:
    """The browser notification's tag: the group's (a new push of the group replaces the
    previous one), else the notification's own (a repeated push replaces itself)."""
    if n.group is not None:
        return f"tidings-group-{hashlib.sha256(n.group.encode()).hexdigest()[:24]}"
    return f"tidings-{n.seq}"


def topic_of(n: Notification) -> str:
    """The `Topic` header (RFC 8030 §5.4: at most 32 base64url characters): a push service
    holding an undelivered push of the same topic replaces it with the newer one."""
    if n.group is not None:
        return "g" + hashlib.sha256(n.group.encode()).hexdigest()[:31]
    return f"tidings{n.seq}"[-32:]


def title_of(actor: dict[str, Any] | None, message: str, count: int) -> tuple[str, str]:
    """Title and body as shown: the actor as title (with how many others in a group), the
    message as body; without an actor, the message as title."""
    others = count - 1
    more = "" if others < 1 else f" and {others} other" if others == 1 else f" and {others} others"
    if actor is not None:
        return f"{actor['name']}{more}", message
    if others:
        return message, f"{others} more" if others > 1 else "1 more"
    return message, ""


def _declared(body: dict[str, Any], created_ms: int, public_url: str) -> dict[str, Any]:
    """`body` with WebKit's declarative Web Push fields (https://webkit.org/blog/16535/) when it
    can have them: `navigate` must be an absolute URL, so a link that is a path needs
    TIDINGS_PUBLIC_URL (without either the push is for the service worker alone).
    `mutable`: a service worker that is there still gets the push (tidings-sw.js leaves it
    to a tab in view)."""
    navigate = _absolute(body["link"], public_url) or _absolute(public_url, "")
    if navigate is None:
        return body
    title, text = title_of(body["actor"], body["message"], body.get("group_count", 1))
    shown: dict[str, Any] = {
        "title": title,
        "navigate": navigate,
        "tag": body["tag"],
        "timestamp": created_ms,
        "data": {"tidings": True, "id": body["id"]},
    }
    if text:
        shown["body"] = text
    if body["actor"] is not None and body["actor"].get("avatar_url"):
        icon = _absolute(body["actor"]["avatar_url"], public_url)
        if icon is not None:
            shown["icon"] = icon
    actions = [
        {"action": str(i), "title": a["label"], "navigate": url}
        for i, a in enumerate(body["actions"])
        if (url := _absolute(a["url"], public_url)) is not None
    ]
    if actions:
        shown["actions"] = actions
    return {**body, "web_push": 8030, "notification": shown, "mutable": True}


def _absolute(link: str | None, base: str) -> str | None:
    """`link` as an absolute http(s) URL (a path resolved against `base`), or None."""
    if not link:
        return None
    resolved = urljoin(base, link) if base else link
    return resolved if urlsplit(resolved).scheme in ("https", "http") else None


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def skip_reason(n: Notification, prefs: Preferences, present_ms: int, now_ms: int) -> str | None:
    """Why `n` is not pushed, or None to push it."""
    reason = left_out(n, prefs, now_ms)
    if reason is not None:
        return reason
    if not prefs.allows(CHANNEL):
        return "unsubscribed"
    if present_ms >= n.created_ms:
        return "present"
    return None


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: str  # "sent", "gone", "retry", "rejected", "refused" (a non-global address)
    retry_after_s: float | None = None


class PushDelivery:
    """One node's share of Web Push: the delivery loop (presence, its own piece, runs beside)."""

    def __init__(self, node: Node) -> None:
        self.settings = settings = node.settings
        self.store: PushOutbox = node.store
        self.clock = node.clock
        self.metrics = node.metrics
        self.presence = node.presence()
        self.vapid = Vapid(settings.vapid_private_key, settings.vapid_subject)
        # This node's name on the leases it takes: unique per process and start.
        self.owner = secrets.token_hex(8)
        self._client: httpx.AsyncClient | None = None

    def loops(self) -> Mapping[str, Loop]:
        return {"tidings-push": self.run}

    async def run(self) -> NoReturn:
        """Deliver until cancelled, once per `push_interval`."""
        timeout = httpx.Timeout(self.settings.push_timeout)
        try:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                self._client = client
                await forever(
                    self.deliver_due,
                    pause=self.settings.push_interval,
                    failure="push delivery pass failed; trying again",
                    log=log,
                )
        finally:
            self._client = None

    async def deliver_due(self) -> int:
        """One pass: every due subscription leased, its due notifications sent or skipped.
        Returns how many subscriptions were due."""
        cutoff = self.clock.now_ms() - int(self.settings.push_grace * 1000)
        due = await self.store.push_due(cutoff, self.settings.push_batch)
        if not due:
            return 0
        # This node's own streams are in the store before it decides, whatever the presence
        # loop's timing: a stream that opened and closed here a moment ago counts.
        await self.presence.write()
        slots = asyncio.Semaphore(self.settings.push_concurrency)

        async def one(sub: PushSubscription) -> None:
            async with slots:
                try:
                    await self.deliver(sub.endpoint)
                except Exception:
                    log.warning("push to one subscription failed; retrying later", exc_info=True)

        async with asyncio.TaskGroup() as tg:
            for sub in due:
                tg.create_task(one(sub))
        return len(due)

    async def deliver(self, endpoint: str) -> None:
        """Lease one subscription and bring it up to date; a no-op if another node holds it."""
        lease_s = self.settings.push_lease
        claimed = await self.store.claim_push(endpoint, self.owner, int(lease_s * 1000))
        if claimed is None:
            return
        loop = asyncio.get_running_loop()
        lease_end = loop.time() + lease_s - LEASE_MARGIN_S
        done, failures, retry_ms = claimed.done_seq, claimed.failures, 0
        try:
            # Read before the listing: every seq up to `last` is committed by then, so one the
            # listing leaves out is expired (the store no longer lists those), never one still
            # to come.
            last = (await self.store.position(claimed.user_id)).last_seq
            found = await self.store.after(claimed.user_id, done, self.settings.push_batch)
            prefs = await self.store.preferences(claimed.user_id)
            present = await self.presence.present_since(claimed.user_id)
            now = self.clock.now_ms()
            cutoff = now - int(self.settings.push_grace * 1000)
            # One push per conversation: of a group's notifications due in this pass only the
            # newest is pushed, standing for the group (its count, its tag); the older ones
            # are done with as folded.
            newest: dict[str, int] = {}
            for n in found:
                if n.created_ms > cutoff:
                    break
                if n.group is not None and skip_reason(n, prefs, present, now) is None:
                    newest[n.group] = n.seq
            for n in found:
                if n.created_ms > cutoff:
                    break
                reason = skip_reason(n, prefs, present, now)
                if reason is None and n.group is not None and newest.get(n.group) != n.seq:
                    reason = "folded"
                if reason is not None:
                    self.metrics.away_skipped.labels(CHANNEL, reason).inc()
                    done = n.seq
                    continue
                if loop.time() + self.settings.push_timeout > lease_end:
                    break  # the rest under a fresh lease, next pass
                outcome = await self._send(claimed, n)
                if outcome.kind == "refused":
                    await self.store.drop_push_subscription(endpoint)
                    return
                if outcome.kind == "gone":
                    log.info("push subscription gone (404/410); deleted")
                    await self.store.drop_push_subscription(endpoint)
                    return
                if outcome.kind == "retry":
                    self.metrics.away_failed.labels(CHANNEL).inc()
                    failures += 1
                    retry_ms = self.clock.now_ms() + int(self._backoff(failures, outcome) * 1000)
                    break
                if outcome.kind == "rejected":
                    # Any other 4xx: the same request would fail the same way again.
                    self.metrics.away_failed.labels(CHANNEL).inc()
                else:
                    self.metrics.away_sent.labels(CHANNEL).inc()
                done, failures = n.seq, 0
                # At once, not at the end: this write is what stands between a crash and a
                # repeat of this push.
                if not await self.store.advance_push(endpoint, self.owner, done):
                    log.warning("push lease lost during a pass; another node continues")
                    return
            else:
                if len(found) < self.settings.push_batch:
                    # Everything listed is dealt with and nothing more is listed: what lies
                    # between here and `last` expired. Done with it too, or the subscription
                    # would be due again every pass.
                    done = max(done, last)
        finally:
            try:
                await self.store.release_push(
                    endpoint, self.owner, done, retry_ms=retry_ms, failures=failures
                )
            except Exception:
                # The lease then simply expires, and the next owner starts from the last
                # `done_seq` written.
                log.warning("push lease release failed", exc_info=True)

    def _backoff(self, failures: int, outcome: _Outcome) -> float:
        if outcome.retry_after_s is not None:
            return min(self.settings.push_retry_max, max(1.0, outcome.retry_after_s))
        base = min(self.settings.push_retry_max, 2.0 ** min(failures, 30))
        return base * random.uniform(0.5, 1.0)

    async def _send(self, sub: PushSubscription, n: Notification) -> _Outcome:
        assert self._client is not None
        count = 1
        if n.group is not None:
            heads = await self.store.group_heads(
                sub.user_id, [n.group], category=None, archived=False
            )
            count = heads.get(n.group, (n.seq, 1))[1]
        try:
            payload = payload_of(n, count, self.settings.public_url)
            request = self.vapid.request(
                sub, payload, ttl=self.settings.push_ttl, topic=topic_of(n)
            )
        except Exception:
            # Keys the route checked cannot fail here; should one still, this push can never
            # be made, and retrying it forever would hold up the subscription.
            log.warning("push could not be encrypted or signed; skipped", exc_info=True)
            return _Outcome("rejected")
        url = httpx.URL(request.url)
        headers = dict(request.headers)
        extensions: dict[str, Any] = {}
        try:
            # Again before each send: DNS may now point the name inward. Within the send's own
            # timeout, which the lease arithmetic counts on.
            target = await resolve(
                url.host,
                url.port or (443 if url.scheme == "https" else 80),
                dns_timeout=min(self.settings.push_dns_timeout, self.settings.push_timeout),
                allow_private=self.settings.push_allow_private,
            )
        except Refused as exc:
            log.warning("push endpoint refused: %s; subscription deleted", exc)
            return _Outcome("refused")
        except (TimeoutError, OSError) as exc:
            log.info("push service name did not resolve (%s); retrying later", type(exc).__name__)
            return _Outcome("retry")
        if target.address != url.host:
            # Connect to the address just checked; the name stays the TLS name and Host header.
            headers["host"] = url.netloc.decode("ascii")
            extensions["sni_hostname"] = url.host
            url = url.copy_with(host=target.address)
        try:
            async with asyncio.timeout(self.settings.push_timeout):
                response = await self._client.post(
                    url, content=request.body, headers=headers, extensions=extensions
                )
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            log.info("push service unreachable (%s); retrying later", type(exc).__name__)
            return _Outcome("retry")
        status = response.status_code
        if 200 <= status < 300:
            return _Outcome("sent")
        if status in (404, 410):
            return _Outcome("gone")
        if status == 429 or status >= 500:
            return _Outcome("retry", _retry_after(response.headers.get("retry-after")))
        log.warning("push service refused a push: %s %s", status, response.text[:200])
        return _Outcome("rejected")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: the backoff decides
