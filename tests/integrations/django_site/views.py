from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

# --8<-- [start:notify]
from tidings.django import notify


@login_required
@require_POST
def pay_invoice(request: HttpRequest, number: int) -> HttpResponse:
    with transaction.atomic():
        # ... mark the invoice paid ...
        notify(request.user, f"Invoice #{number} was paid", link=f"/invoices/{number}")
    return JsonResponse({"paid": number})


# --8<-- [end:notify]


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")
