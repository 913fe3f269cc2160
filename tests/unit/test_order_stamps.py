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
    # One that steps back further: the same stamp as the last (a tie, by key), never an earlier.
    assert stamps.next(1_000) == 5_011


def test_a_burst_holds_at_most_a_second_ahead_and_never_goes_back() -> None:
    stamps = OrderStamps()
    got = [stamps.next(0) for _ in range(OrderStamps.AHEAD_MS + 500)]
    assert got[: OrderStamps.AHEAD_MS + 1] == list(range(OrderStamps.AHEAD_MS + 1))
    # Past the bound the stamps hold (ties, by key): none earlier than one given before.
    assert set(got[OrderStamps.AHEAD_MS :]) == {OrderStamps.AHEAD_MS}
    assert got == sorted(got)
    # The clock catches up: rising again from its reading.
    assert stamps.next(5_000) == 5_000
