"""`path("tidings/", include("tidings.django.urls"))`: GET tidings/token, named "tidings-token"."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [path("token", views.token, name="tidings-token")]
