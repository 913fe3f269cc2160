"""The app side of tidings: `Client`, `AsyncClient`, `mint_token`, and the Django app.

    from tidings_client import Client
    INSTALLED_APPS += ["tidings_client.django"]

The same code as the server distribution's `tidings.client` and `tidings.django` (see
docs/python-client.md); this distribution installs without the server's dependencies.
"""

from __future__ import annotations

from tidings_client.client import AsyncClient, Client, TidingsError, mint_token

__all__ = ["AsyncClient", "Client", "TidingsError", "mint_token"]
