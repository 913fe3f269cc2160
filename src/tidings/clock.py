"""The time: the clock everything is stamped with, and the one format the API writes it in."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime

__all__ = ["Clock", "iso_ms", "now_ms"]


def now_ms() -> int:
    # The same integer as `int(datetime.now(UTC).timestamp() * 1000)`, without the datetime and
    # the float: this runs several times per publish and once per live delivery (the metrics).
    return time.time_ns() // 1_000_000


class Clock:
    """The time the stores and the service stamp things with, in ms since the epoch.

    One object passed in rather than `now_ms()` called inside, so a test sets the time (`set`,
    `advance`) instead of sleeping to order timestamps or editing rows by hand.
    """

    def __init__(self, fixed_ms: int | None = None) -> None:
        self._fixed = fixed_ms

    def now_ms(self) -> int:
        return now_ms() if self._fixed is None else self._fixed

    def set(self, ms: int) -> None:
        """Stop the clock at `ms`; it stays there until set or advanced again."""
        self._fixed = ms

    def advance(self, ms: int) -> None:
        self._fixed = self.now_ms() + ms


# Cached: the notifications of one commit share their stamp, and a catch-up or a broadcast formats
# the same few instants thousands of times.
@functools.lru_cache(maxsize=4096)
def iso_ms(ms: int) -> str:
    """`2026-11-27T21:07:50.123Z`, the one timestamp format of the API."""
    return f"{_iso_second(ms // 1000)}{ms % 1000:03d}Z"


# And the second's text cached on its own: each publish has a stamp of its own, so the cache
# above misses on every publish, and strftime was most of `to_json`'s cost; 1,000 publishes a
# second share one entry here.
@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    moment = datetime.fromtimestamp(second, UTC)
    # The year by hand: strftime's %Y does not pad years before 1000 on every platform.
    return f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S.")
