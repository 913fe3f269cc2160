"""A bare-socket SSE client: what a browser receives, byte for byte, at almost no cost per stream.

For the tests that need a thousand streams, or a client that stops reading; `support.open_stream`
is the everyday client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RawEvent", "RawResponse", "parse_events", "parse_response", "stream_request"]


def stream_request(port: int, token: str, last_event_id: str | None = None) -> bytes:
    lines = [
        "GET /notifications/stream HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Authorization: Bearer {token}",
        "Accept: text/event-stream",
    ]
    if last_event_id is not None:
        lines.append(f"Last-Event-ID: {last_event_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class RawEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    # Every complete event block, in order (a block with only `retry:` included).
    events: list[RawEvent] = field(default_factory=list)
    # The chunked body ended with its last, empty chunk: the server finished the response.
    complete: bool = False

    @property
    def retries(self) -> list[int]:
        return [e.retry for e in self.events if e.retry is not None]

    @property
    def ids(self) -> list[int]:
        return [int(e.id) for e in self.events if e.event == "new-notification" and e.id]


def parse_response(raw: bytes) -> RawResponse:
    """Parse what was received so far; a cut-off tail (chunk or event) is left out."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no complete response head in {raw[:200]!r}")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    response = RawResponse(status=int(status_line.split()[1]), headers=headers)
    if headers.get("transfer-encoding") == "chunked":
        body, response.complete = _dechunk(rest)
    else:
        body = rest
    response.events = parse_events(body)
    return response


def parse_events(body: bytes) -> list[RawEvent]:
    """The complete event blocks of an SSE body, in order (a block with only `retry:` too)."""
    return [_event(block) for block in body.decode(errors="replace").split("\n\n")[:-1]]


def _dechunk(raw: bytes) -> tuple[bytes, bool]:
    body = bytearray()
    pos = 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return bytes(body), False
        size = int(raw[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(body), raw[end : end + 4] == b"\r\n\r\n"
        start = end + 2
        if len(raw) < start + size + 2:
            return bytes(body), False
        body += raw[start : start + size]
        pos = start + size + 2


def _event(block: str) -> RawEvent:
    event = RawEvent()
    data: list[str] = []
    for line in block.split("\n"):
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event.event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event.id = value
        elif name == "retry":
            event.retry = int(value)
    event.data = "\n".join(data)
    return event
