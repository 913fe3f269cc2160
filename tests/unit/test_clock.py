"""The API's one timestamp format, and the clock's milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tidings.clock import iso_ms, now_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def expected(ms: int) -> str:
    """The same instant formatted by datetime alone, independently of `iso_ms`'s caches."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


@pytest.mark.parametrize(
    "ms",
    [
        0,
        1,
        999,
        1000,
        1001,
        -1,  # 1969-12-31T23:59:59.999Z: the second is floored, the millisecond is 999
        -999,
        -1000,
        -1001,
        1_796_850_000_123,
        253_402_300_799_999,  # 9999-12-31T23:59:59.999Z
        -62_135_596_800_000,  # 0001-01-01T00:00:00.000Z
    ],
)
def test_iso_ms_formats_the_instant(ms: int) -> None:
    assert iso_ms(ms) == expected(ms)


def test_iso_ms_each_millisecond_of_a_second_and_across_it() -> None:
    # The second's text is cached: every millisecond of it, and the next second's, still differ.
    start = 1_796_850_059_000
    seen = [iso_ms(ms) for ms in range(start - 2, start + 1002)]
    assert seen == [expected(ms) for ms in range(start - 2, start + 1002)]
    assert len(set(seen)) == len(seen)
    assert seen[1] == "2026-12-09T21:00:58.999Z"
    assert seen[2] == "2026-12-09T21:00:59.000Z"


def test_now_ms_is_the_wall_clock_in_milliseconds() -> None:
    before = time.time()
    got = now_ms()
    after = time.time()
    assert int(before * 1000) - 1 <= got <= int(after * 1000) + 1
