"""The publish validator, fuzzed in-process: for any input it returns a draft or a 422, never
another exception (which the HTTP layer would answer 500, and the CLI with a traceback).

Seeded, so a failure names the input and reproduces; the seed moves with the case index only.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from tidings.models import Draft
from tidings.settings import Settings
from tidings.validation import ApiError, PublishIn, make_draft

SETTINGS = Settings(secret="s" * 32, publisher_keys=("k",))
CASES = 20_000

# Pieces URL parsers trip over: schemes, separators, brackets, ports, percent signs, and
# characters that NFKC or IDNA change or refuse.
PIECES = [
    "http://", "https://", "HTTP://", "ftp://", "javascript:", "//", "/", "\\", ":", "::", "@",
    "[", "]", "[::1]", "[v1.x]", "%", "%25", "%zz", "#", "?", ".", "..", "-", "xn--", "a", "b",
    "example.com", "localhost", "0", "65535", "99999", "-1", " ", "\t", "\n", "\x00", "\x7f",
    "\uff03", "\uff0f", "\u2100", "\u2101", "\u00e9", "\u00df", "\u00ad", "\u200d", "\u0130",
    "\ufe6b", "\uff1a", "\u3002", "\ud800", "\U0001f600", "\u0301", "\u2024", "\ufb00",
]  # fmt: skip


def random_link(rng: random.Random) -> str:
    parts = [rng.choice(PIECES) for _ in range(rng.randint(1, 8))]
    if rng.random() < 0.3:
        # A stretch of arbitrary code points, including unassigned and private ones.
        parts.append("".join(chr(rng.randint(1, 0x2FFFF)) for _ in range(rng.randint(1, 6))))
    rng.shuffle(parts)
    if rng.random() < 0.7:
        parts.insert(0, rng.choice(["http://", "https://"]))
    return "".join(parts)


def check(fields: dict[str, Any]) -> bool:
    """Parsing and checking `fields` gives a draft (True), or a validation error (False)."""
    try:
        body = PublishIn(**fields)
    except ValidationError:
        return False  # the HTTP layer answers 422 invalid_request, the CLI one line
    try:
        draft = make_draft(body, SETTINGS)
    except ApiError as exc:
        error = exc
    else:
        assert isinstance(draft, Draft)
        return True
    assert error.status == 422, (body, error)
    assert isinstance(error.detail, dict), error.detail
    assert error.detail["field"] in PublishIn.model_fields, error.detail
    assert error.detail["problem"]
    return False


@pytest.mark.parametrize("seed", range(4))
def test_any_link_is_accepted_or_refused_with_422(seed: int) -> None:
    rng = random.Random(seed)
    accepted = 0
    for _ in range(CASES // 4):
        link = random_link(rng)
        if not check({"user_id": "u", "message": "hi", "link": link}):
            continue
        accepted += 1
        # What is accepted is a link a browser can follow to an http(s) site or a local path.
        assert link.startswith("/") or link.lower().startswith(("http://", "https://")), link
        assert not any(ch.isspace() or ord(ch) < 32 for ch in link), link
    # The generator must reach both outcomes, or it tests only one of them.
    assert 0 < accepted < CASES // 4


def test_every_field_fuzzed_at_once_is_accepted_or_refused_with_422() -> None:
    rng = random.Random(1234)
    for _ in range(CASES // 4):

        def text() -> str:
            return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 5)))

        check(
            {
                "user_id": text() if rng.random() < 0.8 else rng.randint(-(2**70), 2**70),
                "message": text(),
                "link": random_link(rng) if rng.random() < 0.7 else None,
                "kind": text() if rng.random() < 0.5 else None,
                "data": {text(): text()} if rng.random() < 0.5 else {},
                "idempotency_key": text() or None,
            }
        )
