"""The bytes a shared bus carries between nodes: small JSON batches of events.

One message is a JSON array of events, packed up to a size limit (PostgreSQL NOTIFY payloads stop
at 8000 bytes), so publishing to 10,000 users is a handful of messages, not 10,000. A
`Published` event carries the notification itself when it fits, so the receiving node delivers
without a store query; a large one travels as (user, seq) and the stream reads it from the store.
A `resync` entry asks every node to let all its streams check the store: the sender had a
message it could not announce. With `shared_bodies` (the local bus between the workers of one
`tidings serve --workers N`, all of one version) a publish to many users is one `pm` entry: the
notification once and the (user, seq) pairs, instead of the body again for every user.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from tidings.events import (
    ArchiveChanged,
    Deleted,
    Event,
    Published,
    ReadChanged,
    Resync,
    ScheduleHint,
    SeenChanged,
    Snoozed,
    Unsnoozed,
    UserResync,
)
from tidings.models import Action, Actor, Draft, Notification, one_line_json
from tidings.store.common import made

__all__ = ["Decoder", "decode", "encode", "encode_per_user", "resync_message"]

log = logging.getLogger("tidings.bus")

# Below PostgreSQL's 8000-byte NOTIFY limit with room for the array brackets and separators.
DEFAULT_LIMIT = 7900


_DECODER = json.JSONDecoder()


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _entries(event: Event) -> Iterator[dict[str, Any]]:
    if isinstance(event, Published):
        entry: dict[str, Any] = {"t": "p", "u": event.user_id, "s": event.seq}
        n = event.notification
        if n is not None:
            entry["n"] = [n.message, n.link, n.kind, n.data, n.created_ms, n.read_ms]
            inbox = _inbox(n)
            if inbox:
                # Beside "n", not in it: a node of an older tidings unpacks "n" by length and
                # ignores keys it does not know.
                entry["i"] = inbox
        yield entry
    elif isinstance(event, ReadChanged):
        if event.up_to is not None:
            yield {"t": "r", "u": event.user_id, "c": event.unread, "up": event.up_to}
        else:
            # Split a long id list into parts that fit; each part is a valid event on its own.
            ids = list(event.ids or ())
            step = 500
            for start in range(0, max(len(ids), 1), step):
                yield {
                    "t": "r",
                    "u": event.user_id,
                    "c": event.unread,
                    "i": ids[start : start + step],
                }
    elif isinstance(event, Deleted):
        yield {"t": "d", "u": event.user_id, "s": event.seq, "c": event.unread}
    elif isinstance(event, SeenChanged):
        yield {"t": "s", "u": event.user_id, "up": event.up_to, "n": event.unseen}
    elif isinstance(event, ArchiveChanged):
        ids = list(event.ids)
        step = 500
        for start in range(0, max(len(ids), 1), step):
            yield {
                "t": "a" if event.archived else "ua",
                "u": event.user_id,
                "i": ids[start : start + step],
                "c": event.unread,
                "n": event.unseen,
            }
    elif isinstance(event, Resync):
        yield {"t": "x"}
    elif isinstance(event, UserResync):
        # A node of an older tidings reads this as a resync of every stream: correct, dearer.
        yield {"t": "x", "u": event.user_id}
    elif isinstance(event, ScheduleHint):
        yield {"t": "w", "at": event.deliver_ms}
    elif isinstance(event, Snoozed):
        ids = list(event.ids)
        for start in range(0, max(len(ids), 1), 500):
            yield {
                "t": "z",
                "u": event.user_id,
                "i": ids[start : start + 500],
                "at": event.until_ms,
                "c": event.unread,
                "n": event.unseen,
            }
    elif isinstance(event, Unsnoozed):
        # One entry per notification, so each fits on its own; `encode` drops a body too large
        # for a message, keeping its seq ("s") for the receiving stream to read.
        for n in event.notifications:
            yield {
                "t": "uz",
                "u": event.user_id,
                "s": n.seq,
                "c": event.unread,
                "n": event.unseen,
                "b": [n.message, n.link, n.kind, n.data, n.created_ms, n.read_ms, _inbox(n)],
            }
        for seq in event.missing:
            yield {"t": "uz", "u": event.user_id, "s": seq, "c": event.unread, "n": event.unseen}


def _inbox(n: Notification) -> dict[str, Any]:
    """The inbox fields that are set, under short names."""
    inbox: dict[str, Any] = {}
    if n.category is not None:
        inbox["c"] = n.category
    if n.actor is not None:
        inbox["a"] = [n.actor.name, n.actor.avatar_url]
    if n.actions:
        inbox["b"] = [[a.label, a.url] for a in n.actions]
    if n.group is not None:
        inbox["g"] = n.group
    if n.expires_ms is not None:
        inbox["e"] = n.expires_ms
    if n.seen_ms is not None:
        inbox["s"] = n.seen_ms
    if n.archived_ms is not None:
        inbox["z"] = n.archived_ms
    return inbox


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _decode_inbox(inbox: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "category": _text_or_none(inbox.get("c")),
        "group": _text_or_none(inbox.get("g")),
        "expires_ms": _int_or_none(inbox.get("e")),
        "seen_ms": _int_or_none(inbox.get("s")),
        "archived_ms": _int_or_none(inbox.get("z")),
    }
    if (actor := inbox.get("a")) is not None:
        name, avatar_url = actor
        fields["actor"] = Actor(name=str(name), avatar_url=_text_or_none(avatar_url))
    fields["actions"] = tuple(Action(label=str(lb), url=str(u)) for lb, u in inbox.get("b", ()))
    return fields


def encode(
    events: Sequence[Event], limit: int = DEFAULT_LIMIT, *, shared_bodies: bool = False
) -> list[str]:
    """Pack `events` into as few JSON arrays of at most `limit` bytes (UTF-8) as possible.

    `shared_bodies`: consecutive new notifications of one publish (the same body for several
    users) travel as `pm` entries. Only for receivers of this version: an older one skips them."""
    messages: list[str] = []
    batch: list[str] = []
    size = 2
    for raw in _raws(events, limit, shared_bodies):
        length = len(raw.encode()) + 1
        if batch and size + length > limit:
            messages.append("[" + ",".join(batch) + "]")
            batch, size = [], 2
        batch.append(raw)
        size += length
    if batch:
        messages.append("[" + ",".join(batch) + "]")
    return messages


# A broadcast on a per-user bus is one message per user, each the same entry but for the user and
# the seq: `{"t":"p","u":USER,"s":SEQ` then a tail that is the same for all of them. The tail is
# encoded once per publish (encode_per_user) and recognised once per run of messages (decode), so
# a 10,000-user publish costs 10,000 splices instead of 10,000 JSON encodings on the sending node,
# and 10,000 copies instead of 10,000 decodings and SSE-line encodings on each receiving one.
_ONE_HEAD = '[{"t":"p","u":'
_LINE_HEAD = '{"id":0,"user_id":""'


def encode_per_user(
    per_user: dict[str, list[Event]], limit: int = DEFAULT_LIMIT
) -> Iterator[tuple[str, str]]:
    """`(user, message)` for each user's events, as `encode(events, limit)` would give them;
    a user whose one event is a notification with the same body as the previous user's gets
    that encoding spliced with its own user and seq."""
    key: tuple[Any, ...] | None = None
    tail = ""
    # One user (the common publish) has nothing to share: no template to make.
    many = len(per_user) > 1
    for user_id, mine in per_user.items():
        event = mine[0] if many and len(mine) == 1 else None
        if not isinstance(event, Published) or event.notification is None:
            for message in encode(mine, limit):
                yield user_id, message
            continue
        n = event.notification
        if key is not None and _same_copy(n, key):
            message = f'{_ONE_HEAD}{_compact(user_id)},"s":{event.seq}{tail}'
            if len(message.encode()) <= limit:
                yield user_id, message
                continue
        messages = encode(mine, limit)
        for message in messages:
            yield user_id, message
        # This user's message, body and all, is the template for the next users of this body.
        prefix = f'{_ONE_HEAD}{_compact(user_id)},"s":{event.seq}'
        one = messages[0] if len(messages) == 1 else ""
        if one.startswith(prefix) and one.startswith(',"n":', len(prefix)):
            key, tail = (*_body(n), n.read_ms, n.seen_ms, n.archived_ms), one[len(prefix) :]
        else:
            key, tail = None, ""


def _same_copy(n: Notification, key: tuple[Any, ...]) -> bool:
    # The copies of one publish share their data dict (store.common.made): identity first.
    body = _body(n)
    return (
        body[:-1] == key[:9]
        and (n.data is key[9] or n.data == key[9])
        and (n.read_ms, n.seen_ms, n.archived_ms) == key[10:]
    )


def _raws(events: Sequence[Event], limit: int, shared_bodies: bool) -> Iterator[str]:
    """Each entry of `events` as compact JSON that fits a message."""
    start = 0
    while start < len(events):
        event = events[start]
        if shared_bodies and isinstance(event, Published) and _fresh(event.notification):
            end = start + 1
            key = _body(event.notification)
            while end < len(events) and _same(events[end], key):
                end += 1
            if end - start > 1:
                yield from _many(events[start:end], limit)
                start = end
                continue
        for entry in _entries(event):
            raw = _compact(entry)
            if len(raw.encode()) + 2 > limit and "n" in entry and entry["t"] == "p":
                # Too large to carry: the receiving stream reads the store.
                del entry["n"]
                entry.pop("i", None)
                raw = _compact(entry)
            elif len(raw.encode()) + 2 > limit and "b" in entry:
                del entry["b"]
                raw = _compact(entry)
            yield raw
        start += 1


def _fresh(n: Notification | None) -> bool:
    """Just published: what a `pm` entry can carry (no read, seen, archived or snoozed time)."""
    return (
        n is not None
        and n.read_ms is None
        and n.seen_ms is None
        and n.archived_ms is None
        and n.snoozed_ms is None
    )


def _body(n: Notification | None) -> tuple[Any, ...]:
    assert n is not None
    return (n.message, n.link, n.kind, n.created_ms, n.category, n.actor, n.actions, n.group,
            n.expires_ms, n.data)  # fmt: skip


def _same(event: Event, key: tuple[Any, ...]) -> bool:
    if not isinstance(event, Published) or not _fresh(event.notification):
        return False
    n = event.notification
    assert n is not None
    # The copies of one publish share their data dict (store.common.made): identity first.
    return _body(n)[:-1] == key[:-1] and (n.data is key[-1] or n.data == key[-1])


def _many(run: Sequence[Event], limit: int) -> Iterator[str]:
    """`pm` entries for the users of one publish: the body once per entry, then as many
    (user, seq) pairs as fit."""
    first = run[0]
    assert isinstance(first, Published)
    n = first.notification
    assert n is not None
    head: dict[str, Any] = {"t": "pm", "n": [n.message, n.link, n.kind, n.data, n.created_ms]}
    inbox = _inbox(n)
    if inbox:
        head["i"] = inbox
    base = _compact(head)[:-1] + ',"us":['
    room = limit - len(base.encode()) - 8
    if room < 256:
        # The body alone nearly fills a message: each user on its own, as without sharing.
        for event in run:
            yield from _raws([event], limit, False)
        return
    pairs: list[str] = []
    size = 0
    for event in run:
        assert isinstance(event, Published)
        pair = _compact([event.user_id, event.seq])
        length = len(pair.encode()) + 1
        if pairs and size + length > room:
            yield base + ",".join(pairs) + "]}"
            pairs, size = [], 0
        pairs.append(pair)
        size += length
    if pairs:
        yield base + ",".join(pairs) + "]}"


def _decode_many(entry: dict[str, Any]) -> list[Event]:
    """The `Published` events of one `pm` entry, their notifications copies of one template."""
    message, link, nkind, data, created_ms = entry["n"]
    if not isinstance(data, dict):
        raise TypeError("data")
    pairs = [(str(u), int(s)) for u, s in entry["us"]]
    fields = _decode_inbox(entry.get("i") or {})
    draft = Draft(
        user_ids=tuple(u for u, _ in pairs),
        message=str(message),
        link=_text_or_none(link),
        kind=_text_or_none(nkind),
        data=data,
        category=fields["category"],
        actor=fields.get("actor"),
        actions=fields["actions"],
        group=fields["group"],
        expires_ms=fields["expires_ms"],
    )
    return [Published(n.user_id, n.seq, n) for n in made(draft, pairs, int(created_ms))]


def resync_message() -> str:
    return '[{"t":"x"}]'


class Decoder:
    """`decode` with a memory of the last one-notification message it decoded, so that a run
    of a broadcast's copies (the same message but for the user and the seq) is copied instead
    of parsed. One per receiving connection's owner (a bus): the memory is not shared between
    buses, nor between the event loops of one process."""

    __slots__ = ("_first", "_line_tail", "_named", "_tail")

    def __init__(self) -> None:
        # Of the last one-notification message seen: its tail (all after the seq), its
        # notification once decoded, the tail of that notification's SSE line once cut, and the
        # user and seq its head named (until it is decoded).
        self._tail = ""
        self._first: Notification | None = None
        self._line_tail: str | None = None
        self._named: tuple[str, int] | None = None

    def __call__(self, raw: str | bytes) -> list[Event]:
        """The events of one message; a malformed entry is skipped (and logged), never raised."""
        try:
            text = raw.decode() if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            log.warning("bus: ignoring a message that is not JSON")
            return []
        spliced = self._spliced(text)
        if spliced is not None:
            return spliced
        events = _decode(text)
        named, self._named = self._named, None
        if (
            len(events) == 1
            and named is not None
            and self._first is None
            and text.endswith(self._tail)
        ):
            event = events[0]
            if (
                isinstance(event, Published)
                and event.notification is not None
                and (event.user_id, event.seq) == named
            ):
                # The next message with this tail is a copy of this one (`_spliced`).
                self._first = event.notification
        return events

    def _spliced(self, text: str) -> list[Event] | None:
        """The events of `text` when it is the same one-notification message as the last one
        decoded but for the user and the seq: a copy of that notification, its SSE line spliced
        from the last one's. None when it is not (then it is parsed, and remembered if it may
        be)."""
        at = len(_ONE_HEAD)
        if not text.startswith(_ONE_HEAD) or text[at : at + 1] != '"':
            return None
        try:
            user_id, end = _DECODER.raw_decode(text, at)
        except ValueError:
            return None
        comma = text.find(",", end + 5)
        digits = text[end + 5 : comma]
        if (
            not text.startswith(',"s":', end)
            or comma < 0
            or not (digits.isascii() and digits.isdigit())
        ):
            return None
        seq = int(digits)
        tail = text[comma:]
        if tail != self._tail:
            self._tail, self._first, self._line_tail = tail, None, None
            self._named = (user_id, seq)
            return None
        first = self._first
        if first is None or not tail.startswith(',"n":'):
            self._named = (user_id, seq)
            return None
        n: Notification = object.__new__(Notification)
        own = vars(n)
        own.update(vars(first))
        own["user_id"] = user_id
        own["seq"] = seq
        own.pop("line", None)
        line_tail = self._line_tail
        if line_tail is None:
            text0 = first.line
            head = f'{{"id":{first.seq},"user_id":{one_line_json(first.user_id)}'
            line_tail = self._line_tail = text0[len(head) :] if text0.startswith(head) else ""
        if line_tail:
            own["line"] = f'{{"id":{seq},"user_id":{one_line_json(user_id)}{line_tail}'
        return [Published(user_id, seq, n)]


_decoder = Decoder()


def decode(raw: str | bytes) -> list[Event]:
    """The events of one message; a malformed entry is skipped (and logged), never raised.
    A bus keeps a `Decoder` of its own; this one is for everything else."""
    return _decoder(raw)


def _decode(raw: str) -> list[Event]:
    try:
        entries = json.loads(raw)
    except ValueError:
        log.warning("bus: ignoring a message that is not JSON")
        return []
    if not isinstance(entries, list):
        return []
    events: list[Event] = []
    for entry in entries:
        try:
            if isinstance(entry, dict) and entry.get("t") == "pm":
                events.extend(_decode_many(entry))
                continue
            event = _event(entry)
        except (KeyError, TypeError, ValueError, IndexError):
            log.warning("bus: ignoring a malformed entry")
            continue
        last = events[-1] if events else None
        if (
            isinstance(event, Unsnoozed)
            and isinstance(last, Unsnoozed)
            and last.user_id == event.user_id
        ):
            # One wake-up sent one entry per notification: one event again for the streams.
            event = Unsnoozed(
                user_id=event.user_id,
                notifications=last.notifications + event.notifications,
                unread=event.unread,
                unseen=event.unseen,
                missing=last.missing + event.missing,
            )
            events[-1] = event
        else:
            events.append(event)
    return events


def _event(entry: dict[str, Any]) -> Event:
    kind = entry["t"]
    if kind == "x":
        return UserResync(str(entry["u"])) if "u" in entry else Resync()
    if kind == "w":
        return ScheduleHint(int(entry["at"]))
    user_id = str(entry["u"])
    if kind == "z":
        return Snoozed(
            user_id=user_id,
            ids=tuple(int(i) for i in entry["i"]),
            until_ms=int(entry["at"]),
            unread=int(entry["c"]),
            unseen=int(entry["n"]),
        )
    if kind == "uz":
        seq = int(entry["s"])
        unread, unseen = int(entry["c"]), int(entry["n"])
        if (packed := entry.get("b")) is None:
            return Unsnoozed(user_id, (), unread, unseen, missing=(seq,))
        message, link, nkind, data, created_ms, read_ms, inbox = packed
        if not isinstance(data, dict) or not isinstance(inbox, dict):
            raise TypeError("data")
        woken = Notification(
            user_id=user_id,
            seq=seq,
            message=str(message),
            link=_text_or_none(link),
            kind=_text_or_none(nkind),
            data=data,
            created_ms=int(created_ms),
            read_ms=_int_or_none(read_ms),
            **_decode_inbox(inbox),
        )
        return Unsnoozed(user_id, (woken,), unread, unseen)
    if kind == "p":
        seq = int(entry["s"])
        notification = None
        if (body := entry.get("n")) is not None:
            message, link, nkind, data, created_ms, read_ms = body
            if not isinstance(data, dict):
                raise TypeError("data")
            notification = Notification(
                user_id=user_id,
                seq=seq,
                message=str(message),
                link=None if link is None else str(link),
                kind=None if nkind is None else str(nkind),
                data=data,
                created_ms=int(created_ms),
                read_ms=None if read_ms is None else int(read_ms),
                **_decode_inbox(entry.get("i") or {}),
            )
        return Published(user_id=user_id, seq=seq, notification=notification)
    if kind == "r":
        up_to = entry.get("up")
        return ReadChanged(
            user_id=user_id,
            unread=int(entry["c"]),
            ids=None if up_to is not None else tuple(int(i) for i in entry["i"]),
            up_to=None if up_to is None else int(up_to),
        )
    if kind == "d":
        return Deleted(user_id=user_id, seq=int(entry["s"]), unread=int(entry["c"]))
    if kind == "s":
        return SeenChanged(user_id=user_id, up_to=int(entry["up"]), unseen=int(entry["n"]))
    if kind in ("a", "ua"):
        return ArchiveChanged(
            user_id=user_id,
            ids=tuple(int(i) for i in entry["i"]),
            archived=kind == "a",
            unread=int(entry["c"]),
            unseen=int(entry["n"]),
        )
    raise ValueError(kind)
