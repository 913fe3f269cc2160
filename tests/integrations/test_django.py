"""tidings.django with Django's own test tools, against a real tidings server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support import PUBLISHER_KEY, SECRET, Server, make_token, open_stream, serving

ROOT = Path(__file__).resolve().parents[2]

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
    [script] = scripts  # the module, with the site's CSP nonce (django_site/csp.py)
    assert script["src"] == f"{server.url}/static/tidings-bell.js"
    assert script["type"] == "module"
    assert script["nonce"]
    assert bell["base-url"] == server.url
    # The bell fetches its next token itself: no inline script (Vue roots, strict CSP).
    assert bell["token-url"] == "/tidings/token"
    assert "no-push" in bell
    claims = jwt.decode(str(bell["token"]), SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user.pk)
    assert claims["exp"] - claims["iat"] == 900
    served = httpx.get(f"{server.url}/static/tidings-bell.js", timeout=10)
    assert served.status_code == 200


def test_the_bell_tag_passes_the_requests_csp_nonce_and_push(
    tidings_settings: dict[str, str], server: Server
) -> None:
    from django.template import Context, Template
    from django.test import RequestFactory, override_settings

    request = RequestFactory().get("/")
    request.user = make_user("dj-nonce")
    tag = Template("{% load tidings %}{% tidings_bell %}")
    with override_settings(TIDINGS={**tidings_settings, "PUSH": True}):
        # Django 6's own CSP nonce (the csp context processor) and django-csp's request.csp_nonce.
        page = tag.render(Context({"request": request, "csp_nonce": "dj-n0nce"}))
        request.csp_nonce = "csp-n0nce"  # type: ignore[attr-defined]
        other = tag.render(Context({"request": request}))
    parser = Elements()
    parser.feed(page + other)
    scripts = [attrs for tag_name, attrs in parser.found if tag_name == "script"]
    assert [s.get("nonce") for s in scripts] == ["dj-n0nce", "csp-n0nce"]
    bells = [attrs for tag_name, attrs in parser.found if tag_name == "tidings-bell"]
    assert all("no-push" not in bell and "nonce" not in bell for bell in bells)


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


@pytest.mark.parametrize("case", ["tidings down", "host not answering", "key refused", "invalid"])
def test_a_failed_publish_after_the_commit_is_logged_not_raised_and_bounded(
    tidings_settings: dict[str, str],
    server: Server,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import socket
    import time

    from django.db import transaction
    from django.test import override_settings

    from tidings.django import conf, notify

    settings = dict(tidings_settings)
    fields: dict[str, Any] = {}
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts; nobody ever answers
    if case == "tidings down":
        settings["URL"] = "http://127.0.0.1:9"
    elif case == "host not answering":
        settings["URL"] = f"http://127.0.0.1:{silent.getsockname()[1]}"
    elif case == "key refused":
        settings["PUBLISHER_KEY"] = "not-a-publisher-key"
    else:
        fields["link"] = "javascript:alert(1)"
    user = make_user(f"dj-fail-{case.replace(' ', '-')}")
    try:
        with override_settings(TIDINGS=settings):
            config = conf.get()
            started = time.monotonic()
            with transaction.atomic():
                notify(user, "committed anyway", **fields)
            took = time.monotonic() - started
    finally:
        silent.close()
    failures = [r for r in caplog.records if r.name == "tidings.django"]
    assert len(failures) == 1, caplog.text
    assert failures[0].exc_info is not None
    # (retries + 1) × timeout plus the backoff (under a second), with the defaults.
    assert took < (config.retries + 1) * config.timeout + 1.5


def test_manage_py_commands_run_without_the_tidings_variables(tmp_path: Path) -> None:
    # The guide's settings read the .env names with .get(): `manage.py check`, `migrate`… run
    # in a shell that never exported them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.integrations.django_site.settings",
        DJANGO_SITE_DB=str(tmp_path / "site.db"),
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
