"""Buses: one module per backend behind the `Bus` protocol, chosen by URL in `create_bus`."""

from __future__ import annotations

from tidings.bus.base import Bus, Deliver
from tidings.bus.factory import create_bus

__all__ = ["Bus", "Deliver", "create_bus"]
