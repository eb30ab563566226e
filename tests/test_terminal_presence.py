"""The terminal client's typing notices, read receipts and search: a person
at a terminal (prompt_toolkit reading a pipe, in this process) and others
at the client library, through a real node: "bob is typing…" on the
prompt's right until it expires or bob's message comes, "seen by bob" once
bob read past my message, /seen, /receipts off (then bob sees no receipt
of mine), /search across my conversations and in one (never another
pair's), /more, /find."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatd.client import ChatClient, Receipt, Typing
from chatd.client import presence as client_presence
from chatd.client.notices import Seen
from chatd.client.terminal import ChatCompleter
from chatd.server.chat import presence as node_presence
from chatd.server.node import Node
from tests.conftest import PASSWORD
from tests.test_terminal_edits import accounts, terminals
from tests.waiting import eventually_async

TYPING = "bob is typing\N{HORIZONTAL ELLIPSIS}"


@contextlib.asynccontextmanager
async def reading(address: str, name: str) -> AsyncIterator[tuple[ChatClient, list[Any]]]:
    """`name` at the client library, its inbox and events read (what came
    in the list): its stream open, as typing needs."""
    c = ChatClient([address])
    got: list[Any] = []

    async def read() -> None:
        async for m in c.inbox():
            got.append(m)

    async def events() -> None:
        async for e in c.events():
            got.append(e)

    await c.login(name, PASSWORD)
    tasks = [asyncio.create_task(read()), asyncio.create_task(events())]
    try:
        yield c, got
    finally:
        for task in tasks:
            task.cancel()
        await c.close()


async def test_typing_shows_on_the_prompt_until_it_expires_or_the_message_comes(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_presence, "TYPING_EXPIRES_MS", 1500)
    monkeypatch.setattr(node_presence, "TYPING_EVERY_S", 0.0)
    monkeypatch.setattr(client_presence, "TYPING_EVERY_S", 0.0)
    await accounts(node.address, "ann", "bob")
    async with reading(node.address, "bob") as (bob, got), terminals(node.address, "ann") as (ann,):
        ann.type("/chat bob")
        await ann.shows("talking to bob")
        line = ann.terminal.typing_line

        async def bob_types() -> None:
            async def shown() -> bool:
                await bob.typing(peer="ann")  # (False until bob's stream is open)
                await asyncio.sleep(0.05)
                return bool(line() == TYPING)

            await eventually_async(shown, "bob's typing on ann's prompt")

        await bob_types()
        await eventually_async(lambda: line() == "", "the notice expired", timeout=5)
        # bob's message ends it at once
        await bob_types()
        await bob.send("ann", "here it is")
        await ann.shows(r"^\d+ \[\d\d:\d\d\] bob: here it is$")
        assert line() == ""
        # ann types: a command tells bob nothing, a message line does
        ann.type("/seen")
        await ann.shows("no read receipts in bob")
        await asyncio.sleep(0.3)
        assert not any(isinstance(e, Typing) for e in got)  # (a /command is no message)
        ann.pipe.send_text("on my way")  # (no Enter yet)
        await eventually_async(lambda: any(isinstance(e, Typing) for e in got), "bob told")
        typed = [(e.sender, e.peer, e.room) for e in got if isinstance(e, Typing)]
        assert typed[0] == ("ann", "bob", "")
        ann.type("")
        await ann.shows(r"you: on my way$")


async def test_seen_by_a_reader_and_no_receipts_once_off(node: Node) -> None:
    await accounts(node.address, "ann", "bob")
    async with (
        reading(node.address, "bob") as (bob, got),
        reading(node.address, "ann") as (ann_elsewhere, _),
        terminals(node.address, "ann") as (ann,),
    ):
        ann.type("/chat bob")
        await ann.shows("talking to bob")
        ann.type("did you read it?")
        mid = int((await ann.shows(r"^(\d+) .*you: did you read it\?$"))[1])
        await eventually_async(lambda: any(getattr(m, "id", 0) == mid for m in got), "delivered")
        await bob.mark_read(mid, peer="ann")
        await ann.shows("^  seen by bob$")
        ann.type("/seen")
        await ann.shows(rf"^  bob +read up to message {mid} \(your last message too\)$")
        # off: ann's reading tells bob nothing
        ann.type("/receipts off")
        await ann.shows("read receipts off")
        ann.type("/receipts")  # (as the node has it)
        await ann.shows(r"^read receipts off \(/receipts on\|off\)$")
        assert await bob.shares_receipts() and not await ann_elsewhere.shares_receipts()
        later = await bob.send("ann", "yes, and this?")
        await ann.shows(r"bob: yes, and this\?$")  # (on screen: ann's terminal marks it read)

        async def ann_read() -> bool:
            return all(u.peer != "bob" for u in await ann_elsewhere.unread())

        await eventually_async(ann_read, "ann's read marker moved")
        assert await bob.list_receipts(peer="ann") == []
        assert not any(isinstance(e, Receipt) for e in got)
        ann.type("/seen")
        await ann.shows("no read receipts in bob: the others share none, or you do not")
        # on again: bob sees how far she read
        ann.type("/receipts on")
        await ann.shows("read receipts on")
        assert await bob.list_receipts(peer="ann") == [Receipt("ann", later, "ann", "")]


async def test_search_finds_in_my_conversations_only_and_pages(node: Node) -> None:
    await accounts(node.address, "ann", "bob", "carol")
    async with ChatClient([node.address]) as a, ChatClient([node.address]) as b:
        await a.login("ann", PASSWORD)
        await b.login("bob", PASSWORD)
        await a.create_room("team")
        await a.invite("team", "bob")
        await b.join_room("team")
        in_room = await b.send("", "the report draft, in the room", room="team")
        ones = [await b.send("ann", f"report number {i}") for i in range(20)]
        await b.send("carol", "the report carol keeps")  # (not ann's conversation)
    async with terminals(node.address, "ann") as (ann,):
        await ann.shows("unread: bob \\(20\\), #team \\(1\\)")
        ann.type("/search report")
        newest = await ann.shows(r"^(\d+) \[\d\d:\d\d\] \(bob\) bob: report number 19$")
        assert int(newest[1]) == ones[-1]
        await ann.shows("^/more: older results$")
        found = [line for line in ann.lines if "] (" in line]  # (results, not deliveries)
        assert len(found) == 20 and all("] (bob) bob: report number" in f for f in found)
        ann.type("/more")
        await ann.shows(rf"^{in_room} \[\d\d:\d\d\] \(#team\) bob: the report draft, in the room$")
        ann.type("/more")
        await ann.shows("no more results: /search WORDS first")
        assert "carol" not in " ".join(ann.lines)
        # narrowed to one conversation
        ann.type("/search #team rep")
        await ann.shows(rf"^{in_room} .*\(#team\) bob: the report draft")
        ann.type("/search @bob draft")
        await ann.shows('nothing found for "draft" with bob')
        ann.type("/search @carol report")
        await ann.shows('nothing found for "report" with carol')
        ann.type("/search #elsewhere report")
        await ann.shows("room does not exist")
        ann.type("/search ...")
        await ann.shows("word")
        ann.type("/find ca")
        await ann.shows("^  carol +offline$")


def test_completion_of_search_places_and_receipts() -> None:
    completer = ChatCompleter(lambda: ("bob", "carol"), rooms=lambda: ("team",))

    def offered(text: str) -> list[str]:
        from prompt_toolkit.document import Document

        return [c.text for c in completer.get_completions(Document(text), None)]

    assert offered("/search #") == ["#team"]
    assert offered("/search @c") == ["@carol"]
    assert offered("/receipts o") == ["on", "off"]
    assert offered("/se") == ["/send", "/send-file", "/seen", "/search"]


def test_seen_tells_each_reader_of_a_pair_once_and_a_rooms_first_reader_only() -> None:
    seen = Seen()
    assert not seen.passed(Receipt("bob", 9, "ann"), 10)  # (not past my message 10)
    assert seen.passed(Receipt("bob", 10, "ann"), 10)
    assert not seen.passed(Receipt("bob", 12, "ann"), 10)  # (told already)
    assert seen.passed(Receipt("bob", 12, "ann"), 11)  # (my next message)
    assert seen.passed(Receipt("bob", 20, room="team"), 15)
    assert not seen.passed(Receipt("carol", 20, room="team"), 15)  # (/seen lists the others)
    assert not seen.passed(Receipt("bob", 20, "ann"), 0)  # (no message of mine there)
