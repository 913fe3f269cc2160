"""The SSE wire format: every byte a stream writes is built here.

One owner, as sse-starlette's `ServerSentEvent.encode` is: the hub queues frames built by these
functions, the stream writes them. Each frame ends with the blank line that dispatches it.
"""

from __future__ import annotations

import random
from typing import Final

from tidings.models import Notification, one_line_json

__all__ = [
    "HEADERS",
    "drain_retry_ms",
    "drain_top_ms",
    "event",
    "notification",
    "reset",
    "retry",
]

# The header block of every stream (copied per stream: a middleware may add to it).
HEADERS: Final = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # nginx: pass each frame on as it comes, do not buffer the stream.
    (b"x-accel-buffering", b"no"),
)

# The shortest reconnect delay a draining node hands out: a node needs a moment to go away.
DRAIN_RETRY_MIN_MS: Final = 500
# The narrowest spread of a drain's delays (500..1,000 ms): some jitter even for a few streams.
DRAIN_SPREAD_MIN_MS: Final = 500


def ping(heartbeat: float) -> bytes:
    """The heartbeat: a named event (comments never reach JavaScript) whose one-line JSON data
    announces the interval in seconds, so the browser's watchdog knows what to expect instead of
    guessing it from arrival gaps."""
    return b'event: ping\ndata: {"heartbeat": %s}\n\n' % f"{heartbeat:g}".encode()


def retry(ms: int) -> bytes:
    """How long the browser's EventSource waits before it reconnects."""
    return f"retry: {ms}\n\n".encode()


def event(name: str, body: object) -> bytes:
    return f"event: {name}\ndata: {one_line_json(body)}\n\n".encode()


def notification(n: Notification) -> bytes:
    # The id is the seq: the browser sends it back as Last-Event-ID when it reconnects.
    return f"id: {n.seq}\nevent: new-notification\ndata: {n.line}\n\n".encode()


def reset(last_seq: int, reason: str) -> bytes:
    # The id moves the browser's Last-Event-ID to now, so its next reconnect resumes from here.
    return f"id: {last_seq}\n".encode() + event("reset", {"last_seq": last_seq, "reason": reason})


def drain_top_ms(streams: int, per_second: int, top: int) -> int:
    """The longest `retry:` a node ending `streams` streams hands out: their reconnects spread
    at about `per_second` (0: over the whole `top`), never later than `top`.

    A fixed 0.5-5 s spread made every client of a small node wait 2.75 s on average after each
    restart for nothing, while a node with 10,000 streams needs about that long to take them back.
    """
    if per_second <= 0:
        return top
    spread = max(DRAIN_SPREAD_MIN_MS, -(-streams * 1000 // per_second))
    return min(top, DRAIN_RETRY_MIN_MS + spread)


def drain_retry_ms(top: int) -> int:
    """A jittered reconnect delay, so the clients of a draining node spread over the others."""
    return random.randint(min(DRAIN_RETRY_MIN_MS, top), top)
