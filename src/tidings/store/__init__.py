"""Stores: one module per backend behind the `Store` protocol, chosen by URL in `create_store`."""

from __future__ import annotations

from tidings.store.base import IdempotencyConflict, Store, StoreUnavailable
from tidings.store.factory import create_store

__all__ = ["IdempotencyConflict", "Store", "StoreUnavailable", "create_store"]
