"""Sending one email over SMTP: the `TIDINGS_SMTP_URL` format, and smtplib on a thread.

The standard library's smtplib, not an async client: a digest is a handful of messages a minute
per node, off the hot path, and a thread per send (bounded by the digest loop, one at a time)
costs nothing next to a new dependency. Every socket operation has the timeout.

URLs:

- `smtp://host:25` — plain SMTP (a relay on the same host or network);
- `smtp://user:pass@host:587?starttls=1` — STARTTLS, required (refused when the server does
  not offer it, never silently sent in the clear);
- `smtps://user:pass@host:465` — TLS from the first byte (implicit TLS).

User and password are percent-decoded (`p%40ss` for `p@ss`). Certificates are verified with
the system's CA store; `?verify=0` turns that off for a relay with a self-signed certificate.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["SendFailed", "SmtpTarget", "send"]

# How a message goes on the wire: CRLF line ends (smtplib sends bytes as they are), and headers
# folded only past RFC 5322's limit of 998: at 78, a long List-Unsubscribe URL would be RFC
# 2047-encoded, which mail clients do not read as a URL.
WIRE_POLICY = policy.SMTP.clone(max_line_length=998)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SendFailed(Exception):
    """The message was not sent. `maybe_sent`: the failure came while the message itself was
    being handed over (a timeout or a dropped connection after DATA), so the server may have
    accepted it; a definite refusal (a 4xx/5xx answer) or a failure before DATA is not."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    verify: bool = True

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        """Raise ValueError (a message for the operator) for a URL that is not one of the forms
        in the module docstring."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("use smtp://host:port, smtp://…?starttls=1 or smtps://host:port")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the port is not a number up to 65535") from None
        if not parts.hostname:
            raise ValueError("no host (smtp://host:port)")
        query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls", "verify"}
        if unknown:
            raise ValueError(f"unknown option {sorted(unknown)[0]!r} (starttls, verify)")
        flags: dict[str, bool] = {}
        for name in ("starttls", "verify"):
            value = query.get(name)
            if value is not None and value not in _TRUE | _FALSE:
                raise ValueError(f"{name}={value!r} is not 1 or 0")
            flags[name] = value in _TRUE if value is not None else name == "verify"
        implicit = parts.scheme == "smtps"
        if implicit and flags["starttls"]:
            raise ValueError("smtps:// is TLS already; starttls=1 is for smtp://")
        default_port = 465 if implicit else 587 if flags["starttls"] else 25
        return cls(
            host=parts.hostname,
            port=port or default_port,
            implicit_tls=implicit,
            starttls=flags["starttls"],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            verify=flags["verify"],
        )

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def send(target: SmtpTarget, message: EmailMessage, *, timeout: float, deadline: float) -> None:
    """Send `message` to its `To`, blocking (run it on a thread); raise `SendFailed`.

    `deadline` (time.monotonic()) is when the caller's claim on this digest runs out: past it
    the message is not handed over at all, because another node may be sending it by then.
    """
    sender = message["From"]
    recipient = message["To"]
    in_data = False
    client: smtplib.SMTP | None = None
    try:
        if target.implicit_tls:
            client = smtplib.SMTP_SSL(
                target.host, target.port, timeout=timeout, context=target.tls_context()
            )
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=timeout)
        client.ehlo()
        if target.starttls:
            if not client.has_extn("starttls"):
                raise SendFailed("the SMTP server does not offer STARTTLS", maybe_sent=False)
            client.starttls(context=target.tls_context())
            client.ehlo()
        if target.username is not None:
            client.login(target.username, target.password or "")
        code, answer = client.mail(_address(sender))
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, answer, sender)
        code, answer = client.rcpt(_address(recipient))
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (code, answer)})
        if time.monotonic() > deadline:
            raise SendFailed("the claim ran out before the message was sent", maybe_sent=False)
        in_data = True
        code, answer = client.data(message.as_bytes(policy=WIRE_POLICY))
        if code != 250:
            raise smtplib.SMTPDataError(code, answer)
    except SendFailed:
        raise
    except smtplib.SMTPResponseException as exc:
        # The server answered, and it said no: nothing was accepted.
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        raise SendFailed(f"SMTP {exc.smtp_code} {text}".strip(), maybe_sent=False) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendFailed(
            f"SMTP refused the recipient: {exc.recipients}", maybe_sent=False
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise SendFailed(
            f"SMTP {target.host}:{target.port}: {reason}", maybe_sent=in_data
        ) from None
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()


def _address(header: str) -> str:
    """The bare address of a From or To header (`Name <a@b>` → `a@b`)."""
    return parseaddr(header)[1] or header
