"""A complete answer leaves in one socket write.

uvicorn writes a response head as soon as the app sends `http.response.start` and the body with
each `http.response.body`: two writes (two syscalls, two TCP segments on loopback, two wake-ups
of the client) for every JSON answer, the publish route's included. An answer that says its
length (`content-length`: every JSON answer, never a stream) is known to be whole once its one
body message arrives, so its head is held until then and both go out together. Streams
(chunked, no length) are written as before, each send at once.

`OneWriteCycle` is uvicorn's httptools `RequestResponseCycle` with `send` changed and nothing
else; `tidings.heads.BoundedHttpToolsProtocol` gives each request's cycle this class.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

__all__ = ["OneWriteCycle"]


class _Gather:
    """Stands in for the transport while uvicorn writes a held head and its body."""

    __slots__ = ("closing", "parts")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        # Not keep-alive: closed after the write, in that order, as uvicorn does.
        self.closing = True


def _has_length(message: Any) -> bool:
    return any(name.lower() == b"content-length" for name, _ in message.get("headers", ()))


class OneWriteCycle(RequestResponseCycle):
    # The `http.response.start` held until its body comes (a class default: no instance dict
    # entry for the answers that never hold one).
    _held: Any = None

    async def send(self, message: Any) -> None:
        held = self._held
        if message["type"] == "http.response.start":
            if not self.response_started and _has_length(message):
                # A second start (the app failed after its first; uvicorn answers 500) replaces
                # the unsent one.
                self._held = message
                return
            self._held = None
        elif held is not None:
            self._held = None
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await self._send_whole(held, message)
                return
            await super().send(held)
        await super().send(message)

    async def _send_whole(self, start: Any, body: Any) -> None:
        transport = self.transport
        gather = _Gather()
        self.transport = gather  # type: ignore[assignment]
        try:
            await super().send(start)
            await super().send(body)
        finally:
            self.transport = transport
            if gather.parts:
                transport.write(b"".join(gather.parts))
            if gather.closing:
                transport.close()
