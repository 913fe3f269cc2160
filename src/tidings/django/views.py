from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ..client import mint_token  # noqa: TID252 - also shipped as tidings_client.django
from . import conf

__all__ = ["token"]


@never_cache
@require_GET
def token(request: HttpRequest) -> JsonResponse:
    """A fresh user token for the logged-in user; 401 JSON otherwise (never a login redirect:
    the bell's refresh callback reads a 401 as "the session has ended")."""
    if not request.user.is_authenticated:
        return JsonResponse(
            {"error": "unauthorized", "detail": "not logged in to this site"}, status=401
        )
    config = conf.get()
    user_id = conf.user_id_of(request.user)
    return JsonResponse({"token": mint_token(config.secret, user_id, config.token_ttl)})
