"""The raw floor: a minimal raw-ASGI SSE server with an in-memory queue per user, nothing else.

No signature check (the user id is read from the token's payload unverified), no store, no
replay, no limits. It speaks the same routes as tidings so the same generator drives it; what
tidings costs above this is what its guarantees cost.

Run: `python -m uvicorn bench.servers.floor:app --loop uvloop --http httptools`
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

HEARTBEAT = 15.0
SLOTS = 16
PING = b"event: ping\ndata: {}\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

users: dict[str, set[asyncio.Queue[bytes]]] = {}
slots: list[set[asyncio.Queue[bytes]]] = [set() for _ in range(SLOTS)]
seqs: dict[str, int] = {}
state = {"next_slot": 0, "ticker": None}


def _user_from_token(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            try:
                payload = value[7:].split(b".")[1]
                payload += b"=" * (-len(payload) % 4)
                sub = json.loads(base64.urlsafe_b64decode(payload))["sub"]
            except (IndexError, ValueError, KeyError):
                return None
            return str(sub)
    return None


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _ticker() -> None:
    slot = 0
    while True:
        await asyncio.sleep(HEARTBEAT / SLOTS)
        for q in slots[slot]:
            q.put_nowait(PING)
        slot = (slot + 1) % SLOTS


async def _stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    user = _user_from_token(scope)
    if user is None:
        await _respond(send, 401, b'{"error":"unauthorized"}')
        return
    if state["ticker"] is None:
        state["ticker"] = asyncio.get_running_loop().create_task(_ticker())
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    slot = state["next_slot"]
    state["next_slot"] = (slot + 1) % SLOTS
    users.setdefault(user, set()).add(queue)
    slots[slot].add(queue)
    gone = asyncio.Event()

    async def watch() -> None:
        # perf-notes trap 1: send() after a disconnect silently does nothing.
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()
        queue.put_nowait(b"")

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": b"retry: 3000\n\n", "more_body": True})
        while not gone.is_set():
            chunk = await queue.get()
            while not queue.empty():
                chunk += queue.get_nowait()
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        watcher.cancel()
        users[user].discard(queue)
        if not users[user]:
            del users[user]
        slots[slot].discard(queue)


async def _publish(receive: Any, send: Any) -> None:
    raw = b""
    while True:
        msg = await receive()
        raw += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    body = json.loads(raw)
    targets = body.get("user_ids") or [body["user_id"]]
    out = []
    for user in targets:
        user = str(user)
        seq = seqs.get(user, 0) + 1
        seqs[user] = seq
        note = {"id": seq, "user_id": user, "message": body["message"], "data": body.get("data")}
        line = json.dumps(note, separators=(",", ":"))
        frame = f"id: {seq}\nevent: new-notification\ndata: {line}\n\n".encode()
        for q in users.get(user, ()):
            q.put_nowait(frame)
        out.append({"id": seq, "user_id": user})
    await _respond(send, 201, json.dumps(out).encode())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/notifications/stream":
        await _stream(scope, receive, send)
    elif path == "/api/notifications" and scope["method"] == "POST":
        await _publish(receive, send)
    elif path == "/healthz":
        await _respond(send, 200, b'{"ok":true}')
    else:
        await _respond(send, 404, b'{"error":"not_found"}')
