"""The client library's one Connect stream per session
(chatd.client.connection), against servers written here frame by frame:
sends and deliveries share the stream; a broken stream is opened again
after the last message seen, with every unanswered send written again;
a server without Connect gets the unary calls and Subscribe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from chatd.client import ChatClient, Message, Unavailable
from chatd.client.connection import READER_QUEUE
from chatd.proto import chat_pb2, chat_pb2_grpc


def message(mid: int, body: str) -> chat_pb2.Message:
    return chat_pb2.Message(message_id=mid, message=body, to="alice", from_="bob")


class StreamServer(chat_pb2_grpc.ClientAccountServicer):
    """Connect only. Every opening is recorded; messages 1..`backlog` are
    delivered after the opening's after_message_id; each send frame is
    answered with the next id. With `break_after`, the first stream answers
    no send and breaks (UNAVAILABLE) once that many came up."""

    def __init__(self, backlog: int, break_after: int = 0) -> None:
        self.backlog = backlog
        self.break_after = break_after
        self.openings: list[chat_pb2.OpenFrame] = []
        self.sends: list[str] = []  # request ids, in the order written
        self.ids: dict[str, int] = {}

    async def Connect(
        self, frames: AsyncIterator[chat_pb2.ClientFrame], context: Any
    ) -> AsyncIterator[chat_pb2.ServerFrame]:
        first = await anext(aiter(frames))
        self.openings.append(first.open)
        await context.send_initial_metadata(())
        if not first.open.sends_only:
            for mid in range(first.open.after_message_id + 1, self.backlog + 1):
                yield chat_pb2.ServerFrame(message=message(mid, f"m{mid}"))
        taken = 0
        async for frame in frames:
            rid = frame.send.request_id
            self.sends.append(rid)
            taken += 1
            if len(self.openings) == 1 and self.break_after:
                if taken == self.break_after:  # none of them answered
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "the node went away")
                continue
            mid = self.ids.setdefault(rid, 100 + len(self.ids))
            yield chat_pb2.ServerFrame(result=chat_pb2.SendResult(request_id=rid, message_id=mid))


async def serve(servicer: Any) -> tuple[grpc.aio.Server, ChatClient]:
    server = grpc.aio.server()
    chat_pb2_grpc.add_ClientAccountServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = ChatClient([f"127.0.0.1:{port}"], retry_for=5)
    client.session_id, client.username = "s", "alice"  # (these servers have no Login)
    return server, client


async def take(stream: AsyncIterator[Message], n: int) -> list[int]:
    async with asyncio.timeout(10):
        return [(await anext(stream)).id for _ in range(n)]


async def test_sends_and_deliveries_share_one_stream() -> None:
    fake = StreamServer(backlog=3)  # type: ignore[abstract]
    server, client = await serve(fake)
    try:
        stream = client.subscribe()
        assert await take(stream, 3) == [1, 2, 3]
        assert await client.send("bob", "hi", request_id="r1") == 100
        assert client.transport == "stream"
        assert len(fake.openings) == 1 and not fake.openings[0].sends_only
        assert fake.sends == ["r1"]
        await stream.aclose()
        await client.close()
    finally:
        await server.stop(None)


async def test_a_broken_stream_resumes_after_the_last_message_and_resends() -> None:
    """The stream breaks with two sends unanswered: it is opened again after
    the last message the reader saw, and both sends are written again, in
    order, with their request ids; each send gets one id."""
    fake = StreamServer(backlog=2, break_after=2)  # type: ignore[abstract]
    server, client = await serve(fake)
    try:
        stream = client.subscribe()
        assert await take(stream, 2) == [1, 2]
        async with asyncio.timeout(10):
            ids = await asyncio.gather(
                client.send("bob", "a", request_id="a"), client.send("bob", "b", request_id="b")
            )
        assert list(ids) == [100, 101]
        assert fake.sends == ["a", "b", "a", "b"]
        assert [o.after_message_id for o in fake.openings] == [0, 2]
        await stream.aclose()
        await client.close()
    finally:
        await server.stop(None)


async def test_without_a_reader_the_stream_carries_sends_only() -> None:
    fake = StreamServer(backlog=5)  # type: ignore[abstract]
    server, client = await serve(fake)
    try:
        assert await client.send("bob", "hi", request_id="r1") == 100
        assert [o.sends_only for o in fake.openings] == [True]
        await client.close()
    finally:
        await server.stop(None)


async def test_a_server_without_connect_gets_subscribe() -> None:
    class OldServer(chat_pb2_grpc.ClientAccountServicer):
        async def Subscribe(self, request: Any, context: Any) -> AsyncIterator[Any]:
            await context.send_initial_metadata(())
            for mid in range(request.after_message_id + 1, 4):
                yield message(mid, f"m{mid}")
            await asyncio.sleep(30)  # (the stream stays open, as an old server's did)

    server, client = await serve(OldServer())  # type: ignore[abstract]
    try:
        stream = client.subscribe()
        assert await take(stream, 3) == [1, 2, 3]
        await stream.aclose()
        await client.close()
    finally:
        await server.stop(None)


async def test_a_reader_behind_holds_up_no_send_and_misses_nothing() -> None:
    """The stream brings far more than the reader's queue holds while the
    reader, at its first message, sends and waits for the result: the
    result comes (deliveries beyond the queue are dropped, not waited for),
    and the stream opens again after the last message the reader saw, so
    every message arrives once, in order."""
    n = 3 * READER_QUEUE
    fake = StreamServer(backlog=n)  # type: ignore[abstract]
    server, client = await serve(fake)
    try:
        stream = client.subscribe()
        first = await take(stream, 1)
        # the rest of the backlog reaches the client, past its reader's queue
        # (the client shows no sign of it: a fixed time)
        await asyncio.sleep(0.3)
        async with asyncio.timeout(5):
            assert await client.send("bob", "hi", request_id="r1") == 100
        rest = await take(stream, n - 1)
        assert first + rest == list(range(1, n + 1))
        assert len(fake.openings) > 1 and fake.openings[1].after_message_id >= 1
        await stream.aclose()
        connection = client._connection
        assert connection is not None
        await client.close()
        with pytest.raises(Unavailable, match="closed"):  # nothing opens it again
            await connection.send("bob", "after close", "r2")
    finally:
        await server.stop(None)


async def test_a_client_closes_with_its_reader_far_behind() -> None:
    fake = StreamServer(backlog=3 * READER_QUEUE)  # type: ignore[abstract]
    server, client = await serve(fake)
    try:
        stream = client.subscribe()
        await take(stream, 1)
        await asyncio.sleep(0.3)  # (as above: the backlog reaches the client, no sign of it)
        async with asyncio.timeout(5):
            await client.close()
        await stream.aclose()
    finally:
        await server.stop(None)
