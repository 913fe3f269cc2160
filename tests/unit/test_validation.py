"""What a publisher may send (`make_draft`): each rule, its edge, and the error a caller reads."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.conftest import unit_settings
from tidings.models import Draft
from tidings.validation import ApiError, PublishIn, make_draft

SETTINGS = unit_settings(
    max_message_bytes=20, max_link_bytes=30, max_kind_bytes=8, max_data_bytes=40, max_user_ids=3
)


def draft(**body: Any) -> Draft:
    return make_draft(PublishIn(**{"user_id": "ann", "message": "hi", **body}), SETTINGS)


def refused(**body: Any) -> tuple[str, str]:
    """The field named and the problem told, for a body that must be refused with 422."""
    with pytest.raises(ApiError) as caught:
        draft(**body)
    error = caught.value
    assert error.status == 422
    assert error.error == "invalid_notification"
    assert isinstance(error.detail, dict)
    return error.detail["field"], error.detail["problem"]


def test_a_plain_notification_becomes_a_draft() -> None:
    assert draft(link="/inbox", kind="comment", data={"n": 1}) == Draft(
        user_ids=("ann",), message="hi", link="/inbox", kind="comment", data={"n": 1}
    )


def test_empty_link_and_kind_mean_none() -> None:
    made = draft(link="", kind="")
    assert (made.link, made.kind) == (None, None)


def test_user_ids_are_strings_deduplicated_in_their_order() -> None:
    made = draft(user_id=None, user_ids=[7, "bob", "7"])
    assert made.user_ids == ("7", "bob")


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"user_ids": ["bob"]}, "user_id", "exactly one"),
        ({"user_id": None}, "user_id", "exactly one"),
        ({"user_id": None, "user_ids": []}, "user_ids", "empty"),
        ({"user_id": None, "user_ids": ["a", "b", "c", "d"]}, "user_ids", "at most 3"),
        ({"user_id": ""}, "user_id", "empty"),
        ({"user_id": "x" * 129}, "user_id", "128"),
        ({"user_id": "ann\n"}, "user_id", "control"),
        ({"user_id": "ann\ud800"}, "user_id", "surrogate"),
        ({"message": " \n\t"}, "message", "empty"),
        ({"message": "a\x00b"}, "message", "NUL"),
        ({"kind": "a\x00"}, "kind", "NUL"),
        ({"idempotency_key": "k\x00"}, "idempotency_key", "NUL"),
        ({"message": "x" * 21}, "message", "TIDINGS_MAX_MESSAGE_BYTES"),
        ({"message": "é" * 11}, "message", "at most 20 bytes"),
        ({"message": "hi \udc80"}, "message", "surrogate"),
        ({"link": "/" + "x" * 30}, "link", "TIDINGS_MAX_LINK_BYTES"),
        ({"link": "javascript:alert(1)"}, "link", "http(s)"),
        ({"link": "//evil.example/x"}, "link", "http(s)"),
        ({"link": "/\\evil.example"}, "link", "http(s)"),
        ({"link": "https:///nohost"}, "link", "http(s)"),
        ({"link": "inbox/1"}, "link", "http(s)"),
        ({"link": "/in box"}, "link", "http(s)"),
        ({"kind": "x" * 9}, "kind", "TIDINGS_MAX_KIND_BYTES"),
        ({"data": {"x": "y" * 40}}, "data", "TIDINGS_MAX_DATA_BYTES"),
        ({"data": {"x": float("nan")}}, "data", "NaN"),
        ({"data": {"x": float("inf")}}, "data", "NaN"),
    ],
    ids=repr,
)
def test_a_bad_notification_names_the_field_and_the_problem(
    body: dict[str, Any], field: str, words: str
) -> None:
    named, problem = refused(**body)
    assert named == field
    assert words in problem


@pytest.mark.parametrize(
    "link", ["/inbox?x=1#top", "https://app.example/a", "HTTP://app.example", "/"]
)
def test_links_to_the_site_or_to_http_urls_are_kept(link: str) -> None:
    assert draft(link=link).link == link


def test_limits_are_inclusive() -> None:
    made = draft(
        user_id=None,
        user_ids=["a", "b", "c"],
        message="é" * 10,
        link="/" + "x" * 29,
        kind="x" * 8,
        data={"x": "y" * 32},
    )
    assert len(made.user_ids) == 3


def nested(levels: int) -> dict[str, Any]:
    """A value whose innermost object sits `levels` below the top."""
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"d": value}
    return value


def test_data_nests_at_most_32_levels() -> None:
    settings = unit_settings(max_data_bytes=1_000_000)
    make_draft(PublishIn(user_id="ann", message="hi", data=nested(32)), settings)
    with pytest.raises(ApiError) as caught:
        make_draft(PublishIn(user_id="ann", message="hi", data=nested(33)), settings)
    assert caught.value.detail == {"field": "data", "problem": "nests at most 32 levels deep"}
