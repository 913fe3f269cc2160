"""One log format for tidings and uvicorn, and repeated failures collapsed into counted lines.

Every line has its time (UTC), level and logger: plain text by default, one JSON object per line
with `TIDINGS_LOG_FORMAT=json`. A warning or error that repeats (a bus or store outage fails
every publish) is written once, with its traceback; the repeats within the next
`TIDINGS_LOG_REPEAT_WINDOW` seconds are counted, not written, and end in one line
"… (repeated 57 times in 10 s)". A traceback is written once per failure, for the process's life.

`serve` hands `log_config(settings)` to uvicorn, which applies it in the server process and
again in every `--workers` worker (each is a fresh interpreter); other commands call `configure`.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

from tidings.settings import Settings

__all__ = [
    "CollapsingHandler",
    "JsonFormatter",
    "PlainFormatter",
    "configure",
    "flush_counts",
    "log_config",
]

# Below this level a record is never collapsed: start-up and shutdown lines are all wanted.
COLLAPSE_FROM = logging.WARNING
# Failures whose traceback was written; past this many distinct ones the memory starts over.
MAX_TRACED = 1000
# Distinct failures counted at once (one window each); past it the oldest window is closed.
MAX_WINDOWS = 1000
# uvicorn's loggers: "uvicorn.error" is its general log, whatever the name says.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def log_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary: tidings', uvicorn's and other libraries' records
    all go through one handler on stderr."""
    level = settings.log_level.upper()
    formatter = JsonFormatter if settings.log_format.lower() == "json" else PlainFormatter
    own = {"level": level, "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"tidings": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "tidings": {
                "()": f"{__name__}.{CollapsingHandler.__name__}",
                "formatter": "tidings",
                "window": settings.log_repeat_window,
            }
        },
        "loggers": {"tidings": own, **dict.fromkeys(UVICORN_LOGGERS, own)},
        # Other libraries (asyncpg, redis, pymongo) speak only when something is wrong.
        "root": {"level": "WARNING", "handlers": ["tidings"]},
    }


def configure(settings: Settings) -> None:
    logging.config.dictConfig(log_config(settings))


def _utc(record: logging.LogRecord) -> str:
    moment = time.gmtime(record.created)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', moment)}.{int(record.msecs):03d}Z"


def _suffix(record: logging.LogRecord) -> str:
    repeated: int | None = getattr(record, "repeated", None)
    if repeated is None:
        return ""
    seconds: float = getattr(record, "repeated_seconds", 0.0)
    return f" (repeated {repeated} times in {seconds:.0f} s)"


class PlainFormatter(logging.Formatter):
    """`2026-11-30T02:06:43.123Z WARNING tidings.bus: message`, then the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record)} {record.levelname} {record.name}: {record.getMessage()}"
        line += _suffix(record)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and traceback / repeated."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        repeated = getattr(record, "repeated", None)
        if repeated is not None:
            entry["repeated"] = repeated
            entry["repeated_seconds"] = round(getattr(record, "repeated_seconds", 0.0), 1)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


@dataclass
class _Window:
    began: float
    suppressed: int
    last: logging.LogRecord


class CollapsingHandler(logging.StreamHandler[TextIO]):
    """Writes to stderr; collapses a repeating warning or error into one counted line per window.

    A failure is known by its logger, level, call site and message template (not the formatted
    message: "store unavailable: %s" is one failure whatever the driver said). The first
    occurrence is written at once; the next ones within `window` seconds only counted. The count
    is written by the first occurrence after the window, which opens the next window, or, when
    the failure stopped, with the next line written or when logging shuts down.
    """

    def __init__(self, window: float = 10.0, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.window = window
        self._windows: dict[tuple[object, ...], _Window] = {}
        self._traced: set[tuple[object, ...]] = set()
        self._look_at = 0.0
        self._guard = threading.Lock()  # records can come from the Redis or driver threads too

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            out = self._collapse(record)
        for line in out:
            super().emit(line)

    def _collapse(self, record: logging.LogRecord) -> list[logging.LogRecord]:
        now = record.created
        if record.levelno < COLLAPSE_FROM:
            return [*self._expired(now), record]
        key = (record.name, record.levelno, record.pathname, record.lineno, str(record.msg))
        # Its own window first: when it just ended, this line carries the count (below), not a
        # separate count line from the sweep of ended windows.
        window = self._windows.pop(key, None)
        out = self._expired(now)
        if window is not None and now - window.began < self.window:
            window.suppressed += 1
            window.last = record
            self._windows[key] = window
            return out
        if len(self._windows) >= MAX_WINDOWS:
            out += self._close(self._windows.pop(next(iter(self._windows))))
        self._windows[key] = _Window(now, 0, record)
        if window is not None and window.suppressed:
            # The window ended at this occurrence: its line carries the count and opens the
            # next window, so a failure that goes on is one line per window.
            record = _without_traceback(record)
            record.repeated = window.suppressed + 1
            record.repeated_seconds = now - window.began
        elif record.exc_info:
            if key in self._traced:
                record = _without_traceback(record)
            else:
                if len(self._traced) >= MAX_TRACED:
                    self._traced.clear()
                self._traced.add(key)
        return [*out, record]

    def _expired(self, now: float, *, every: bool = False) -> list[logging.LogRecord]:
        """The count lines of windows that ended before `now` (looked for once a second), or
        of `every` window."""
        if now < self._look_at and not every:
            return []
        self._look_at = now + min(1.0, self.window)
        ended = [k for k, w in self._windows.items() if every or now - w.began >= self.window]
        out: list[logging.LogRecord] = []
        for key in ended:
            out += self._close(self._windows.pop(key))
        return out

    def _close(self, window: _Window) -> list[logging.LogRecord]:
        if not window.suppressed:
            return []
        line = _without_traceback(window.last)
        line.repeated = window.suppressed
        line.repeated_seconds = window.last.created - window.began
        return [line]

    def flush_counts(self) -> None:
        """Write the count lines of every open window (at shutdown: nothing is left uncounted)."""
        with self._guard:
            out = self._expired(time.time(), every=True)
        for line in out:
            super().emit(line)

    def close(self) -> None:
        self.flush_counts()
        super().close()


def flush_counts() -> None:
    """Write the pending count lines now: uvicorn ends a server stopped by a signal by raising
    the signal again, so the process dies without running `logging.shutdown`."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, CollapsingHandler):
            handler.flush_counts()


def _without_traceback(record: logging.LogRecord) -> logging.LogRecord:
    copy = logging.makeLogRecord(record.__dict__)
    copy.exc_info = None
    copy.exc_text = None
    copy.stack_info = None
    return copy
