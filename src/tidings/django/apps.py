from __future__ import annotations

from django.apps import AppConfig


class TidingsConfig(AppConfig):
    # The package's dotted name: tidings.django in the server's distribution, tidings_client.django
    # in tidings-client (clients/python), which ships these same files.
    name = __name__.rpartition(".")[0]
    # `{% load tidings %}` and the app label read as the product's name, not "django".
    label = "tidings"
    verbose_name = "tidings"
