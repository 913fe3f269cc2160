"""TIDINGS_DEBUG_STALLS: collector pauses in the log, and nothing installed when it is unset."""

from __future__ import annotations

import gc
import logging
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
