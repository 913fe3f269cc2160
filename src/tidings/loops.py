"""The one shape of every background loop of a node: do a pass, wait, again, until cancelled.

A pass that fails is logged (a warning with its traceback) and the loop goes on after the usual
wait: a store that is away for a while must not end retention, the scheduler or a channel's
delivery for the life of the process. Cancellation (the node stopping) ends the loop at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

__all__ = ["forever"]

Pause = float | Callable[[], Awaitable[object]]


async def forever(
    step: Callable[[], Awaitable[object]],
    *,
    pause: Pause,
    failure: str,
    log: logging.Logger,
    pause_first: bool = False,
    failed: Callable[[], object] | None = None,
) -> NoReturn:
    """Run `step`, then `pause`, over and over.

    `pause`: seconds to sleep, or a coroutine function to await (a sleep that a hint may cut
    short, or a jittered one). `failure`: the warning logged when a pass fails; `failed`, if
    given, runs after that (to look again sooner, or to keep a window for the next pass).
    `pause_first`: wait before the first pass too.
    """
    wait = pause if callable(pause) else _sleeping(pause)
    if pause_first:
        await wait()
    while True:
        try:
            await step()
        except Exception:
            log.warning(failure, exc_info=True)
            if failed is not None:
                failed()
        await wait()


def _sleeping(seconds: float) -> Callable[[], Awaitable[None]]:
    async def sleep() -> None:
        await asyncio.sleep(seconds)

    return sleep
