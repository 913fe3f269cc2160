"""One way to wrap every store operation alike: the base of `bounded.py` and `instrumented.py`.

A wrapper that does the same thing around each of `Store`'s ~45 methods (take a slot, count a
call) would otherwise forward each by hand, and every new method would be one more forwarder
per wrapper to forget. Here the wrapper binds, once when built, each operation `operations()`
names to what `around` makes of the inner store's method; a call is then one instance
attribute lookup and one extra await, as with a hand-written forwarder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tidings.store.base import Store, operations

__all__ = ["Operation", "StoreWrapper"]

# A bound store method, as the wrapper sees it: arguments passed through as they came.
Operation = Callable[..., Awaitable[Any]]


class StoreWrapper:
    """A `Store` over `inner` whose every operation is `around(name, inner's method)`."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        for name in operations():
            setattr(self, name, self.around(name, getattr(inner, name)))

    def around(self, name: str, call: Operation) -> Operation:
        """What runs in place of operation `name`; `call` itself to pass it through."""
        return call

    if TYPE_CHECKING:
        # The operations are bound per instance in `__init__`, which mypy cannot follow: to it a
        # wrapper has every attribute, so it is a `Store` (and the names are checked at runtime,
        # by `operations()` and `getattr`).
        def __getattr__(self, name: str) -> Any: ...
