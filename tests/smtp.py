"""A real SMTP server on 127.0.0.1 (aiosmtpd, on a thread of its own) that keeps what it receives.

`stop()` and `start()` on the same port simulate an outage (connection refused meanwhile);
`hold()` makes the next message wait inside DATA (received, not yet answered) so a test can kill
the sending node right there, and then answers it 451 (not accepted).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.multinode.nginx import make_certificate
from tests.support import free_port


@dataclass
class Mailbox:
    """The aiosmtpd handler: every accepted message, in arrival order."""

    received: list[EmailMessage] = field(default_factory=list)
    # When each was received (time.monotonic()), by id() of the message.
    arrivals: dict[int, float] = field(default_factory=dict)
    # Each message held in DATA, and whether the test has let it go.
    held: list[EmailMessage] = field(default_factory=list)
    # The recipient whose next message is held (other tests' leftovers on a shared database
    # may be sent meanwhile: they pass).
    holding: str | None = None
    # Whether a held message is accepted (kept, then answered 250) or refused (451) at release.
    accept_held: bool = False
    # Recipients whose next messages are refused with 451, and how many more times.
    refusing: dict[str, int] = field(default_factory=dict)
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        if self.refusing.get(parsed["To"], 0) > 0:
            self.refusing[parsed["To"]] -= 1
            return "451 4.7.1 try again later"
        if self.holding is not None and parsed["To"] == self.holding:
            self.holding = None
            self.held.append(parsed)
            if self.accept_held:
                self._keep(parsed)
            self.reached.set()
            await asyncio.to_thread(self.released.wait)
            if self.accept_held:
                return "250 2.0.0 OK"
            return "451 4.3.0 held by the test, not accepted"
        self._keep(parsed)
        return "250 2.0.0 OK"

    def _keep(self, message: EmailMessage) -> None:
        with self.lock:
            self.received.append(message)
            self.arrivals[id(message)] = time.monotonic()


class SmtpSink:
    """`tls`: None (plain), "starttls" (offered and required before AUTH and MAIL) or "smtps"
    (TLS from the first byte, with a self-signed certificate in `folder`). `login`: the
    (user, password) it requires, or None for no AUTH."""

    def __init__(
        self,
        *,
        tls: str | None = None,
        login: tuple[str, str] | None = None,
        folder: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self.tls = tls
        self.login = login
        self.logins: list[str] = []
        self._context: ssl.SSLContext | None = None
        if tls is not None:
            assert folder is not None
            cert, key = make_certificate(folder)
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(cert, key)
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.login is not None:
            user, password = data.login.decode(), data.password.decode()
            if (user, password) == self.login:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        assert self._controller is None
        options: dict[str, Any] = {}
        if self.login is not None:
            options.update(authenticator=self._authenticate, auth_required=True)
        if self.tls == "starttls":
            options.update(tls_context=self._context, require_starttls=True)
        elif self.tls == "smtps":
            # aiosmtpd counts only STARTTLS as TLS for AUTH; here the socket is TLS from the start.
            options.update(ssl_context=self._context, auth_require_tls=False)
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def hold(self, address: str, *, accept: bool = False) -> None:
        """Keep the next message to `address` waiting in DATA until `release()`, then refuse
        it; with `accept`, keep it (it counts as received) and answer 250 only at the release."""
        self.mailbox.reached.clear()
        self.mailbox.released.clear()
        self.mailbox.accept_held = accept
        self.mailbox.holding = address

    def refuse(self, address: str, times: int = 1) -> None:
        """Answer the next `times` messages to `address` with 451 (a temporary refusal)."""
        self.mailbox.refusing[address] = times

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

    def arrived(self, message: EmailMessage) -> float:
        """When `message` was received (time.monotonic())."""
        return self.mailbox.arrivals[id(message)]

    async def digests_of(
        self, address: str, messages: list[str], timeout: float = 30.0
    ) -> list[EmailMessage]:
        """Wait until the digests sent to `address` list every one of `messages`; return them
        all. How many emails that takes depends on when each notification became due."""

        def covered() -> bool:
            listed = {m for e in self.to(address) for m in listed_messages(e)}
            return set(messages) <= listed

        await until(covered, f"digests listing {messages}", timeout)
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


AFTER_MINUTES = 0.04  # 2.4 s: long enough to mark things seen first, short enough for a test
PUBLIC = "https://app.example/tidings"


def email_settings(sink: SmtpSink, **extra: str) -> dict[str, str]:
    """The email settings of a test server sending to `sink` (names without TIDINGS_)."""
    return {
        "smtp_url": sink.url,
        "email_from": "Example <notifications@app.example>",
        "email_after": str(AFTER_MINUTES),
        "public_url": PUBLIC,
        "email_interval": "0.2",
        "smtp_timeout": "5",
        "email_lease": "15",
        "email_retry": "0.3",
        "email_retry_max": "0.6",
        **extra,
    }


def listed_messages(message: EmailMessage) -> list[str]:
    """The notification messages a digest lists, in its order (from the plain-text part)."""
    text, _ = parts(message)
    return [line[2:] for line in text.splitlines() if line.startswith("* ")]


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a digest."""
    text = message.get_body(preferencelist=("plain",))
    markup = message.get_body(preferencelist=("html",))
    assert text is not None
    assert markup is not None
    return str(text.get_content()), str(markup.get_content())
