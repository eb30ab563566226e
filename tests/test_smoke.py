from __future__ import annotations

from chatd.proto import chat_pb2
from tests.conftest import user


async def test_send_and_get(stub) -> None:  # type: ignore[no-untyped-def]
    a = await user(stub, "alice")
    await user(stub, "bob")
    r = await stub.Send(chat_pb2.SendRequest(to="bob", message="hi", session_id=a))
    assert r.error_code == 0 and r.message_id == 1


async def test_tests_run_on_uvloop() -> None:
    import asyncio

    import uvloop

    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
