"""Django for the integration tests: the site in django_site/, configured once per session.

Its database is a SQLite file (not :memory:), so the threads that async tests hand Django code to
see the same tables.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

FOLDER = tempfile.mkdtemp(prefix="tidings-django-")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.integrations.django_site.settings"
os.environ["DJANGO_SITE_DB"] = os.path.join(FOLDER, "site.db")


@pytest.fixture(scope="session")
def django_site() -> Iterator[None]:
    import django
    from django.core.management import call_command
    from django.test.utils import setup_test_environment, teardown_test_environment

    # The site's settings read the app's .env names, once; each test then overrides TIDINGS with
    # its own server. Set only while the settings load, so no other test inherits them.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIDINGS_URL", "http://127.0.0.1:9")
        patch.setenv("TIDINGS_PUBLISHER_KEY", "unset")
        patch.setenv("TIDINGS_SECRET", "unset")
        django.setup()
        from django.conf import settings

        assert settings.TIDINGS["URL"] == "http://127.0.0.1:9"
    setup_test_environment()
    call_command("migrate", verbosity=0)
    yield
    from django.db import connections

    teardown_test_environment()
    connections.close_all()
    shutil.rmtree(FOLDER, ignore_errors=True)
