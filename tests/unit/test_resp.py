"""The Redis protocol reader of the Redis buses (`tidings.bus.resp`): replies are parsed as bytes
arrive, whole, in order, however the bytes are split, and a waiting call takes them first."""

from __future__ import annotations

import asyncio

import pytest

from tidings.bus.resp import Reply, RespConnection, RespError, _Protocol

pytestmark = pytest.mark.anyio

# What a subscriber's connection sees: a confirmation, two pushed messages, a pong, and then the
# kinds of reply a call gets (an integer, a status, an error, a null, a nested array).
STREAM = (
    b"*3\r\n$9\r\nsubscribe\r\n$11\r\ntidings:u:a\r\n:1\r\n"
    b'*3\r\n$7\r\nmessage\r\n$11\r\ntidings:u:a\r\n$13\r\n[{"t":"x"}]\r\n\r\n'
    b"*3\r\n$8\r\nsmessage\r\n$13\r\ntidings:u:{b}\r\n$0\r\n\r\n"
    b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    b":42\r\n+OK\r\n-MOVED 3999 127.0.0.1:7001\r\n$-1\r\n*2\r\n*2\r\n:0\r\n:5\r\n*-1\r\n"
)
EXPECTED: list[object] = [
    [b"subscribe", b"tidings:u:a", 1],
    [b"message", b"tidings:u:a", b'[{"t":"x"}]\r\n'],
    [b"smessage", b"tidings:u:{b}", b""],
    [b"pong", b""],
    42,
    b"OK",
    "MOVED 3999 127.0.0.1:7001",
    None,
    [[0, 5], None],
]


def _plain(reply: Reply) -> object:
    if isinstance(reply, RespError):
        return str(reply)
    if isinstance(reply, list):
        return [_plain(r) for r in reply]
    return reply


async def _read_all(conn: RespConnection, count: int) -> list[object]:
    async with asyncio.timeout(2):
        return [_plain(await conn.read()) for _ in range(count)]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, len(STREAM)])
async def test_replies_come_out_whole_and_in_order_however_the_bytes_are_cut(step: int) -> None:
    conn = RespConnection()
    for i in range(0, len(STREAM), step):
        conn._feed(STREAM[i : i + step])
    assert await _read_all(conn, len(EXPECTED)) == EXPECTED
    assert conn._rest == b""


