"""Search through the client API and the library (SearchMessages,
SearchUsers) on a real 3-node cluster in this process: a caller finds its
own one-to-one messages and its joined rooms' history, and nothing else (not
another pair's messages, not a room it is only invited to, left, or was
removed from); hostile query texts are refused or answered, never an
internal error nor a leak; a slave answers what the master answers, and
every node's own index agrees; deleted rooms and accounts leave the index;
a page calls both through the web gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from chatd.client import (
    ChatClient,
    InvalidArguments,
    NoSuchRecipient,
    NoSuchRoom,
    NotAMember,
    NotLoggedIn,
    SearchPage,
)
from chatd.core.types import Role
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.build import build
from chatd.server.node import Node
from chatd.server.storage import search
from tests.conftest import node_config
from tests.test_client import logged_in
from tests.test_web_gateway import page
from tests.waiting import eventually_async

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def three(tmp_path: Path) -> AsyncIterator[list[Node]]:
    master = await build(node_config(tmp_path / "n1"))
    await master.start()
    nodes = [master]
    try:
        for name in ("n2", "n3"):
            slave = await build(node_config(tmp_path / name, join=(master.peer_address,)))
            nodes.append(slave)
            await slave.start()
        await eventually_async(
            lambda: (
                all(n.repl.core.role is Role.SLAVE for n in nodes[1:])
                and all(n.repl.core.membership.addresses.get(n.repl.core.master) for n in nodes[1:])
            ),
            "two slaves of a known master",
        )
        yield nodes
    finally:
        for n in nodes:
            await n.stop()


async def in_step(nodes: list[Node]) -> None:
    """Every node has applied what the master has."""
    await eventually_async(
        lambda: {n.store.last_index for n in nodes} == {nodes[0].store.last_index},
        "the slaves in step with the master",
    )


def ids(page: SearchPage) -> list[int]:
    return [m.id for m in page.messages]


async def test_a_caller_finds_only_what_it_may_read(three: list[Node]) -> None:
    master, slave, _ = three
    ann, bob, cat, dan = [await logged_in(master.address, n) for n in ("ann", "bob", "cat", "dan")]
    ann_bob = await ann.send("bob", "the apple harvest is early")
    bob_ann = await bob.send("ann", "apples? I like apple pie")
    cat_dan = await cat.send("dan", "apple secrets between cat and dan")
    await ann.create_room("team")
    for c in (bob, cat):
        await ann.invite("team", c.username or "")
    await bob.join_room("team")  # cat is invited only
    team = await ann.send("", "apple plans for the team", room="team")
    await cat.create_room("hidden")
    await cat.invite("hidden", "dan")
    await dan.join_room("hidden")
    hidden = await dan.send("", "the hidden apple", room="hidden")

    assert ids(await ann.search_messages("apple")) == [team, bob_ann, ann_bob]
    assert ids(await bob.search_messages("APPLE")) == [team, bob_ann, ann_bob]
    assert ids(await cat.search_messages("apple")) == [hidden, cat_dan]  # not team: invited only
    assert ids(await dan.search_messages("apple")) == [hidden, cat_dan]
    assert ids(await ann.search_messages("apple", peer="BOB")) == [bob_ann, ann_bob]
    assert ids(await ann.search_messages("apple", peer="cat")) == []
    assert ids(await ann.search_messages("apple", room="team")) == [team]
    assert ids(await ann.search_messages("harvest early")) == [ann_bob]  # every word
    assert ids(await ann.search_messages("harvest pie")) == []
    assert ids(await ann.search_messages("pi")) == []  # too short to be a prefix
    with pytest.raises(NotAMember):
        await cat.search_messages("apple", room="team")  # invited, not joined
    with pytest.raises(NotAMember):
        await ann.search_messages("apple", room="hidden")
    with pytest.raises(NoSuchRoom):
        await ann.search_messages("apple", room="nowhere")
    with pytest.raises(NoSuchRecipient):
        await ann.search_messages("apple", peer="nobody")
    with pytest.raises(InvalidArguments):
        await ann.search_messages("apple", peer="bob", room="team")

    # paging: newest first, `next_before` until there is no more
    more = [await ann.send("bob", f"orchard note {i}") for i in range(5)]
    first = await ann.search_messages("orchard", limit=2)
    assert ids(first) == more[:2:-1] and first.next_before == more[3]
    second = await ann.search_messages("orchard", limit=2, before=first.next_before)
    assert ids(second) == more[2:0:-1] and second.next_before == more[1]
    last = await ann.search_messages("orchard", limit=2, before=second.next_before)
    assert ids(last) == more[:1] and last.next_before == 0

    # who left or was removed reads none of the room's messages any more
    await bob.leave_room("team")
    assert ids(await bob.search_messages("apple")) == [bob_ann, ann_bob]
    with pytest.raises(NotAMember):
        await bob.search_messages("apple", room="team")
    await cat.remove_from_room("hidden", "dan")
    assert ids(await dan.search_messages("apple")) == [cat_dan]

    # a slave answers as the master does (it relays, as GetChat and
    # GetRoomHistory), and every node's own index finds the same
    async with ChatClient([slave.address]) as via_slave:
        via_slave.session_id = ann.session_id
        assert await via_slave.search_messages("apple") == await ann.search_messages("apple")
    await in_step(three)
    expression = search.match_expression(["apple"], [f"u{master.store.users['ann'].uid}"])
    local = [[m.id for m in n.store.search_messages(expression, 2**31, None, 50)] for n in three]
    assert local == [[bob_ann, ann_bob]] * 3
    assert len({n.store.state_digest for n in three}) == 1
    for c in (ann, bob, cat, dan):
        await c.close()


HOSTILE = [
    "who:u1",
    "{who} : u1",
    "who : u1 OR apple",
    "body: apple OR who: u1",
    '"',
    '"apple" OR "u1',
    "*",
    "a*",
    "NEAR(apple u1, 5)",
    "apple OR u1",
    "apple NOT pear",
    "^apple",
    "(apple",
    "apple) OR (who : u2",
    "search",
    "rank",
    "apple\x00u1",
    "\x01\x02\x1bapple\x7f",
    "\u202eapple\u200b",
    "'; DROP TABLE messages; --",
    "x" * 10_000,
    "apple " * 9,
]


async def test_hostile_query_texts_are_refused_or_answered_never_leaked(
    three: list[Node],
) -> None:
    master = three[0]
    ann, bob, eve = [await logged_in(master.address, n) for n in ("ann", "bob", "eve")]
    secret = await ann.send("bob", "apple u1 u2 who body search rank near pear")
    mine = await eve.send("eve", "apple u1 who body near")
    for text in HOSTILE:
        try:
            page = await eve.search_messages(text)
        except InvalidArguments as exc:
            assert exc.message.startswith("a search query"), (text, exc.message)
            continue
        assert secret not in ids(page), text
        assert set(ids(page)) <= {mine}, text
    assert ids(await eve.search_messages("who:u1 near")) == [mine]  # words, not syntax
    # a request that is not UTF-8 (a surrogate's bytes in `query`) is not a request
    raw = chat_pb2.SearchRequest(session_id=eve.session_id, query="apple").SerializeToString()
    raw = raw.replace(b"apple", b"ap\xed\xa0\x80e")
    async with grpc.aio.insecure_channel(master.address) as channel:
        call = channel.unary_unary(
            "/ClientAccount/SearchMessages",
            request_serializer=lambda b: b,
            response_deserializer=chat_pb2.SearchResults.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(raw)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stub = chat_pb2_grpc.ClientAccountStub(channel)
        for request in (
            chat_pb2.SearchRequest(session_id=eve.session_id, query="apple", limit=-1),
            chat_pb2.SearchRequest(session_id=eve.session_id, query="apple", before_message_id=-5),
            chat_pb2.SearchRequest(session_id="not a session", query="apple"),
        ):
            answer = await stub.SearchMessages(request)
            assert answer.error_code in (2, 14) and not answer.message, request
    capped = await eve.search_messages("apple", limit=10_000)
    assert ids(capped) == [mine]
    for c in (ann, bob, eve):
        await c.close()


async def test_the_index_follows_deleted_rooms_and_accounts(three: list[Node]) -> None:
    master = three[0]
    ann, bob, cat = [await logged_in(master.address, n) for n in ("ann", "bob", "cat")]
    await ann.create_room("gone")
    await ann.send("", "kiwi in a room to delete", room="gone")
    assert len((await ann.search_messages("kiwi")).messages) == 1
    await ann.delete_room("gone")
    assert ids(await ann.search_messages("kiwi")) == []
    await ann.create_room("gone")  # the name again: a new room, none of the old messages
    assert ids(await ann.search_messages("kiwi", room="gone")) == []

    kept = await bob.send("cat", "mango delivered before cat leaves")
    assert [m.id for m in await cat.get_messages()] == [kept]  # delivered: it stays
    lost = await bob.send("cat", "mango never delivered")
    await cat.delete_account()  # its undelivered messages are deleted, and unindexed
    assert ids(await bob.search_messages("mango")) == [kept]
    again = await logged_in(master.address, "cat")  # a new account of the same name
    assert ids(await again.search_messages("mango")) == []
    assert lost not in ids(await bob.search_messages("never delivered"))
    await in_step(three)
    assert len({n.store.state_digest for n in three}) == 1
    for c in (ann, bob, cat, again):
        await c.close()


async def test_search_users_by_prefix(three: list[Node]) -> None:
    master, slave, _ = three
    clients = [await logged_in(master.address, n) for n in ("Alice", "alan", "albert", "bob")]
    alice, alan, albert, bob = clients
    await albert.delete_account()
    found = await bob.search_users("AL")
    assert [u.name for u in found] == ["alan", "Alice"]  # name order in any case, live only
    assert [u.name for u in await bob.search_users("al", limit=1)] == ["alan"]
    assert [u.name for u in await bob.search_users("")] == ["alan", "Alice", "bob"]
    assert await bob.search_users("zed") == []
    stream = bob.subscribe()
    reading = asyncio.create_task(anext(stream))  # online while its stream is open
    await eventually_async(
        lambda: bob.search_users("b"),
        "bob online",
        until=lambda users: [(u.name, u.online) for u in users] == [("bob", True)],
    )
    reading.cancel()
    async with ChatClient([slave.address]) as via_slave:
        via_slave.session_id = bob.session_id
        assert await via_slave.search_users("al") == await bob.search_users("al")
        for bad in ("a b", "%", "_" * 33, "al'--"):
            with pytest.raises(InvalidArguments):
                await via_slave.search_users(bad)
        with pytest.raises(InvalidArguments):
            await via_slave.search_users("al", limit=-1)
        via_slave.session_id = "not a session"
        with pytest.raises(NotLoggedIn):
            await via_slave.search_users("al")
    assert len(await bob.search_users("", limit=10_000)) == 3
    for c in (alice, alan, bob):
        await c.close()


async def test_a_page_calls_search_through_the_web_gateway(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "web", web_listen="127.0.0.1:0"))
    await node.start()
    try:
        async with aiohttp.ClientSession() as http:
            p = await page(http, node)
            ann = await p.user("ann")
            await p.user("bob")
            sent = await p.call(
                "Send", session_id=ann, to="bob", message="search me", request_id="r"
            )
            mid = sent["response"]["message_id"]
            found = await p.call("SearchMessages", session_id=ann, query="SEARCH", limit=1)
            [m] = found["response"]["message"]
            assert (m["message_id"], m["message"], m["to"]) == (mid, "search me", "bob")
            assert found["response"].get("next_before_id", 0) == 0
            users = await p.call("SearchUsers", session_id=ann, prefix="B")
            assert [u["username"] for u in users["response"]["user"]] == ["bob"]
            refused = await p.call("SearchUsers", session_id="nobody", prefix="b")
            assert refused["error"]["code"] == "UNAUTHENTICATED"
            bad = await p.call("SearchMessages", session_id=ann, query="***")
            assert bad["response"]["error_code"] == 2
            assert "needs a word" in bad["response"]["error_message"]
    finally:
        await node.stop()
