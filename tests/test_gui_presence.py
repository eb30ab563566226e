"""The GUI's typing line, "Seen" line, "Share read receipts" box and search
window (Ctrl+F), through a real node (a child process), the others at the
client library: bob's typing shows under the conversation until his
message comes; hers reaches bob; "Seen" once bob read her last message;
with the box cleared bob sees no receipt of hers; a search finds in her
one-to-one conversation and her room, never in bob and carol's, and a
result opens its conversation at the message (older pages loaded)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatd.client import ChatClient, Typing
from chatd.client.conversation import Peer
from chatd.client.gui import ChatApp, LoopThread
from tests.conftest import PASSWORD, NodeProcess, wait_serving
from tests.test_gui import WAIT, contact, loop_thread, pump, screenshot, submit_form
from tests.test_gui_edits import enter, line_of

__all__ = ["loop_thread"]  # (the fixture, imported for this module's tests)
SETUP_WAIT = 60.0  # seconds for the 60 messages before (a loaded machine is slow)
TYPING = "bob is typing\N{HORIZONTAL ELLIPSIS}"


def test_typing_seen_share_and_search_in_the_gui(
    xvfb: str,
    spawn_node: Callable[..., NodeProcess],
    loop_thread: LoopThread,
    tmp_path: Path,
) -> None:
    node = spawn_node("n1")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)

    async def setup() -> tuple[ChatClient, int, int, int]:
        bob = ChatClient([address])
        for name in ("alice", "bob", "carol"):
            await bob.create_account(name, PASSWORD)
        async with ChatClient([address]) as alice, ChatClient([address]) as carol:
            await alice.login("alice", PASSWORD)
            await carol.login("carol", PASSWORD)
            await alice.create_room("team")
            await alice.invite("team", "bob")
            await bob.login("bob", PASSWORD)
            await bob.join_room("team")
            old = await bob.send("alice", "the old report")
            # (the old one beyond the first page, 50; at once: the test stays short)
            fillers = await asyncio.gather(*(bob.send("alice", f"filler {i}") for i in range(55)))
            in_room = await bob.send("", "the report draft", room="team")
            await carol.send("bob", "carol's report")  # (not alice's to find)
        return bob, old, in_room, max(fillers)

    bob, old, in_room, newest = loop_thread.submit(setup()).result(SETUP_WAIT)
    bob_got: list[Any] = []

    async def bob_reads() -> None:
        async for m in bob.inbox():
            bob_got.append(m)

    async def bob_events() -> None:
        async for e in bob.events():
            bob_got.append(e)

    tasks = [loop_thread.submit(bob_reads()), loop_thread.submit(bob_events())]
    app = ChatApp(address, refresh_ms=300)
    try:
        submit_form(app, "alice", PASSWORD)
        pump(app, lambda: app.me == "alice", "alice logged in")
        # (the unread ones delivered first: the conversation then opens on its newest page)
        pump(app, lambda: contact(app, "bob")[1] == "56", "bob's messages unread")
        app.open_conversation(Peer("bob"))
        pump(app, lambda: newest in app.history, "the newest page")
        assert old not in app.history

        # bob types: the line under the conversation, until his message
        def bob_typing() -> bool:
            loop_thread.submit(bob.typing(peer="alice")).result(WAIT)
            return app.typing_var.get() == TYPING

        pump(app, bob_typing, "bob's typing shown")
        loop_thread.submit(bob.send("alice", "here it is")).result(WAIT)
        pump(app, lambda: "bob: here it is" in app.conversation.get("1.0", "end"), "his message")
        assert app.typing_var.get() == ""
        # she types a message: bob is told
        app.input.focus_force()
        app.input.insert(0, "did you")
        app.root.update()
        app.input.event_generate("<KeyRelease>", keysym="u")
        pump(app, lambda: any(isinstance(e, Typing) for e in bob_got), "bob told she types")
        assert next((e.sender, e.peer) for e in bob_got if isinstance(e, Typing)) == (
            "alice",
            "bob",
        )
        # "Seen" once bob read her last message
        enter(app, "did you read it?")
        pump(
            app, lambda: any(getattr(m, "body", "") == "did you read it?" for m in bob_got), "sent"
        )
        mid = next(m.id for m in bob_got if getattr(m, "body", "") == "did you read it?")
        assert app.seen_var.get() == ""
        loop_thread.submit(bob.mark_read(mid, peer="alice")).result(WAIT)
        pump(app, lambda: app.seen_var.get() == "Seen", "Seen")

        # she read his messages (the conversation shown): bob sees it; cleared, not
        def bob_sees_hers() -> bool:
            return bool(loop_thread.submit(bob.list_receipts(peer="alice")).result(WAIT))

        pump(app, bob_sees_hers, "her receipt, shared")
        app.share_box.invoke()
        assert not app.share_var.get()
        pump(app, lambda: not bob_sees_hers(), "no receipt of hers once cleared")
        pump(app, lambda: app.seen_var.get() == "", "nor his for her")
        # Ctrl+F: all her conversations; never bob and carol's
        app.input.focus_force()
        app.root.update()
        app.input.event_generate("<Control-f>")
        pump(app, lambda: app.search_window is not None, "the search window")
        window = app.search_window
        window.entry.insert(0, "report")
        window.entry.event_generate("<Return>")
        pump(app, lambda: len(window.found) == 2, "two found")
        assert sorted(window.found) == sorted([old, in_room])
        rows = [window.results.item(i, "values") for i in window.results.get_children()]
        assert [(r[1], r[2], r[3]) for r in rows] == [
            ("#team", "bob", "the report draft"),
            ("bob", "bob", "the old report"),
        ]
        screenshot(app, xvfb, tmp_path / "search.png")
        window.entry.delete(0, "end")
        window.entry.insert(0, "#team report")
        window.search()
        pump(app, lambda: sorted(window.found) == [in_room], "in the room only")
        window.entry.delete(0, "end")
        window.entry.insert(0, "report")
        window.search()
        pump(app, lambda: len(window.found) == 2, "two again")
        # Enter on a result: its conversation, at it (an older page loaded)
        window.results.selection_set(str(old))
        window.results.focus_force()
        app.root.update()
        window.results.event_generate("<Return>")
        pump(app, lambda: app.view.selected == old, "the old report selected")
        assert app.peer == Peer("bob") and "bob: the old report" in line_of(app, old)
    finally:
        app.close()
        for task in tasks:
            task.cancel()
        loop_thread.submit(bob.close()).result(WAIT)
