"""`{% load tidings %}{% tidings_bell %}`: the bell, with a fresh credential and its refresh URL."""

from __future__ import annotations

from typing import Any

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from tidings.client import mint_token
from tidings.django import conf

register = template.Library()

# Reads the refresh URL from the element's data attribute (escaped as an attribute, not as
# script text) and gives the bell its callback before the module script upgrades it.
REFRESH = (
    "<script>(function(bell){bell.getToken=async function(){"
    "const r=await fetch(bell.dataset.tokenUrl,"
    '{headers:{Accept:"application/json"},credentials:"same-origin"});'
    "return r.ok?(await r.json()).token:null;};"
    "})(document.currentScript.previousElementSibling);</script>"
)


@register.simple_tag(takes_context=True)
def tidings_bell(context: template.Context, **attributes: Any) -> SafeString:
    """Nothing for an anonymous visitor; else the script tag, the element and its callback.

    Keyword arguments become attributes of `<tidings-bell>`: `{% tidings_bell theme="dark" %}`.
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
    extra = format_html_join(
        "", ' {}="{}"', ((name.replace("_", "-"), value) for name, value in attributes.items())
    )
    return format_html(
        '<script type="module" src="{url}/static/tidings-bell.js"></script>'
        '<tidings-bell base-url="{url}" token="{token}" data-token-url="{refresh}"{extra}>'
        "</tidings-bell>{script}",
        url=config.url,
        token=token,
        refresh=reverse("tidings-token"),
        extra=extra,
        script=SafeString(REFRESH),
    )
