"""tidings: real-time notifications for web applications, pushed over Server-Sent Events."""

from __future__ import annotations

from tidings.app import TidingsApp, create_app
from tidings.settings import Settings

__all__ = ["Settings", "TidingsApp", "create_app"]
__version__ = "0.1.0"
