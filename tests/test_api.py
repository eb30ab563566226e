"""Every ClientAccount RPC and every error code of API.md, against a real node."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from chatd.proto import chat_pb2
from chatd.proto.chat_pb2_grpc import ClientAccountStub
from chatd.server.build import build
from chatd.server.chat.limits import CHAT_PAGE_MAX
from chatd.server.node import Node
from tests.conftest import PASSWORD, create_user, login, user
from tests.waiting import eventually_async

if TYPE_CHECKING:
    from chatd.proto.chat_pb2_grpc import ClientAccountAsyncStub as Stub


async def send(stub: Stub, sid: str, to: str, body: str, rid: str = "") -> int:
    r = await stub.Send(chat_pb2.SendRequest(to=to, message=body, session_id=sid, request_id=rid))
    assert r.error_code == 0, r
    assert r.message_id > 0
    return int(r.message_id)


# -- CreateAccount --


async def test_create_account_and_errors(stub: Stub) -> None:
    ok = await stub.CreateAccount(
        chat_pb2.CreateAccountRequest(username="al.ice_1-x", password=PASSWORD)
    )
    assert ok.error_code == 0
    dup = await stub.CreateAccount(
        chat_pb2.CreateAccountRequest(username="al.ice_1-x", password=PASSWORD)
    )
    assert dup.error_code == 8 and dup.error_message
    bad_name = await stub.CreateAccount(
        chat_pb2.CreateAccountRequest(username="no spaces", password=PASSWORD)
    )
    assert bad_name.error_code == 3 and bad_name.error_message
    empty_name = await stub.CreateAccount(
        chat_pb2.CreateAccountRequest(username="", password=PASSWORD)
    )
    assert empty_name.error_code == 3
    short_pw = await stub.CreateAccount(
        chat_pb2.CreateAccountRequest(username="bob", password="short")
    )
    assert short_pw.error_code == 4 and short_pw.error_message
    long_pw = await stub.CreateAccount(
        chat_pb2.CreateAccountRequest(username="bob", password="x" * 1025)
    )
    assert long_pw.error_code == 4


async def test_passwords_are_stored_hashed(stub: Stub, node: Node) -> None:
    await create_user(stub, "alice")
    stored = node.store.users["alice"].password_hash
    assert PASSWORD not in stored and stored.startswith("scrypt$")
    raw = node.store.path.read_bytes()
    assert PASSWORD.encode() not in raw


# -- Login / Logout --


async def test_login_errors(stub: Stub) -> None:
    await create_user(stub, "alice")
    r = await stub.Login(chat_pb2.LoginRequest(username="nobody", password=PASSWORD))
    assert r.error_code == 9 and not r.session_id
    r = await stub.Login(chat_pb2.LoginRequest(username="alice", password="wrong password"))
    assert r.error_code == 10 and not r.session_id
    r = await stub.Login(chat_pb2.LoginRequest(username="bad name!", password=PASSWORD))
    assert r.error_code == 3


async def test_sessions_are_random_and_stored_hashed(stub: Stub, node: Node) -> None:
    await create_user(stub, "alice")
    a, b = await login(stub, "alice"), await login(stub, "alice")
    assert a != b and len(a) >= 22  # >= 128 bits of url-safe base64
    assert all(len(h) == 32 for h in node.store.sessions)
    assert a.encode() not in node.store.path.read_bytes()


async def test_logout_ends_only_that_session(stub: Stub) -> None:
    await create_user(stub, "alice")
    await create_user(stub, "bob")
    a1, a2 = await login(stub, "alice"), await login(stub, "alice")
    r = await stub.Logout(chat_pb2.DeleteAccountRequest(session_id=a1))
    assert r.error_code == 0
    r = await stub.Send(chat_pb2.SendRequest(to="bob", message="x", session_id=a1))
    assert r.error_code == 14
    again = await stub.Logout(chat_pb2.DeleteAccountRequest(session_id=a1))
    assert again.error_code == 14
    await send(stub, a2, "bob", "still here")


# -- Send --


async def test_send_errors(stub: Stub) -> None:
    a = await user(stub, "alice")
    await create_user(stub, "bob")

    async def code(**kw: str) -> int:
        args = {"to": "bob", "message": "hi", "session_id": a} | kw
        return int((await stub.Send(chat_pb2.SendRequest(**args))).error_code)  # type: ignore[arg-type]

    assert await code(session_id="") == 14
    assert await code(session_id="not-a-session") == 14
    assert await code(to="carol") == 15
    assert await code(message="") == 5
    assert await code(message="x" * 4097) == 5
    assert await code(request_id="r" * 129) == 2
    assert await code(message="x" * 4096) == 0


async def test_message_ids_increase(stub: Stub) -> None:
    a = await user(stub, "alice")
    await create_user(stub, "bob")
    ids = [await send(stub, a, "bob", f"m{i}") for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


async def test_send_retry_with_request_id_stores_once(stub: Stub, node: Node) -> None:
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    first = await send(stub, a, "bob", "once", rid="req-1")
    index = node.store.last_index
    again = await send(stub, a, "bob", "once", rid="req-1")
    assert again == first
    other = await send(stub, a, "bob", "twice", rid="req-2")
    assert other != first
    # a different sender may use the same request id
    mine = await send(stub, b, "alice", "hello", rid="req-1")
    assert mine not in (first, other)
    got = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
    assert [m.message for m in got.message] == ["once", "twice"]
    assert node.store.last_index > index


async def test_concurrent_retries_store_once(stub: Stub) -> None:
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    ids = await asyncio.gather(*(send(stub, a, "bob", "dup", rid="same") for _ in range(20)))
    assert len(set(ids)) == 1
    got = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
    assert len(got.message) == 1


# -- GetMessages / AcknowledgeReceivedMessages --


async def test_get_messages_oldest_first_then_marked_delivered(
    stub: Stub,
) -> None:
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    before = time.time()
    ids = [await send(stub, a, "bob", f"m{i}") for i in range(3)]
    got = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
    assert got.error_code == 0
    assert [m.message_id for m in got.message] == ids
    m = got.message[0]
    assert (m.from_, m.to, m.message) == ("alice", "bob", "m0")
    assert before - 5 < m.time_stamp.seconds + m.time_stamp.nanos / 1e9 < time.time() + 5
    empty = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
    assert empty.error_code == 17 and not empty.message
    bad = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id="nope"))
    assert bad.error_code == 14


async def test_get_messages_never_answers_more_than_a_client_can_receive(stub: Stub) -> None:
    """300 messages of 4,096 four-byte characters (about 4.9 MB) wait for bob.
    Messages GetMessages takes are marked delivered, so an answer above
    gRPC's default 4 MiB receive limit would lose them all: each answer
    stays under it, and the calls together return every message once."""
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    body = "\U0001f600" * 4096
    ids = [await send(stub, a, "bob", body, f"r{i}") for i in range(300)]
    answers: list[list[int]] = []
    for _ in range(20):  # bounded: 300 messages fit in far fewer answers
        r = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))  # default 4 MiB limit
        if r.error_code == 17:
            break
        assert r.error_code == 0
        assert r.ByteSize() < 4 * 1024 * 1024
        answers.append([m.message_id for m in r.message])
    assert [i for a in answers for i in a] == ids and len(answers) >= 2


async def test_get_chat_pages_fit_a_default_client(stub: Stub) -> None:
    """The same 4.9 MB as a conversation: a page of up to 500 messages would
    be refused by a default client; each page keeps the newest messages
    that fit, and paging back from the oldest one returned reads them all."""
    a = await user(stub, "alice")
    await user(stub, "bob")
    body = "\U0001f600" * 4096
    ids = [await send(stub, a, "bob", body, f"r{i}") for i in range(300)]
    seen: list[int] = []
    before = 0
    for _ in range(20):  # bounded
        r = await stub.GetChat(
            chat_pb2.ChatRequest(session_id=a, username="bob", before_message_id=before, limit=500)
        )
        if r.error_code == 17:
            break
        assert r.error_code == 0 and r.ByteSize() < 4 * 1024 * 1024
        page = [m.message_id for m in r.message]
        assert page == sorted(page)
        seen = page + seen
        before = page[0]
    assert seen == ids


async def test_acknowledge_marks_only_own_messages(stub: Stub) -> None:
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    c = await user(stub, "carol")
    to_bob = [await send(stub, a, "bob", f"b{i}") for i in range(3)]
    to_carol = await send(stub, a, "carol", "c0")
    r = await stub.AcknowledgeReceivedMessages(
        chat_pb2.AcknowledgeReceivedMessagesRequest(session_id=b, message_ids=[to_bob[0], to_carol])
    )
    assert r.error_code == 0
    got = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
    assert [m.message_id for m in got.message] == to_bob[1:]
    carol = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=c))
    assert [m.message_id for m in carol.message] == [to_carol]
    bad = await stub.AcknowledgeReceivedMessages(
        chat_pb2.AcknowledgeReceivedMessagesRequest(session_id=b, message_ids=[-1])
    )
    assert bad.error_code == 2
    anon = await stub.AcknowledgeReceivedMessages(
        chat_pb2.AcknowledgeReceivedMessagesRequest(session_id="x", message_ids=[1])
    )
    assert anon.error_code == 14


async def test_acknowledging_made_up_ids_writes_nothing(stub: Stub, node: Node) -> None:
    """An acknowledge flood (10,000 ids that are nobody's undelivered
    messages) adds nothing to the replicated log; real ids still count."""
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    mine = await send(stub, a, "bob", "m0")
    before = node.store.last_index
    for _ in range(5):
        r = await stub.AcknowledgeReceivedMessages(
            chat_pb2.AcknowledgeReceivedMessagesRequest(
                session_id=b, message_ids=list(range(10_000_000, 10_010_000))
            )
        )
        assert r.error_code == 0
    assert node.store.last_index == before
    r = await stub.AcknowledgeReceivedMessages(
        chat_pb2.AcknowledgeReceivedMessagesRequest(session_id=b, message_ids=[mine, mine, 999])
    )
    assert r.error_code == 0 and node.store.last_index == before + 1
    empty = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
    assert empty.error_code == 17


async def test_an_empty_inbox_writes_nothing(stub: Stub, node: Node) -> None:
    b = await user(stub, "bob")
    before = node.store.last_index
    for _ in range(20):
        empty = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
        assert empty.error_code == 17
    assert node.store.last_index == before  # (it was one log entry a call)
    a = await user(stub, "alice")
    mid = await send(stub, a, "bob", "now there is one")
    got = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
    assert [m.message_id for m in got.message] == [mid]


async def test_names_are_unique_regardless_of_case(stub: Stub, node: Node) -> None:
    """`alice` and `ALICE` cannot both exist; a name is shown as it was
    created, and found in any case: logins, sends and conversations."""
    a = await user(stub, "Alice")
    for other in ("alice", "ALICE", "aLiCe"):
        r = await stub.CreateAccount(
            chat_pb2.CreateAccountRequest(username=other, password=PASSWORD)
        )
        assert r.error_code == 8, other
        assert "as Alice" in r.error_message
    assert [u.username for u in (await stub.ListUsers(chat_pb2.Empty())).user] == ["Alice"]
    r = await stub.Login(chat_pb2.LoginRequest(username="ALICE", password=PASSWORD))
    assert r.error_code == 0
    b = await user(stub, "bob")
    mid = await send(stub, b, "alice", "hi")  # to Alice
    inbox = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=r.session_id))
    assert [(m.message_id, m.to, m.from_) for m in inbox.message] == [(mid, "Alice", "bob")]
    chat = await stub.GetChat(chat_pb2.ChatRequest(session_id=a, username="BOB"))
    assert [m.message_id for m in chat.message] == [mid]
    # the rule is the replicated apply's too, not only the master's check:
    # two sign-ups racing past the check cannot both land
    from chatd.proto import log_pb2

    entry = log_pb2.CreateAccount(username="ALICE", password_hash="h", unique_casefold=True)
    applied = await node.writer.submit(log_pb2.Entry(create_account=entry))
    assert applied.code == 8 and "ALICE" not in node.store.users
    # an older master's entry (without the flag) is applied as it always was
    old = log_pb2.CreateAccount(username="ALICE", password_hash="h")
    assert (await node.writer.submit(log_pb2.Entry(create_account=old))).code == 0
    assert node.store.find_user("alice") == "Alice"  # the older of the two


# -- GetChat --


async def test_get_chat_both_directions_paged(stub: Stub) -> None:
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    c = await user(stub, "carol")
    ids = []
    for i in range(7):
        ids.append(
            await send(stub, a if i % 2 == 0 else b, "bob" if i % 2 == 0 else "alice", f"m{i}")
        )
    await send(stub, c, "alice", "not in this chat")
    page = await stub.GetChat(chat_pb2.ChatRequest(session_id=a, username="bob", limit=3))
    assert [m.message_id for m in page.message] == ids[-3:]
    older = await stub.GetChat(
        chat_pb2.ChatRequest(session_id=a, username="bob", limit=3, before_message_id=ids[-3])
    )
    assert [m.message_id for m in older.message] == ids[-6:-3]
    from_bob = await stub.GetChat(chat_pb2.ChatRequest(session_id=b, username="alice"))
    assert [m.message for m in from_bob.message] == [f"m{i}" for i in range(7)]
    first = await stub.GetChat(
        chat_pb2.ChatRequest(session_id=a, username="bob", before_message_id=ids[0])
    )
    assert first.error_code == 17
    assert (await stub.GetChat(chat_pb2.ChatRequest(session_id=a, username="zed"))).error_code == 15
    assert (
        await stub.GetChat(chat_pb2.ChatRequest(session_id="x", username="bob"))
    ).error_code == 14
    neg = await stub.GetChat(chat_pb2.ChatRequest(session_id=a, username="bob", limit=-1))
    assert neg.error_code == 2


async def test_get_chat_page_size_is_capped(stub: Stub) -> None:
    a = await user(stub, "alice")
    await create_user(stub, "bob")
    for i in range(CHAT_PAGE_MAX + 5):
        await send(stub, a, "bob", f"m{i}")
    page = await stub.GetChat(chat_pb2.ChatRequest(session_id=a, username="bob", limit=10_000))
    assert len(page.message) == CHAT_PAGE_MAX
    assert page.message[-1].message == f"m{CHAT_PAGE_MAX + 4}"


# -- ListUsers --


async def test_list_users_online_while_subscribed(stub: Stub) -> None:
    await create_user(stub, "alice")
    b = await user(stub, "bob")
    users = await stub.ListUsers(chat_pb2.Empty())
    assert [(u.username, u.status) for u in users.user] == [
        ("alice", "offline"),
        ("bob", "offline"),
    ]
    call = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b))

    async def statuses() -> dict[str, str]:
        return {u.username: u.status for u in (await stub.ListUsers(chat_pb2.Empty())).user}

    got = await eventually_async(statuses, "bob online", until=lambda s: s["bob"] == "online")
    assert got == {"alice": "offline", "bob": "online"}
    call.cancel()
    await eventually_async(statuses, "bob offline", until=lambda s: s["bob"] == "offline")


# -- DeleteAccount --


async def test_delete_account(stub: Stub) -> None:
    a = await user(stub, "alice")
    b1 = await user(stub, "bob")
    b2 = await login(stub, "bob")
    delivered = await send(stub, a, "bob", "read it")
    await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b1))
    await send(stub, a, "bob", "never read")
    from_bob = await send(stub, b1, "alice", "bye")
    r = await stub.DeleteAccount(chat_pb2.DeleteAccountRequest(session_id=b1))
    assert r.error_code == 0
    for sid in (b1, b2):  # every session of bob ended
        r = await stub.Send(chat_pb2.SendRequest(to="alice", message="x", session_id=sid))
        assert r.error_code == 14
    assert [u.username for u in (await stub.ListUsers(chat_pb2.Empty())).user] == ["alice"]
    assert (
        await stub.Login(chat_pb2.LoginRequest(username="bob", password=PASSWORD))
    ).error_code == 9
    r = await stub.Send(chat_pb2.SendRequest(to="bob", message="x", session_id=a))
    assert r.error_code == 15
    # what alice already has stays in her history
    hist = await stub.GetChat(chat_pb2.ChatRequest(session_id=a, username="bob"))
    assert [m.message_id for m in hist.message] == [delivered, from_bob]
    # the name is free again, and the new bob starts empty
    b3 = await user(stub, "bob")
    empty = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b3))
    assert empty.error_code == 17
    bad = await stub.DeleteAccount(chat_pb2.DeleteAccountRequest(session_id="x"))
    assert bad.error_code == 14


async def test_delete_account_ends_streams(node: Node, stub: Stub) -> None:
    b = await user(stub, "bob")
    call = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b))
    await eventually_async(lambda: node.hub.streams_of("bob"), "bob's stream open")
    r = await stub.DeleteAccount(chat_pb2.DeleteAccountRequest(session_id=b))
    assert r.error_code == 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async with asyncio.timeout(5):
            async for _ in call:
                pass
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- sessions expire --


async def test_idle_session_expires(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import node_config

    n = await build(node_config(tmp_path / "n", session_ttl=1.0))
    await n.start()
    try:
        async with grpc.aio.insecure_channel(n.address) as ch:
            stub = ClientAccountStub(ch)
            a = await user(stub, "alice")
            await create_user(stub, "bob")
            await send(stub, a, "bob", "fresh")
            await asyncio.sleep(1.3)  # (idle past the 1 s session_ttl: the expiry is the test)
            r = await stub.Send(chat_pb2.SendRequest(to="bob", message="x", session_id=a))
            assert r.error_code == 14
            # the sweep removes it from the replicated state too
            await eventually_async(lambda: not n.store.sessions, "no session left in the store")
    finally:
        await n.stop()


async def test_oversized_request_is_refused_not_crashed(stub: Stub) -> None:
    a = await user(stub, "alice")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Send(chat_pb2.SendRequest(to="bob", message="x" * 400_000, session_id=a))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await stub.ListUsers(chat_pb2.Empty())).user


async def test_a_request_that_does_not_parse_is_refused_as_invalid(
    stub: Stub, node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    """Junk bytes get INVALID_ARGUMENT with a plain message, not UNKNOWN with
    Python's decode error, and no traceback in the log; the node goes on."""
    junk = b"\xff\xff\xff\xff\x0f not a protobuf"
    identity: dict[str, Any] = {
        "request_serializer": lambda b: b,
        "response_deserializer": lambda b: b,
    }
    async with grpc.aio.insecure_channel(node.address) as ch:
        for method in ("Login", "Send", "Subscribe"):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                if method == "Subscribe":
                    stream = ch.unary_stream(f"/ClientAccount/{method}", **identity)
                    async for _ in stream(junk, timeout=5):
                        pass
                else:
                    await ch.unary_unary(f"/ClientAccount/{method}", **identity)(junk, timeout=5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert "is not a valid" in (info.value.details() or ""), info.value.details()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= 40]
    await user(stub, "alice")  # and it still serves
