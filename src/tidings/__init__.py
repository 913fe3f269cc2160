"""tidings: real-time notifications for web applications, pushed over Server-Sent Events.

`create_app(Settings.from_env(os.environ))` gives the ASGI application; `tidings serve` runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tidings.app import TidingsApp, create_app
    from tidings.settings import Settings

__all__ = ["Settings", "TidingsApp", "create_app"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use, so the CLI's `send` and `token` do not load the web framework.
    if name in ("TidingsApp", "create_app"):
        from tidings import app

        return getattr(app, name)
    if name == "Settings":
        from tidings.settings import Settings

        return Settings
    raise AttributeError(f"module 'tidings' has no attribute {name!r}")
