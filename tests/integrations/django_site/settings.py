"""A small Django site that uses tidings as its guide says (docs/django.md).

The tests run it in-process (Django's test client) and with `runserver` for Chromium; the
tidings server's URL and keys come from the environment, as an app's `.env` would give them.
"""

from __future__ import annotations

import os

SECRET_KEY = "django-site-for-tests-only-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "tests.integrations.django_site.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A strict CSP with a nonce per request (docs/django.md, "The bell").
    "tests.integrations.django_site.csp.StrictCsp",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(os.path.dirname(__file__), "templates")],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_SITE_DB", ":memory:"),
    }
}
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# --8<-- [start:settings]
INSTALLED_APPS += ["tidings.django"]

# The names of the .env shared with tidings (tidings ignores the first two). .get(): manage.py
# commands run without them; the first notify() or bell names what is missing.
TIDINGS = {
    "URL": os.environ.get("TIDINGS_URL", "http://127.0.0.1:8001"),
    "PUBLISHER_KEY": os.environ.get("TIDINGS_PUBLISHER_KEY", ""),
    "SECRET": os.environ.get("TIDINGS_SECRET", ""),
}
# --8<-- [end:settings]
