"""The scheduling stamps that keep one process's schedules in order (store/common.py)."""

from __future__ import annotations

from tidings.store.common import OrderStamps


def test_stamps_within_one_millisecond_still_rise_and_catch_up_with_the_clock() -> None:
    stamps = OrderStamps()
    assert [stamps.next(5_000) for _ in range(3)] == [5_000, 5_001, 5_002]
    # The clock moves past them: its reading again.
    assert stamps.next(5_010) == 5_010
    # A clock that steps back a little (NTP) does not make a stamp repeat.
    assert stamps.next(4_600) == 5_011


def test_stamps_run_at_most_a_second_ahead_of_the_clock() -> None:
    stamps = OrderStamps()
    got = [stamps.next(0) for _ in range(OrderStamps.AHEAD_MS + 2)]
    assert got[: OrderStamps.AHEAD_MS + 1] == list(range(OrderStamps.AHEAD_MS + 1))
    # Past the bound, the clock's own reading: ties by key rather than a stamp far ahead.
    assert got[-1] == 0
