"""A store wrapper that counts every operation, for /metrics and the idle-cost guarantee."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from tidings.metrics import Metrics
from tidings.store.base import Store
from tidings.store.wrapping import Operation, StoreWrapper

__all__ = ["InstrumentedStore"]

# Not counted: a node's start and stop are not store traffic.
UNCOUNTED = frozenset({"open", "close"})


class InstrumentedStore(StoreWrapper):
    def __init__(self, inner: Store, metrics: Metrics) -> None:
        self._count = metrics.store_queries
        super().__init__(inner)

    def around(self, name: str, call: Operation) -> Operation:
        if name in UNCOUNTED:
            return call
        # The operation's child is looked up on its first call, once: `labels()` costs more
        # than the count itself, and an operation never called stays out of /metrics.
        child: Counter | None = None
        family = self._count

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal child
            if child is None:
                child = family.labels(name)
            child.inc()
            return await call(*args, **kwargs)

        return counted
