"""Schemathesis hooks for tests/test_openapi_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

A stream with a valid credential never ends, and Schemathesis reads every answer to its end. So
each stream request gets a token of the same user that expires now: the server accepts it (within
its leeway), answers 200 with the stream's first frames, and ends the stream as it does for any
token that expires.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from hypothesis import strategies as st

from tests.support import make_token

STREAM_PATH = "/notifications/stream"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    token = os.environ["SCHEMATHESIS_USER_TOKEN"]
    headers = case.headers or {}
    if case.operation.path == STREAM_PATH and headers.get("Authorization") == f"Bearer {token}":
        user = os.environ["SCHEMATHESIS_USER"]
        headers["Authorization"] = f"Bearer {make_token(user, ttl=0)}"


@schemathesis.hook
def after_load_schema(context: Any, schema: Any) -> None:
    """Generate the `utf8-max-N` strings of the schema (at most N bytes of UTF-8)."""
    for limit in sorted(
        set(re.findall(r'"format": "utf8-max-(\d+)"', json.dumps(schema.raw_schema)))
    ):
        schemathesis.openapi.format(f"utf8-max-{limit}", _utf8_at_most(int(limit)))
    # `deliver_at`: a date-time at most N days from now (a day back to N - 1 ahead).
    for days in sorted(
        set(re.findall(r'"format": "date-time-max-(\d+)-days"', json.dumps(schema.raw_schema)))
    ):
        schemathesis.openapi.format(f"date-time-max-{days}-days", _time_within(int(days)))
    # A snooze's `until`: after now, at most N days ahead (a minute to N - 1 days, so it is
    # still ahead when the request arrives).
    for days in sorted(
        set(
            re.findall(r'"format": "date-time-ahead-max-(\d+)-days"', json.dumps(schema.raw_schema))
        )
    ):
        schemathesis.openapi.format(f"date-time-ahead-max-{days}-days", _time_ahead(int(days)))


def _time_within(days: int) -> st.SearchStrategy[str]:
    def moment(seconds: int) -> str:
        return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()

    return st.integers(-86400, (days - 1) * 86400).map(moment)


def _time_ahead(days: int) -> st.SearchStrategy[str]:
    def moment(seconds: int) -> str:
        return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()

    return st.integers(60, (days - 1) * 86400).map(moment)


def _utf8_at_most(size: int) -> st.SearchStrategy[str]:
    def fits(text: str) -> bool:
        return len(text.encode()) <= size

    return st.text(max_size=size).filter(fits)
