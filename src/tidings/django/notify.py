from __future__ import annotations

import inspect
import logging
import uuid
from typing import Any

from django.db import transaction

from . import conf

__all__ = ["notify"]

log = logging.getLogger("tidings.django")


def notify(user: Any, message: str, *, using: str | None = None, **fields: Any) -> None:
    """Publish `message` to `user` (a user object or its id) once the current transaction commits.

    `fields` are those of `tidings.client.Client.publish` (link, kind, data, …). Outside a
    transaction it publishes at once. A rolled-back transaction publishes nothing. The client
    retries network errors and 503 with one idempotency key, fixed here at the call; a publish
    that still fails is logged on the `tidings.django` logger, not raised, since the
    transaction has committed by then.
    """
    user_id = conf.user_id_of(user)
    fields.setdefault("idempotency_key", uuid.uuid4().hex)
    client = conf.client()  # settings are checked now, in the caller's frame
    # So are the fields: a misspelled name or a naive datetime raises here, before the commit,
    # not in the callback, where it would turn a committed request into a 500.
    inspect.signature(client.publish).bind(user_id, message, **fields)
    client.check_fields(fields)

    def publish() -> None:
        try:
            client.publish(user_id, message, **fields)
        except Exception:
            # The transaction has committed: whatever fails now is logged, never raised.
            log.exception("tidings: publishing to user %s failed", user_id)

    transaction.on_commit(publish, using=using)
