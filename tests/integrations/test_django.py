"""tidings.django with Django's own test tools, against a real tidings server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import httpx
import jwt
import pytest

from tests.support import PUBLISHER_KEY, SECRET, Server, make_token, open_stream, serving

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("django_site")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("django")) as started:
        yield started
        from tidings.django.conf import close_clients

        close_clients()


@pytest.fixture
def tidings_settings(server: Server, django_site: None) -> Iterator[dict[str, str]]:
    from django.test import override_settings

    # The trailing slash on purpose: the guides' URL may have one.
    settings = {"URL": server.url + "/", "PUBLISHER_KEY": PUBLISHER_KEY, "SECRET": SECRET}
    with override_settings(TIDINGS=settings):
        yield settings


def make_user(name: str) -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_user(name, password=f"pw-{name}-0123")


@pytest.mark.usefixtures("tidings_settings")
async def test_notify_publishes_after_the_commit_and_the_stream_receives_it(
    server: Server,
) -> None:
    from django.db import transaction

    from tidings.django import notify

    user = await asyncio.to_thread(make_user, "dj-after-commit")
    user_id = str(user.pk)

    def pay() -> list[dict[str, Any]]:
        with transaction.atomic():
            notify(user, "Invoice #7 was paid", link="/invoices/7", kind="invoice.paid")
            # Still inside the transaction: nothing has been published yet.
            return server.listed(user_id)

    async with open_stream(server.url, make_token(user_id)) as stream:
        assert stream.status == 200
        assert await asyncio.to_thread(pay) == []
        [got] = await stream.notifications(1)
    assert got["user_id"] == user_id
    assert (got["message"], got["link"], got["kind"]) == (
        "Invoice #7 was paid",
        "/invoices/7",
        "invoice.paid",
    )


@pytest.mark.usefixtures("tidings_settings")
def test_a_rolled_back_transaction_publishes_nothing(server: Server) -> None:
    from django.db import transaction

    from tidings.django import notify

    user = make_user("dj-rollback")

    class Abandoned(Exception):
        pass

    def abandon() -> None:
        with transaction.atomic():
            notify(user, "never sent")
            raise Abandoned

    with pytest.raises(Abandoned):
        abandon()
    notify(user.pk, "sentinel")  # outside a transaction: at once
    assert [n["message"] for n in server.listed(str(user.pk))] == ["sentinel"]


@pytest.mark.usefixtures("tidings_settings")
@pytest.mark.parametrize(
    ("fields", "raised"),
    [
        ({"lnik": "/typo"}, TypeError),
        ({"deliver_at": datetime(2030, 1, 1)}, ValueError),
    ],
)
def test_bad_fields_raise_at_the_call_not_after_the_commit(
    server: Server, fields: dict[str, Any], raised: type[Exception]
) -> None:
    from django.db import transaction

    from tidings.django import notify

    user = make_user(f"dj-fields-{raised.__name__}")
    # Raised inside the transaction, so the caller sees it and the view's work rolls back;
    # in the commit callback it would turn a committed request into a 500.
    with pytest.raises(raised), transaction.atomic():
        notify(user, "never sent", **fields)
    notify(user.pk, "sentinel")
    assert [n["message"] for n in server.listed(str(user.pk))] == ["sentinel"]


@pytest.mark.usefixtures("tidings_settings")
def test_the_view_of_the_guide_notifies_through_a_logged_in_post(server: Server) -> None:
    from django.test import Client

    user = make_user("dj-view")
    browser = Client()
    browser.force_login(user)
    response = browser.post("/invoices/12/pay")
    assert response.status_code == 200
    [stored] = server.listed(str(user.pk))
    assert (stored["message"], stored["link"]) == ("Invoice #12 was paid", "/invoices/12")


@pytest.mark.usefixtures("tidings_settings")
def test_the_token_url_gives_a_token_the_server_accepts(server: Server) -> None:
    from django.test import Client
    from django.urls import reverse

    assert reverse("tidings-token") == "/tidings/token"
    user = make_user("dj-token")
    browser = Client()
    browser.force_login(user)
    response = browser.get("/tidings/token")
    assert response.status_code == 200
    assert response["content-type"] == "application/json"
    assert "no-cache" in response["cache-control"] or "no-store" in response["cache-control"]
    token = response.json()["token"]
    count = httpx.get(
        f"{server.url}/notifications/unread-count",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert count.status_code == 200


@pytest.mark.usefixtures("tidings_settings")
def test_the_token_url_answers_401_json_when_logged_out_never_a_redirect() -> None:
    from django.test import Client

    response = Client().get("/tidings/token")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "location" not in response


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_the_bell_tag_renders_the_script_the_element_and_a_fresh_credential(
    tidings_settings: dict[str, str], server: Server
) -> None:
    from django.test import Client

    user = make_user("dj-bell")
    browser = Client()
    browser.force_login(user)
    page = browser.get("/").content.decode()
    parser = Elements()
    parser.feed(page)
    scripts = [attrs for tag, attrs in parser.found if tag == "script"]
    [bell] = [attrs for tag, attrs in parser.found if tag == "tidings-bell"]
    assert {"type": "module", "src": f"{server.url}/static/tidings-bell.js"} in scripts
    assert bell["base-url"] == server.url
    assert bell["data-token-url"] == "/tidings/token"
    claims = jwt.decode(str(bell["token"]), SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user.pk)
    assert re.search(r"getToken", page)
    served = httpx.get(f"{server.url}/static/tidings-bell.js", timeout=10)
    assert served.status_code == 200


@pytest.mark.usefixtures("tidings_settings")
def test_the_bell_tag_renders_nothing_for_a_visitor() -> None:
    from django.test import Client

    page = Client().get("/").content.decode()
    assert "tidings-bell" not in page
    assert "Log in" in page


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, ["must be a dict"]),
        ({"URL": "http://x", "PUBLISHER_KEY": "k"}, ["SECRET"]),
        ({"URL": "http://x", "PUBLISHER_KEY": "k", "SECRET": "s", "PUBLISHER_KEYS": "k"}, ["KEYS"]),
    ],
)
def test_a_wrong_configuration_names_the_key(
    django_site: None, value: dict[str, str] | None, words: list[str]
) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from tidings.django import notify

    with override_settings(TIDINGS=value), pytest.raises(ImproperlyConfigured) as info:
        notify(1, "hi")
    for word in words:
        assert word in str(info.value)


@pytest.mark.usefixtures("tidings_settings")
def test_notify_refuses_a_user_without_a_key() -> None:
    from django.contrib.auth.models import AnonymousUser

    from tidings.django import notify

    with pytest.raises(ValueError, match="no primary key"):
        notify(AnonymousUser(), "to nobody")
