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
import resource
import threading
import time
from typing import Any

__all__ = ["ENV", "settle", "watch"]

ENV = "TIDINGS_DEBUG_STALLS"
# CPython's defaults are (700, 10, 10): a young collection every 700 net allocations.
THRESHOLDS = (10_000, 20, 20)


# How often (in seconds) the server freezes the objects made since the last time (see `tend`).
TEND_EVERY = 0.5
# The process's peak RSS (KiB) after the last full collection: `tend` collects everything
# again once the peak is half as large again (see there).
_peak = 0
GROWTH = 1.5
# At least this many seconds between two of those full collections. While 10,000 streams open
# (a reconnect storm, a deploy) RSS grows fourfold in seconds, and each growth by half walked
# every object again: 3-4 full collections of 0.2-0.9 s each, 12 % of a storm's CPU, one of
# them landing in a broadcast (docs/benchmarks.md, "broadcast and storm, round 4"). One per
# minute still finds the cyclic garbage of a process that keeps growing.
FULL_EVERY = 60.0
_last_full = 0.0
# Whether this process runs a server that settled the collector (`tend` does nothing before).
_tending = False


def settle() -> None:
    """Freeze what start-up built and collect young objects less often (once, after start-up)."""
    global _peak, _tending, _last_full
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    _peak = _peak_rss()
    _last_full = time.monotonic()
    _tending = True


def unsettle(thresholds: tuple[int, ...]) -> None:
    """Undo `settle` (and stop `tend`): for a process that runs a server in a thread beside
    other work of its own, such as the test suite."""
    global _tending
    _tending = False
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def tend() -> None:
    """Freeze the objects made since the last call (every TEND_EVERY s, on the loop).

    CPython counts a generation's size as allocations minus deallocations. A server whose
    streams wait replaces objects (each wake-up makes a new future, coroutine and callback and
    frees the old ones), so the count hardly grows while the youngest generation fills with
    live objects: in the soak a young collection came every few minutes, found ~400,000 live
    objects and no garbage, and held the loop 1-2 s; the next older one walked 1.4 million
    (bench/growth-and-soak.md). Collecting the young ones twice a second kept each pause under
    0.1 s but walked every stream's objects after each wake-up, and the server ran out of CPU.
    Frozen instead, they are never walked (freezing moves a list, whatever its length; an object
    is still freed when it is no longer referenced), and a collection finds only what was made
    since the last freeze. Garbage in a reference cycle among frozen objects is not found, so
    once the process's peak memory has grown by half since the last full collection,
    everything is collected once more (a long pause, as rare as that growth and at most once a
    minute, FULL_EVERY; in the soak only while the streams first open). Not
    `gc.get_freeze_count()`: it walks the frozen list, a cache miss per object, and twice a
    second over a million objects took a third of a core.
    """
    global _peak, _last_full
    if not _tending:
        return
    gc.freeze()
    if _peak_rss() > GROWTH * _peak and time.monotonic() - _last_full >= FULL_EVERY:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        _peak = _peak_rss()
        _last_full = time.monotonic()


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
