"""Stores: one module per backend behind the `Store` protocol, chosen by URL in `open_store`."""

from __future__ import annotations

from tidings.store.base import Store, StoreUnavailable
from tidings.store.factory import create_store

__all__ = ["Store", "StoreUnavailable", "create_store"]
