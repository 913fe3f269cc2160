"""A complete answer leaves in one socket write.

uvicorn writes a response head as soon as the app sends `http.response.start` and the body with
each `http.response.body`: two writes (two syscalls, two TCP segments on loopback, two wake-ups
of the client) for every JSON answer, the publish route's included. An answer that says its
length (`content-length`: every JSON answer, never a stream) is known to be whole once its one
body message arrives, so its head is held until then and both go out together.

A stream's head is held the same way until its first frame (the `retry:` line and whatever the
reconnect replays), and the two leave in one write: in a reconnect storm that is one syscall of
the two each reconnect made (about a tenth of the storm's CPU went to those writes). Every frame
after the first is written as it comes. An app that ends before its first body still has its
head written (`run_asgi`), as uvicorn would have.

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


class OneWriteCycle(RequestResponseCycle):
    # The `http.response.start` held until its body comes (a class default: no instance dict
    # entry for the answers that never hold one).
    _held: Any = None

    async def run_asgi(self, app: Any) -> None:
        async def then_flush(scope: Any, receive: Any, send: Any) -> None:
            await app(scope, receive, send)
            # Returned after its head and no body: write the head, as uvicorn would have (it
            # then closes the unfinished answer). A failure skips this: uvicorn answers 500.
            held = self._held
            if held is not None:
                self._held = None
                await RequestResponseCycle.send(self, held)

        await super().run_asgi(then_flush)

    async def send(self, message: Any) -> None:
        held = self._held
        if message["type"] == "http.response.start":
            if not self.response_started:
                # A second start (the app failed after its first; uvicorn answers 500) replaces
                # the unsent one.
                self._held = message
                return
            self._held = None
        elif held is not None:
            self._held = None
            if message["type"] == "http.response.body":
                # The whole answer, or a stream's head and first frame: one write.
                await self._send_whole(held, message)
                return
            await super().send(held)
        await super().send(message)

    def write_frame(self, body: bytes) -> bool:
        """Write one chunk of a started stream now, as `send` would; False (nothing written)
        when the connection is gone, its writes are paused (the client reads slowly: the
        stream's bounded queue takes over) or the stream's head is still held."""
        if (
            self._held is not None
            or not self.response_started
            or self.response_complete
            or not self.chunked_encoding
            or self.disconnected
            or self.flow.write_paused
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        return True

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