async def test_a_reader_waiting_before_the_bytes_arrive_is_woken() -> None:
    conn = RespConnection()
    reading = asyncio.ensure_future(conn.read())
    await asyncio.sleep(0)
    assert not reading.done()
    conn._feed(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi")
    await asyncio.sleep(0)
    assert not reading.done()  # the message is not whole yet
    conn._feed(b"\r\n")
    async with asyncio.timeout(2):
        assert await reading == [b"message", b"c", b"hi"]


class _Transport(asyncio.WriteTransport):
    """Where a call's commands go: kept, so the test can answer them."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = b""
        self.writes = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += bytes(data)
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


async def test_a_call_takes_its_replies_in_order_and_a_lost_connection_fails_it() -> None:
    conn = RespConnection()
    transport = _Transport()
    protocol = _Protocol(conn)
    protocol.connection_made(transport)
    call = asyncio.ensure_future(conn.call([["PUBLISH", "a", "x"], ["PUBLISH", "b", "y"]]))
    # The calls of one turn of the loop are written together at its end.
    for _ in range(3):
        await asyncio.sleep(0)
    assert transport.sent == (
        b"*3\r\n$7\r\nPUBLISH\r\n$1\r\na\r\n$1\r\nx\r\n*3\r\n$7\r\nPUBLISH\r\n$1\r\nb\r\n$1\r\ny\r\n"
    )
    conn._feed(b":1\r\n:0")
    await asyncio.sleep(0)
    assert not call.done()
    conn._feed(b"\r\n")
    async with asyncio.timeout(2):
        assert await call == [1, 0]
    # A call in flight when the connection drops fails (the bus then owes its users a resync).
    lost = asyncio.ensure_future(conn.call([["PUBLISH", "a", "z"]]))
    await asyncio.sleep(0)
    protocol.connection_lost(None)
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(2):
            await lost
    assert conn.closed()
    with pytest.raises(ConnectionError):
        conn.write(["PING"])


async def test_calls_made_in_one_turn_go_out_in_one_write_and_each_gets_its_own_replies() -> None:
    conn = RespConnection()
    transport = _Transport()
    _Protocol(conn).connection_made(transport)
    # What a group commit's publishers do when their batch is answered: announce together.
    calls = [asyncio.ensure_future(conn.call([["PUBLISH", f"u{i}", "m"]])) for i in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # their turn, then the write at the end of it
    assert transport.writes == 1
    assert transport.sent.count(b"PUBLISH") == 3
    assert transport.sent.index(b"u0") < transport.sent.index(b"u1") < transport.sent.index(b"u2")
    # A subscriber-style write after them goes after them: replies keep the order written.
    conn.write(["PING"])
    assert transport.writes == 2
    assert transport.sent.endswith(b"*1\r\n$4\r\nPING\r\n")
    conn._feed(b":0\r\n:1\r\n:2\r\n")
    async with asyncio.timeout(2):
        assert [await c for c in calls] == [[0], [1], [2]]


async def test_a_malformed_reply_ends_the_connection() -> None:
    conn = RespConnection()
    transport = _Transport()
    _Protocol(conn).connection_made(transport)
    conn._feed(b"!garbage\r\n")
    assert transport.closing
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(2):
            await conn.read()


async def test_sent_commands_wait_for_nothing_and_a_checkpoint_confirms_them() -> None:
    conn = RespConnection()
    transport = _Transport()
    _Protocol(conn).connection_made(transport)
    refused: list[str] = []
    conn.on_error = lambda error: refused.append(str(error))
    # Replies on (a cluster): each reply is read and dropped; an error goes to on_error.
    conn.send([["SPUBLISH", "a", "x"], ["SPUBLISH", "b", "y"]])
    await asyncio.sleep(0)
    assert transport.writes == 1
    conn._feed(b":1\r\n-MOVED 3999 127.0.0.1:7001\r\n")
    assert refused == ["MOVED 3999 127.0.0.1:7001"]
    checkpoint = asyncio.ensure_future(conn.checkpoint())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert transport.sent.endswith(b"*1\r\n$4\r\nPING\r\n")
    conn._feed(b"+PONG\r\n")
    async with asyncio.timeout(2):
        await checkpoint


async def test_with_replies_off_a_checkpoint_turns_them_on_for_one_ping() -> None:
    conn = RespConnection()
    transport = _Transport()
    _Protocol(conn).connection_made(transport)
    turning = asyncio.ensure_future(conn.replies_off())
    await asyncio.sleep(0)
    assert transport.sent.count(b"REPLY") == 2  # OFF, then ON and a PING to see OFF took
    conn._feed(b"+OK\r\n+PONG\r\n")
    async with asyncio.timeout(2):
        assert await turning
    assert transport.sent.endswith(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n")
    transport.sent = b""
    conn.send([["PUBLISH", "a", "x"]])
    checkpoint = asyncio.ensure_future(conn.checkpoint())
    await asyncio.sleep(0)
    conn.send([["PUBLISH", "b", "y"]])  # while the checkpoint waits
    await asyncio.sleep(0)
    # In order: the publish, replies on for the PING, off again, then the next publish.
    sent = transport.sent
    order = [
        sent.index(b"$1\r\na\r\n"),
        sent.index(b"ON"),
        sent.index(b"PING"),
        sent.rindex(b"OFF"),
    ]
    assert order == sorted(order)
    assert sent.index(b"$1\r\nb\r\n") > sent.rindex(b"OFF")
    conn._feed(b"+OK\r\n")  # CLIENT REPLY ON's answer
    await asyncio.sleep(0)
    assert not checkpoint.done()
    conn._feed(b"+PONG\r\n")
    async with asyncio.timeout(2):
        await checkpoint
    # A lost connection fails a checkpoint in flight: what it covered is then owed.
    lost = asyncio.ensure_future(conn.checkpoint())
    await asyncio.sleep(0)
    conn.close()
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(2):
            await lost
    with pytest.raises(ConnectionError):
        conn.send([["PUBLISH", "a", "z"]])


async def test_a_server_that_refuses_client_reply_keeps_its_replies() -> None:
    conn = RespConnection()
    transport = _Transport()
    _Protocol(conn).connection_made(transport)
    turning = asyncio.ensure_future(conn.replies_off())
    await asyncio.sleep(0)
    conn._feed(b"-ERR unknown subcommand\r\n-ERR unknown subcommand\r\n+PONG\r\n")
    async with asyncio.timeout(2):
        assert not await turning
    # Replies stay on: each sent command's reply is read and dropped, none piles up.
    conn.send([["PUBLISH", "a", "x"]])
    conn._feed(b":1\r\n")
    assert not conn._replies
    assert not conn._waiting
