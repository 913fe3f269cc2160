"""A strict Content-Security-Policy for the test site, as django-csp sets one: a nonce per request
(`request.csp_nonce`, which `{% tidings_bell %}` puts on its script tag) and no 'unsafe-inline',
for scripts or styles (the bell adopts a constructed stylesheet).

'strict-dynamic': the nonced module may import the bell's other modules; nothing else runs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class StrictCsp:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["Content-Security-Policy"] = (
            f"script-src 'nonce-{nonce}' 'strict-dynamic'; style-src 'self'; "
            "object-src 'none'; base-uri 'none'"
        )
        return response
