"""The collector against loop stalls: settled after start-up, and its pauses in the log on demand.

`settle()` runs once the server has started: what start-up built (modules, the app, its schemas)
lives as long as the process, so it is frozen out of every later collection, and young objects
are collected less often (each young collection under load also ages survivors toward the full
collections that walk every stream's objects).

The setting `TIDINGS_DEBUG_STALLS=<ms>` (off when unset: nothing is installed) logs, at WARNING on
`uvicorn.error`, every garbage collection that held the process for at least that many
milliseconds (`0`: every one), as `gc pause gen=<generation> <ms> ms (<collected> collected)`.
bench/ reads these lines next to its `/healthz` probes: a debugging aid.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

__all__ = ["ENV", "settle", "watch"]

ENV = "TIDINGS_DEBUG_STALLS"
# CPython's defaults are (700, 10, 10): a young collection every 700 net allocations.
THRESHOLDS = (10_000, 20, 20)


# How often (in seconds) the server collects its young objects and freezes what survived.
TEND_EVERY = 0.5
# What was frozen after the last full collection: `tend` collects everything again once twice
# as much is frozen (see there).
_frozen = 0


def settle() -> None:
    """Freeze what start-up built and collect young objects less often (once, after start-up)."""
    global _frozen
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    _frozen = gc.get_freeze_count()


def tend() -> None:
    """Collect the young objects and freeze the survivors (every TEND_EVERY s, on the loop).

    CPython counts a generation's size as allocations minus deallocations. A server whose
    streams wait replaces objects (each wake-up makes a new future, coroutine and callback and
    frees the old ones), so the count hardly grows while the youngest generation fills with
    live objects: in the soak a young collection came every few minutes, found ~400,000 live
    objects and no garbage, and held the loop 1–2 s; the next older one walked 1.4 million
    (bench/growth-and-soak.md). Collected twice a second, the young ones are a few thousand;
    frozen, what survives is never walked again (it is still freed when it is no longer
    referenced: freezing only takes it out of the collector's lists). Garbage in a reference
    cycle among frozen objects is not found, so once twice as much is frozen as after the last
    full collection, everything is collected once more (a long pause, as rare as that growth).
    """
    global _frozen
    gc.collect(1)
    gc.freeze()
    if gc.get_freeze_count() > 2 * _frozen:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        _frozen = gc.get_freeze_count()


log = logging.getLogger("uvicorn.error")


def watch(threshold_ms: float) -> bool:
    """Log collector pauses of at least `threshold_ms` (TIDINGS_DEBUG_STALLS); negative: off.

    True when the callback was installed."""
    if threshold_ms < 0:
        return False
    threshold = threshold_ms / 1000
    started = 0.0
    cpu_started = 0.0

    def on_collect(phase: str, info: dict[str, Any]) -> None:
        nonlocal started, cpu_started
        if phase == "start":
            started = time.perf_counter()
            cpu_started = time.thread_time()
            return
        took = time.perf_counter() - started
        if took >= threshold:
            # The collecting thread's own CPU time beside the wall time: a pause far longer
            # than its CPU is time that thread waited (for the GIL, or for a CPU), not work.
            log.warning(
                "gc pause gen=%d %.1f ms (%d collected; %.1f ms CPU on thread %s)",
                info["generation"],
                took * 1000,
                info["collected"],
                (time.thread_time() - cpu_started) * 1000,
                threading.current_thread().name,
            )

    gc.callbacks.append(on_collect)
    log.warning(
        "stall debugging on (%s): collector pauses of %g ms or more are logged", ENV, threshold_ms
    )
    return True
