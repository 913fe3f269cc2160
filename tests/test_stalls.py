"""TIDINGS_DEBUG_STALLS: collector pauses in the log, and nothing installed when it is unset."""

from __future__ import annotations

import gc
import logging
import time
import weakref
from collections.abc import Iterator

import pytest

from tidings import stalls
from tidings.settings import Settings

ENV = {"TIDINGS_SECRET": "s" * 32}


@pytest.fixture
def callbacks() -> Iterator[None]:
    before = list(gc.callbacks)
    yield
    gc.callbacks[:] = before


@pytest.mark.usefixtures("callbacks")
def test_every_collection_is_logged_at_threshold_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="uvicorn.error")
    assert stalls.watch(Settings.from_env({**ENV, stalls.ENV: "0"}).debug_stalls)
    gc.collect()
    pauses = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gc pause")]
    assert any(p.startswith("gc pause gen=2 ") and " collected; " in p for p in pauses)
    # The collecting thread and its CPU time, beside the wall time.
    assert any(p.endswith(" on thread MainThread)") for p in pauses)


@pytest.mark.usefixtures("callbacks")
def test_unset_installs_nothing() -> None:
    before = len(gc.callbacks)
    assert not stalls.watch(Settings.from_env(ENV).debug_stalls)
    assert len(gc.callbacks) == before


@pytest.mark.usefixtures("callbacks")
def test_a_pause_under_the_threshold_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="uvicorn.error")
    assert stalls.watch(Settings.from_env({**ENV, stalls.ENV: "60000"}).debug_stalls)
    gc.collect()
    assert not [r for r in caplog.records if r.getMessage().startswith("gc pause")]


def test_settle_freezes_what_start_up_built_and_collects_young_objects_less_often() -> None:
    thresholds = gc.get_threshold()
    try:
        stalls.settle()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == stalls.THRESHOLDS
        assert stalls.THRESHOLDS[0] > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as the test process had it, back after a test that settles and tends."""
    thresholds = gc.get_threshold()
    yield
    stalls.unsettle(thresholds)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.mark.usefixtures("collector")
def test_tending_freezes_young_objects_and_collects_all_once_memory_grew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stalls.settle()
    # Objects a server made since: many live ones (streams waiting) and one cycle that becomes
    # garbage after it was frozen.
    live = [Node() for _ in range(1000)]
    a, b = Node(), Node()
    a.other, b.other = b, a
    stalls.tend()
    # Frozen: no collection walks them again.
    assert not any(isinstance(o, Node) for o in gc.get_objects(0) + gc.get_objects(1))
    assert gc.get_freeze_count() > len(live)
    ref = weakref.ref(a)
    del a, b
    gc.collect()
    assert ref() is not None  # frozen: the collector does not look at it
    # Once the peak memory grew by half since the last full collection, everything is
    # collected (here: as if that collection had been at a tiny process), but not sooner than
    # FULL_EVERY after the last one (settle's, just now): streams opening by the thousand
    # grow memory by half several times within seconds.
    monkeypatch.setattr(stalls, "_peak", 1)
    stalls.tend()
    assert ref() is not None
    monkeypatch.setattr(stalls, "_last_full", time.monotonic() - stalls.FULL_EVERY)
    stalls.tend()
    assert ref() is None
    assert all(isinstance(n, Node) for n in live)  # the live ones stay
    assert stalls._peak > 1


@pytest.mark.usefixtures("collector")
def test_a_process_that_unsettled_is_not_tended() -> None:
    stalls.settle()
    stalls.unsettle(gc.get_threshold())
    young = Node()
    stalls.tend()
    assert any(o is young for o in gc.get_objects(0) + gc.get_objects(1) + gc.get_objects(2))
