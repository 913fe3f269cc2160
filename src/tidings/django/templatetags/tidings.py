"""`{% load tidings %}{% tidings_bell %}`: the bell, with a fresh credential and its refresh URL."""

from __future__ import annotations

from typing import Any

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ...client import mint_token  # noqa: TID252 - also shipped as tidings_client.django
from .. import conf  # noqa: TID252 - also shipped as tidings_client.django

register = template.Library()


@register.simple_tag(takes_context=True)
def tidings_bell(context: template.Context, **attributes: Any) -> SafeString:
    """Nothing for an anonymous visitor; else the script tag and the element.

    No inline script: the bell fetches its next token from `token-url` itself, so the tag works
    inside a Vue root and under a Content-Security-Policy without 'unsafe-inline'. The script tag
    carries the request's CSP nonce: `nonce=` given here, else Django's own (`csp_nonce` in the
    context, Django 6), else django-csp's (`request.csp_nonce`). Keyword arguments become
    attributes of `<tidings-bell>`: `{% tidings_bell theme="dark" %}`.
    """
    request = context.get("request")
    if request is None:
        raise ImproperlyConfigured(
            "{% tidings_bell %} needs the request in the template context: add "
            '"django.template.context_processors.request" to the context processors'
        )
    if not request.user.is_authenticated:
        return SafeString("")
    config = conf.get()
    token = mint_token(config.secret, conf.user_id_of(request.user), config.token_ttl)
    nonce = attributes.pop("nonce", None) or context.get("csp_nonce")
    if not nonce:
        nonce = getattr(request, "csp_nonce", None)
    extra = format_html_join(
        "", ' {}="{}"', ((name.replace("_", "-"), value) for name, value in attributes.items())
    )
    return format_html(
        '<script type="module" src="{url}/static/tidings-bell.js"{nonce}></script>'
        '<tidings-bell base-url="{url}" token="{token}" token-url="{refresh}"{push}{extra}>'
        "</tidings-bell>",
        url=config.url,
        nonce=format_html(' nonce="{}"', str(nonce)) if nonce else "",
        token=token,
        refresh=reverse("tidings-token"),
        push="" if config.push else SafeString(" no-push"),
        extra=extra,
    )
