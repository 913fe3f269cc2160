from __future__ import annotations

from django.contrib.auth.views import LoginView
from django.urls import include, path

from tests.integrations.django_site import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", LoginView.as_view(template_name="login.html"), name="login"),
    path("invoices/<int:number>/pay", views.pay_invoice, name="pay-invoice"),
    # --8<-- [start:urls]
    path("tidings/", include("tidings.django.urls")),
    # --8<-- [end:urls]
]
