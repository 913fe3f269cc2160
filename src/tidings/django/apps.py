from __future__ import annotations

from django.apps import AppConfig


class TidingsConfig(AppConfig):
    name = "tidings.django"
    # `{% load tidings %}` and the app label read as the product's name, not "django".
    label = "tidings"
    verbose_name = "tidings"
