"""The log handler and formats, with records stamped by hand: what a repeating failure becomes."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

from tidings.logs import CollapsingHandler, JsonFormatter, PlainFormatter

WINDOW = 1.0


def handler(formatter: logging.Formatter | None = None) -> tuple[CollapsingHandler, io.StringIO]:
    out = io.StringIO()
    collapsing = CollapsingHandler(window=WINDOW, stream=out)
    collapsing.setFormatter(formatter or PlainFormatter())
    return collapsing, out


def record(
    at: float, message: str = "store unavailable: %s", level: int = logging.WARNING, **kw: object
) -> logging.LogRecord:
    made = logging.LogRecord("tidings.api", level, "api.py", 7, message, (at,), None)
    made.created, made.msecs = at, 0
    made.__dict__.update(kw)
    return made


def failing(at: float) -> logging.LogRecord:
    try:
        raise ConnectionError("refused")
    except ConnectionError:
        return record(at, exc_info=sys.exc_info())


def test_a_failure_every_10_ms_is_one_line_per_window_with_its_count() -> None:
    collapsing, out = handler()
    for i in range(350):
        collapsing.handle(record(1000 + i * 0.01))
    collapsing.flush_counts()
    lines = out.getvalue().splitlines()
    assert len(lines) == 5, lines
    assert "repeated" not in lines[0]
    counts = [int(m[1]) for line in lines if (m := re.search(r"repeated (\d+) times", line))]
    assert counts == [100, 100, 100, 49]
    assert 1 + sum(counts) == 350  # every occurrence written or counted


def test_the_traceback_is_written_once() -> None:
    collapsing, out = handler()
    for at in (1000.0, 1005.0, 1010.0):  # three windows apart: each is written
        collapsing.handle(failing(at))
    text = out.getvalue()
    assert text.count("Traceback (most recent call last)") == 1
    assert text.count("store unavailable") == 3


def test_lines_below_warning_are_never_collapsed() -> None:
    collapsing, out = handler()
    for i in range(3):
        collapsing.handle(record(1000 + i * 0.01, "Started worker process [%s]", logging.INFO))
    assert len(out.getvalue().splitlines()) == 3


def test_a_count_is_written_by_the_next_line_of_any_kind_once_its_window_ended() -> None:
    collapsing, out = handler()
    for i in range(5):
        collapsing.handle(record(1000 + i * 0.01))
    assert len(out.getvalue().splitlines()) == 1
    collapsing.handle(record(1002.0, "shutting down at %s", logging.INFO))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[1].endswith("(repeated 4 times in 0 s)")
    assert lines[2].endswith("shutting down at 1002.0")


def test_plain_lines_have_time_level_logger_and_message() -> None:
    collapsing, out = handler()
    collapsing.handle(record(0.0))
    line = "1970-01-01T00:00:00.000Z WARNING tidings.api: store unavailable: 0.0\n"
    assert out.getvalue() == line


def test_json_lines_parse_with_the_traceback_and_the_count_as_fields() -> None:
    collapsing, out = handler(JsonFormatter())
    collapsing.handle(failing(1000.0))
    collapsing.handle(failing(1000.5))
    collapsing.handle(failing(1001.5))
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["time"] == "1970-01-01T00:16:40.000Z"
    assert (first["level"], first["logger"]) == ("WARNING", "tidings.api")
    assert "ConnectionError: refused" in first["traceback"]
    assert (second["repeated"], second["repeated_seconds"]) == (2, 1.5)
    assert "traceback" not in second
