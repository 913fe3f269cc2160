"""A real SMTP server on 127.0.0.1 (aiosmtpd, on a thread of its own) that keeps what it receives.

`stop()` and `start()` on the same port simulate an outage (connection refused meanwhile);
`hold()` makes the next message wait inside DATA (received, not yet answered) so a test can kill
the sending node right there, and then answers it 451 (not accepted).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support import free_port


@dataclass
class Mailbox:
    """The aiosmtpd handler: every accepted message, in arrival order."""

    received: list[EmailMessage] = field(default_factory=list)
    # Each message held in DATA, and whether the test has let it go.
    held: list[EmailMessage] = field(default_factory=list)
    holding: bool = False
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        if self.holding:
            self.holding = False
            self.held.append(parsed)
            self.reached.set()
            await asyncio.to_thread(self.released.wait)
            return "451 4.3.0 held by the test, not accepted"
        with self.lock:
            self.received.append(parsed)
        return "250 2.0.0 OK"


class SmtpSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self._controller is None
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def hold(self) -> None:
        """Keep the next message waiting in DATA until `release()`, then refuse it."""
        self.mailbox.reached.clear()
        self.mailbox.released.clear()
        self.mailbox.holding = True

    def release(self) -> None:
        self.mailbox.released.set()

    def to(self, address: str) -> list[EmailMessage]:
        """The messages received for `address`, in arrival order."""
        with self.mailbox.lock:
            return [m for m in self.mailbox.received if m["To"] == address]

    async def wait_for(
        self, address: str, count: int = 1, timeout: float = 20.0
    ) -> list[EmailMessage]:
        """Wait until `address` has `count` messages; return them all (fail on timeout)."""
        try:
            await until(lambda: len(self.to(address)) >= count, f"{count} emails", timeout)
        except AssertionError:
            raise AssertionError(f"{address} received {len(self.to(address))} of {count}") from None
        return self.to(address)

    async def wait_held(self, timeout: float = 20.0) -> EmailMessage:
        reached = await asyncio.to_thread(self.mailbox.reached.wait, timeout)
        assert reached, "no message reached the held DATA"
        return self.mailbox.held[-1]


async def until(done: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait for an event seen from outside (a metric moving, a moment passing); fail on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a digest."""
    text = message.get_body(preferencelist=("plain",))
    markup = message.get_body(preferencelist=("html",))
    assert text is not None
    assert markup is not None
    return str(text.get_content()), str(markup.get_content())
