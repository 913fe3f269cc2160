"""tidings for Django: `notify()` after commit, `{% tidings_bell %}`, the token-refresh URL.

    # settings.py
    INSTALLED_APPS += ["tidings.django"]
    TIDINGS = {"URL": "http://127.0.0.1:8000", "PUBLISHER_KEY": "pk-app", "SECRET": "…"}

    # urls.py
    path("tidings/", include("tidings.django.urls"))

See docs/django.md.
"""

from __future__ import annotations

from .notify import notify

__all__ = ["notify"]
