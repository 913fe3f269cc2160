"""The names other modules imported from here before the routes moved to `tidings.http`.

Kept while other branches still import them; use `tidings.http.*` in new code.
"""

from __future__ import annotations

from tidings.http.deps import (
    ChangingUserDep,
    ServiceDep,
    UserDep,
    changing_user,
    current_user,
    publisher,
    service_of,
)
from tidings.http.handlers import add_error_handlers
from tidings.http.openapi import document
from tidings.http.ops import operations_router
from tidings.http.publisher import publisher_router
from tidings.http.schemas import MAX_PAGE, MAX_SEQ, NotificationOut, Seq
from tidings.http.user import set_session_cookie, user_router

__all__ = [
    "MAX_PAGE",
    "MAX_SEQ",
    "ChangingUserDep",
    "NotificationOut",
    "Seq",
    "ServiceDep",
    "UserDep",
    "add_error_handlers",
    "changing_user",
    "current_user",
    "document",
    "operations_router",
    "publisher",
    "publisher_router",
    "service_of",
    "set_session_cookie",
    "user_router",
]
