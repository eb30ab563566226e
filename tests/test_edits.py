"""Edits, deletions, reactions and replies through the client API: the
events on the streams that ask for them (both parties', the actor's own
included; a room's members'), none on the streams that do not, history
that shows each message's state, and every refusal an attacker could try.
Real nodes on loopback (one in-process node, or a 3-node cluster of
processes for the slave's streams and a master killed -9)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from chatd.client import (
    ChatClient,
    EditWindowPassed,
    InvalidMessage,
    InvalidReaction,
    Message,
    NoSuchMessage,
    NotAllowed,
    NotAMember,
)
from chatd.client.model import DELETE, EDIT, REACT, UNREACT, applied
from chatd.contract import MAX_REACTIONS, REACTIONS
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.build import build
from chatd.server.node import Node
from chatd.server.storage.store import Store
from tests.cluster import Cluster
from tests.conftest import node_config
from tests.test_client import logged_in
from tests.waiting import eventually_async

THUMBS, HEART, EYES = REACTIONS[0], REACTIONS[1], REACTIONS[6]
Kind = chat_pb2.Message.Kind


class Got:
    """What a stream delivers, read by a task of its own into a queue (a
    wait that times out leaves the stream as it was)."""

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[Any]) -> None:
        async for m in stream:
            await self.queue.put(m)

    async def take(self, n: int) -> list[Any]:
        async with asyncio.timeout(10):
            return [await self.queue.get() for _ in range(n)]

    async def nothing_more(self, wait: float = 0.5) -> None:
        await asyncio.sleep(wait)
        assert self.queue.empty(), self.queue.get_nowait()

    async def aclose(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await self.task


async def take(got: Got, n: int) -> list[Any]:
    return await got.take(n)


async def nothing_more(got: Got) -> None:
    await got.nothing_more()


class Raw:
    """A user's own stub calls and streams, at one node."""

    def __init__(self, address: str, session_id: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = chat_pb2_grpc.ClientAccountStub(self.channel)
        self.session_id = session_id
        self.calls: list[Any] = []

    async def subscribe(self, events: bool) -> Got:
        request = chat_pb2.SubscribeRequest(session_id=self.session_id, events=events)
        call = self.stub.Subscribe(request)
        self.calls.append(call)
        await call.initial_metadata()
        return Got(call.__aiter__())

    async def connect(self, events: bool) -> Got:
        opening = chat_pb2.OpenFrame(session_id=self.session_id, events=events)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        await queue.put(chat_pb2.ClientFrame(open=opening))

        async def frames() -> AsyncIterator[chat_pb2.ClientFrame]:
            while True:
                yield await queue.get()

        call = self.stub.Connect(frames())
        self.calls.append(call)
        await call.initial_metadata()

        async def messages() -> AsyncIterator[chat_pb2.Message]:
            async for frame in call:
                if frame.HasField("message"):
                    yield frame.message

        return Got(messages())

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()
        await self.channel.close(None)


def ev(m: chat_pb2.Message) -> tuple[Any, ...]:
    return (m.kind, m.target_id, m.from_, m.message, m.to, m.room)


async def test_one_to_one_edit_reply_react_delete_reach_both_parties(node: Node) -> None:
    ann, bob = [await logged_in(node.address, n) for n in ("ann", "bob")]
    raw_ann = Raw(node.address, ann.session_id or "")
    raw_bob = Raw(node.address, bob.session_id or "")
    try:
        ann_events = await raw_ann.subscribe(events=True)
        bob_events = await raw_bob.connect(events=True)
        bob_old = await raw_bob.subscribe(events=False)  # as an old client's
        first = await ann.send("bob", "helo")
        reply = await bob.send("ann", "hi!", reply_to=first)
        edit = await ann.edit_message(first, "hello")
        react = await bob.react(first, THUMBS)
        assert await bob.react(first, THUMBS) == 0  # there already: nothing written
        unreact = await bob.unreact(first, THUMBS)
        assert await bob.unreact(first, THUMBS) == 0
        await bob.react(first, HEART)
        await ann.react(first, HEART)
        assert first < reply < edit < react < unreact
        # history: each message's state
        chat = await bob.get_chat("ann")
        assert [(m.id, m.body, m.reply_to, m.edited) for m in chat] == [
            (first, "hello", 0, True),
            (reply, "hi!", first, False),
        ]
        assert chat[0].reactions == ((HEART, ("bob", "ann")),)
        # the events, on both parties' streams (the actor's own too), in id order
        expected = [
            (Kind.EDIT, first, "ann", "hello", "bob", ""),
            (Kind.REACT, first, "bob", THUMBS, "bob", ""),
            (Kind.UNREACT, first, "bob", THUMBS, "bob", ""),
            (Kind.REACT, first, "bob", HEART, "bob", ""),
            (Kind.REACT, first, "ann", HEART, "bob", ""),
        ]
        got_ann = await take(ann_events, 6)
        assert got_ann[0].message_id == reply and got_ann[0].reply_to == first
        assert [ev(m) for m in got_ann[1:]] == expected
        got_bob = await take(bob_events, 6)
        assert got_bob[0].message_id == first
        assert [ev(m) for m in got_bob[1:]] == expected
        assert [m.message_id for m in got_bob[1:]] == [m.message_id for m in got_ann[1:]]
        # an old stream: the message alone, no event
        [m] = await take(bob_old, 1)
        assert (m.message_id, m.kind) == (first, Kind.MESSAGE)
        await nothing_more(bob_old)
        # deleted: gone for everyone, its reactions too
        gone = await bob.delete_message(reply)
        with pytest.raises(NotAllowed):
            await bob.delete_message(first)  # ann's, in a one-to-one: not bob's to delete
        [d] = await take(ann_events, 1)
        assert (d.message_id, *ev(d)) == (gone, Kind.DELETE, reply, "bob", "", "ann", "")
        [d2] = await take(bob_events, 1)
        assert d2.message_id == gone
        chat = await ann.get_chat("bob")
        assert [(m.id, m.body, m.deleted) for m in chat] == [
            (first, "hello", False),
            (reply, "", True),
        ]
        await nothing_more(bob_old)
        # an old client's inbox, unread counts and GetMessages know no event
        assert [m.id for m in await ann.get_messages()] == [reply]
        assert [(u.peer, u.count) for u in await bob.unread()] == [("ann", 1)]
        # a stream that resumes after an id sees messages and events in order
        again = await raw_ann.subscribe(events=True)
        got = await take(again, 7)
        assert [m.message_id for m in got] == [reply, *[m.message_id for m in got_ann[1:]], gone]
    finally:
        for c in (raw_ann, raw_bob):
            await c.close()
        for client in (ann, bob):
            await client.close()


async def test_room_events_reach_every_member_who_joined(node: Node) -> None:
    ann, bob, cat = [await logged_in(node.address, n) for n in ("ann", "bob", "cat")]
    try:
        await ann.create_room("team")
        for c in (bob, cat):
            await ann.invite("team", c.username or "")
            await c.join_room("team")
        streams = {c.username: Got(c.subscribe()) for c in (ann, bob, cat)}
        mid = await bob.send("", "draft", room="team")
        answer = await cat.send("", "ok", room="team", reply_to=mid)
        edit = await bob.edit_message(mid, "final")
        await cat.react(mid, EYES)
        # an admin deletes another member's message; a member who is not may not
        with pytest.raises(NotAllowed):
            await cat.delete_message(mid)
        gone = await ann.delete_message(answer)
        for name, stream in streams.items():
            got = await take(stream, 5)
            kinds = [(m.id, m.kind, m.target_id, m.room) for m in got]
            assert kinds == [
                (mid, "message", 0, "team"),
                (answer, "message", 0, "team"),
                (edit, EDIT, mid, "team"),
                (got[3].id, REACT, mid, "team"),
                (gone, DELETE, answer, "team"),
            ], name
        history = await cat.room_history("team")
        assert [(m.body, m.edited, m.deleted, m.reply_to, m.reactions) for m in history] == [
            ("final", True, False, 0, ((EYES, ("cat",)),)),
            ("", False, True, mid, ()),
        ]
        # the library's applied() brings a message up to date as the node does
        first = Message(mid, "bob", "team", "draft", history[0].time, "team")
        for event in got[2:4]:
            first = applied(first, event)
        assert (first.body, first.edited, first.reactions) == ("final", True, ((EYES, ("cat",)),))
        for s in streams.values():
            await s.aclose()
        # a room deleted: its events and its messages' state go with its messages
        await ann.delete_room("team")
        db = node.store.db
        for table in ("message_events", "message_state", "reactions"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    finally:
        for c in (ann, bob, cat):
            await c.close()


async def test_what_an_attacker_tries_is_refused_and_changes_nothing(node: Node) -> None:
    ann, bob, eve = [await logged_in(node.address, n) for n in ("ann", "bob", "eve")]
    try:
        theirs = await ann.send("bob", "between ann and bob")
        await ann.create_room("club")
        await ann.invite("club", "eve")
        await eve.join_room("club")
        in_club = await ann.send("", "club news", room="club")
        eves = await eve.send("", "mine", room="club")
        await ann.remove_from_room("club", "eve")
        own = await eve.send("ann", "eve's own")
        event = await eve.edit_message(own, "eve's own, edited")
        before = node.store.state_digest
        # another pair's one-to-one, a room one was removed from, ids that are
        # none, an event's id: all alike, NO_SUCH_MESSAGE (nothing says which exist)
        for mid in (theirs, in_club, eves, 0, -1, 2**31 - 1, event, event + 1000):
            for call in (
                eve.edit_message(mid, "pwned"),
                eve.delete_message(mid),
                eve.react(mid, THUMBS),
                eve.unreact(mid, THUMBS),
            ):
                with pytest.raises(NoSuchMessage) as info:
                    await call
                assert info.value.message == "no such message", mid
            if mid:  # (0: a message that answers none)
                with pytest.raises(NoSuchMessage):
                    await eve.send("ann", "a reply", reply_to=mid)
        with pytest.raises(NotAMember):  # (room names are not secret: rooms.py)
            await eve.send("", "x", room="club", reply_to=in_club)
        # a message one may read but not change
        with pytest.raises(NotAllowed):
            await ann.edit_message(own, "ann rewrites eve")
        with pytest.raises(NotAllowed):
            await ann.delete_message(own)
        # what is no reaction, a body over the limit, a reply in another conversation
        for emoji in ("x", "", "\N{PILE OF POO}", THUMBS * 2, "a" * 1024):
            with pytest.raises(InvalidReaction):
                await ann.react(own, emoji)
        with pytest.raises(InvalidMessage):
            await eve.edit_message(own, "x" * 4097)
        with pytest.raises(InvalidMessage):
            await eve.edit_message(own, "")
        with pytest.raises(NoSuchMessage):
            await bob.send("ann", "elsewhere", reply_to=own)  # eve and ann's
        assert node.store.state_digest == before
        # at most MAX_REACTIONS distinct reactions of one user on a message
        for emoji in REACTIONS[:MAX_REACTIONS]:
            await ann.react(own, emoji)
        with pytest.raises(InvalidReaction):
            await ann.react(own, REACTIONS[MAX_REACTIONS])
        # a deleted message takes nothing more
        await eve.delete_message(own)
        for call in (
            eve.edit_message(own, "back"),
            eve.delete_message(own),
            ann.react(own, THUMBS),
        ):
            with pytest.raises(NoSuchMessage):
                await call
    finally:
        for c in (ann, bob, eve):
            await c.close()


async def test_an_edit_after_the_window_is_refused(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "n", edit_window=0.5))
    await node.start()
    try:
        ann = await logged_in(node.address, "ann")
        mid = await ann.send("ann", "note to self")
        await ann.edit_message(mid, "within the window")
        await asyncio.sleep(0.6)
        with pytest.raises(EditWindowPassed):
            await ann.edit_message(mid, "too late")
        await ann.react(mid, THUMBS)  # reactions and deletions have no window
        await ann.delete_message(mid)
        await ann.close()
    finally:
        await node.stop()


async def test_edits_count_against_the_send_rate(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "n", send_rate=1.0, send_burst=3))
    await node.start()
    try:
        ann = await logged_in(node.address, "ann")
        mid = await ann.send("ann", "one")
        await ann.edit_message(mid, "two")
        await ann.react(mid, THUMBS)
        async with grpc.aio.insecure_channel(node.address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            request = chat_pb2.ReactRequest(session_id=ann.session_id, message_id=mid, emoji=EYES)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.React(request)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await ann.close()
    finally:
        await node.stop()


async def test_events_reach_streams_on_the_master_and_a_slave_and_survive_a_master_kill(
    tmp_path: Path,
) -> None:
    """ann's stream at the master, bob's at a slave: each sees every event
    of their conversation once; an edit and a reaction acknowledged before
    the master is killed -9 are in the history after, once, and reach the
    streams, which fail over."""
    cluster = await asyncio.to_thread(Cluster.start, tmp_path)
    clients: list[ChatClient] = []
    raws: list[Raw] = []
    try:
        master = await asyncio.to_thread(cluster.master)
        slave = next(n for n in cluster.addresses if n != master)
        addresses = list(cluster.addresses.values())
        ann = await logged_in(addresses, "ann")
        bob = await logged_in(addresses, "bob")
        clients += [ann, bob]
        mid = await ann.send("bob", "before")
        raws += [
            Raw(cluster.addresses[str(master)], ann.session_id or ""),
            Raw(cluster.addresses[slave], bob.session_id or ""),
        ]
        streams = [await raws[0].subscribe(events=True), await raws[1].connect(events=True)]
        edit = await ann.edit_message(mid, "edited")
        # a unary call at the slave is relayed to the master
        request = chat_pb2.ReactRequest(session_id=bob.session_id, message_id=mid, emoji=THUMBS)
        answer = await raws[1].stub.React(request)
        assert answer.error_code == 0
        react = answer.message_id
        events = [(edit, Kind.EDIT), (react, Kind.REACT)]
        # (ann sent the message: her stream has its events only)
        assert [(m.message_id, m.kind) for m in await take(streams[0], 2)] == events
        got = await take(streams[1], 3)
        assert [(m.message_id, m.kind) for m in got] == [(mid, Kind.MESSAGE), *events]
        # the library's own streams, across the kill
        ann_seen: list[Message] = []

        async def follow() -> None:
            async for m in ann.subscribe():
                ann_seen.append(m)

        task = asyncio.create_task(follow())
        await eventually_async(lambda: len(ann_seen), "ann's backlog", until=lambda n: n == 2)
        edit2 = await ann.edit_message(mid, "edited again")
        react2 = await bob.react(mid, EYES)
        cluster.kill(str(master))
        after = await bob.react(mid, HEART)  # the new master's
        await eventually_async(
            lambda: len(ann_seen), "ann's events", until=lambda n: n >= 5, timeout=60
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert [m.id for m in ann_seen] == [edit, react, edit2, react2, after]
        [m] = await ann.get_chat("bob")
        assert (m.body, m.edited) == ("edited again", True)
        assert m.reactions == ((THUMBS, ("bob",)), (EYES, ("bob",)), (HEART, ("bob",)))
    finally:
        for raw in raws:
            with contextlib.suppress(Exception):
                await raw.close()
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        cluster.stop_all()


def test_applied_brings_a_message_up_to_date() -> None:
    when = datetime.now(UTC)
    m = Message(7, "ann", "bob", "helo", when)

    def event(eid: int, kind: str, who: str, body: str, target: int = 7) -> Message:
        return Message(eid, who, "bob", body, when, kind=kind, target_id=target)

    m = applied(m, event(8, EDIT, "ann", "hello"))
    m = applied(m, event(9, REACT, "bob", THUMBS))
    m = applied(m, event(10, REACT, "ann", THUMBS))
    m = applied(m, event(11, REACT, "bob", EYES))
    m = applied(m, event(12, UNREACT, "bob", THUMBS))
    m = applied(m, event(13, EDIT, "ann", "not this one", target=6))
    assert (m.body, m.edited, m.reactions) == (
        "hello",
        True,
        ((THUMBS, ("ann",)), (EYES, ("bob",))),
    )
    m = applied(m, event(14, DELETE, "ann", ""))
    assert (m.body, m.deleted, m.reactions) == ("", True, ())


def test_a_store_of_the_previous_schema_migrates_and_takes_edits(tmp_path: Path) -> None:
    """The oldest fixture's store (and so one of schema 2, which it passes
    through) opens at the new version with the new tables, empty: its
    state digest is the one of its old tables alone; then an edit applies."""
    from chatd.proto import log_pb2
    from chatd.server.storage import schema, statedigest
    from tests.test_upgrade import copy_of

    path, _ = copy_of("4e557bd", tmp_path / "d")
    store = Store(path)
    try:
        assert schema.version_of(store.db) == len(schema.migrations(""))
        digest = store.state_digest
        [[mid, sender]] = store.db.execute(
            "SELECT id, sender FROM messages WHERE sender = 'alice' ORDER BY id DESC LIMIT 1"
        ).fetchall()
        last = store.last_message_id
    finally:
        store.close()
    old = sqlite3.connect(tmp_path / "old.sqlite3")
    copy = sqlite3.connect(path)
    copy.backup(old)
    copy.close()
    for table in ("message_events", "message_state", "reactions"):
        old.execute(f"DROP TABLE {table}")
    assert statedigest.to_bytes(statedigest.scan(old)) == digest  # (empty tables: no rows)
    old.close()
    store = Store(path)
    try:
        op = log_pb2.EditMessage(actor=sender, message_id=mid, body="edited after the upgrade")
        entry = log_pb2.Entry(time_us=store.last_time_us + 1, edit_message=op)
        store.begin()
        out = store.append(entry, entry.SerializeToString(), store.last_epoch or 1)
        store.commit()
        assert out.code == 0 and out.message_id == last + 1
        assert store.last_message_id == last + 1
    finally:
        store.close()
    again = Store(path)  # a reopened store goes on after the event's id
    try:
        assert again.last_message_id == last + 1
    finally:
        again.close()


async def test_a_page_edits_reacts_deletes_and_its_stream_sees_the_events(tmp_path: Path) -> None:
    """The web gateway's calls are the client service's: the new RPCs
    through a page, and its session stream opened with events."""
    import aiohttp

    from tests.test_web_gateway import page, started

    node = await started(tmp_path / "n1")
    try:
        async with aiohttp.ClientSession() as http:
            a, b = await page(http, node), await page(http, node)
            ann, bob = await a.user("ann"), await b.user("bob")
            await b.ws.send_json({"id": 5, "connect": {"session_id": bob, "events": True}})
            assert "opened" in await b.read()
            sent = await a.call("Send", session_id=ann, to="bob", message="helo")
            mid = sent["response"]["message_id"]
            # (every call through a: b's socket reads its stream only)
            reply = await a.call("Send", session_id=bob, to="ann", message="hi", reply_to=mid)
            assert reply["response"]["error_code"] == 0
            calls = [
                ("EditMessage", {"session_id": ann, "message_id": mid, "message": "hello"}),
                ("React", {"session_id": bob, "message_id": mid, "emoji": THUMBS}),
                ("DeleteMessage", {"session_id": ann, "message_id": mid}),
            ]
            ids = []
            for name, request in calls:
                r = await a.call(name, **request)
                assert r["response"]["error_code"] == 0, r
                ids.append(r["response"]["message_id"])
            got = [(await b.read())["frame"]["message"] for _ in range(4)]
            assert [(m["message_id"], m["kind"], m["target_id"]) for m in got] == [
                (mid, "MESSAGE", 0),
                (ids[0], "EDIT", mid),
                (ids[1], "REACT", mid),
                (ids[2], "DELETE", mid),
            ]
            assert got[1]["message"] == "hello" and got[2]["message"] == THUMBS
            history = await a.call("GetChat", session_id=bob, username="ann")
            first, answer = history["response"]["message"]
            assert first["deleted"] and first["message"] == "" and answer["reply_to"] == mid
            refused = await a.call("EditMessage", session_id=ann, message_id=mid, message="x")
            assert refused["response"]["error_code"] == 27  # NO_SUCH_MESSAGE: deleted
    finally:
        await node.stop()


PROTOCOL_3 = "c171ec8"  # the newest chatd of protocol 3


def test_while_a_member_speaks_3_edits_and_replies_are_refused(tmp_path: Path) -> None:
    """n1 of c171ec8 founds the cluster (protocol 3); n2 and n3 of this
    chatd join and, n1 stopped, one of them becomes the master; n1 comes
    back, still old. While it is a member, an edit, a deletion, a reaction
    and a reply answer UNAVAILABLE ("being upgraded"), and a plain message
    goes through; once n1 is upgraded the cluster speaks 4, and they work."""
    import os
    import signal

    from chatd.client import Unavailable
    from chatd.tools.localcluster import PASSWORD, NodeProcess, free_port
    from tests.test_upgrade import SECRET, old_code

    code = old_code(tmp_path / "old", PROTOCOL_3)
    if code is None:
        pytest.skip(f"commit {PROTOCOL_3} is not in this clone's history")
    c = Cluster(tmp_path, SECRET)
    old_env = dict(os.environ, PYTHONPATH=str(code), CHATD_CLUSTER_SECRET=SECRET)
    new_env = dict(os.environ, CHATD_CLUSTER_SECRET=SECRET)
    names = ("n1", "n2", "n3")
    listen = {n: (f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}") for n in names}

    def start(name: str, old: bool, *extra: str) -> None:
        node = NodeProcess.serve(
            tmp_path,
            name,
            *listen[name],
            "--password-hash-cost",
            "8",
            *extra,
            env=old_env if old else new_env,
        )
        node.cwd = code if old else None
        c.nodes[name] = node.start()
        c.addresses[name], c.peers[name] = listen[name]

    def upgraded_to(version: int) -> bool:
        line = f"the cluster speaks protocol {version} now"
        return any(line in c.nodes[n].log() for n in ("n2", "n3"))

    async def one_write() -> None:
        async with ChatClient([c.addresses["n1"]]) as zed:
            await zed.create_account("zed", PASSWORD)

    try:
        start("n1", True, "--role", "master")
        c.wait_role("n1", "master")
        for name in ("n2", "n3"):
            start(name, False, "--join", listen["n1"][1])
        c.wait(lambda: c.in_sync_count() == 3, "3 nodes in sync")
        asyncio.run(one_write())  # (its commit tells n2 and n3 they are in sync)
        c.converged()
        c.nodes["n1"].kill(signal.SIGTERM)
        c.wait(lambda: c.master() in ("n2", "n3"), "a new master", 30)
        start("n1", True)  # back from its data dir, still of protocol 3
        refusal = "node n1 speaks protocol 3 and its master 4: it applies nothing"
        c.wait(lambda: refusal in c.nodes["n1"].log(), "old n1 refusing the new master", 30)

        async def while_old() -> int:
            address = [c.addresses[str(c.master())]]
            async with ChatClient(address, retry_for=1.0) as ann:
                await ann.create_account("ann", PASSWORD)
                await ann.login("ann", PASSWORD)
                mid = await ann.send("zed", "a plain message goes through")
                for call in (
                    ann.edit_message(mid, "edited"),
                    ann.react(mid, THUMBS),
                    ann.delete_message(mid),
                ):
                    with pytest.raises(Unavailable) as info:
                        await call
                    assert "the cluster is being upgraded" in info.value.message
                # (a send on the Connect stream is tried again until the
                # client's retry time: its UNAVAILABLE result leaves it waiting)
                with pytest.raises(Unavailable):
                    await ann.send("zed", "a reply", reply_to=mid)
                [m] = await ann.get_chat("zed")
                assert (m.body, m.edited, m.reactions) == (
                    "a plain message goes through",
                    False,
                    (),
                )
                return mid

        mid = asyncio.run(while_old())
        assert not upgraded_to(4)
        c.converged(["n2", "n3"])
        c.nodes["n1"].kill(signal.SIGTERM)
        start("n1", False)
        c.wait(lambda: upgraded_to(4), "the cluster at protocol 4", 30)

        async def upgraded() -> None:
            async with ChatClient(list(c.addresses.values())) as ann:
                await ann.login("ann", PASSWORD)
                await ann.edit_message(mid, "edited")
                await ann.react(mid, THUMBS)
                await ann.send("zed", "a reply", reply_to=mid)
                first, reply = await ann.get_chat("zed")
                assert (first.body, first.edited, first.reactions) == (
                    "edited",
                    True,
                    ((THUMBS, ("ann",)),),
                )
                assert reply.reply_to == mid

        asyncio.run(upgraded())
        c.converged()
    finally:
        c.stop_all()
