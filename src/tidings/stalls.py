"""Collector pauses in the server log, to tell loop stalls apart: off unless TIDINGS_DEBUG_STALLS.

`TIDINGS_DEBUG_STALLS=<ms>` logs, at WARNING on `uvicorn.error`, every garbage collection that
held the process for at least that many milliseconds (`0`: every one), as
`gc pause gen=<generation> <ms> ms (<collected> collected)`. bench/ reads these lines next to its
`/healthz` probes; a debugging aid, not a setting: unset, nothing is installed.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from typing import Any

__all__ = ["ENV", "watch_from_env"]

ENV = "TIDINGS_DEBUG_STALLS"
log = logging.getLogger("uvicorn.error")


def watch_from_env() -> bool:
    """Install the collector callback when the environment asks for it; True when installed."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return False
    try:
        threshold = float(raw) / 1000
    except ValueError:
        threshold = 0.001
    started = 0.0

    def on_collect(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
            return
        took = time.perf_counter() - started
        if took >= threshold:
            log.warning(
                "gc pause gen=%d %.1f ms (%d collected)",
                info["generation"],
                took * 1000,
                info["collected"],
            )

    gc.callbacks.append(on_collect)
    log.warning("stall debugging on (%s): collector pauses of %s ms or more are logged", ENV, raw)
    return True
