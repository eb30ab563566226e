"""The GUI's message menu (right-click, or the Menu key / Shift+F10 on the
selected message): Reply, Edit, Delete and React, through a real node (a
child process), the other party (a `ChatClient`) seeing each change on
their stream, the other party's changes redrawn in place, the history after
the GUI starts again showing the same, and the node's refusals said."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from chatd.client import ChatClient, Message
from chatd.client.conversation import InRoom, Peer
from chatd.client.gui import ChatApp, LoopThread
from chatd.client.gui_messages import tag_of
from chatd.client.model import DELETE, EDIT, REACT, UNREACT
from chatd.contract import MAX_REACTIONS, REACTIONS
from tests.conftest import PASSWORD, NodeProcess, wait_serving
from tests.test_gui import WAIT, conversation, loop_thread, pump, screenshot, submit_form

__all__ = ["loop_thread"]  # (the fixture, imported for this module's tests)
THUMBS, HEART = REACTIONS[0], REACTIONS[1]
EDIT_WINDOW = 2.0  # seconds: the node's --edit-window (each edit below comes well within)


def menu_for(app: ChatApp, message_id: int, *, keyboard: bool = False) -> dict[str, str]:
    """Opens message `message_id`'s menu as a person would (a right-click on
    it, or a click then Shift+F10); its entries' states by label."""
    text = app.conversation
    text.see(text.tag_ranges(tag_of(message_id))[-1])
    app.root.update()
    box = text.bbox(text.tag_ranges(tag_of(message_id))[0])
    assert box is not None
    x, y, _, height = box
    if keyboard:
        text.event_generate("<Button-1>", x=x + 30, y=y + height // 2)
        text.focus_force()
        app.root.update()
        text.event_generate("<Shift-F10>")
    else:
        text.event_generate("<Button-3>", x=x + 30, y=y + height // 2)
    pump(app, lambda: app.menu_message == message_id, f"the menu of {message_id}")
    menu = app.message_menu
    return {
        str(menu.entrycget(i, "label")): str(menu.entrycget(i, "state"))
        for i in range(int(menu.index("end") or 0) + 1)
    }


def choose(app: ChatApp, label: str) -> None:
    app.message_menu.unpost()
    app.message_menu.invoke(label)
    app.root.update()


def react(app: ChatApp, message_id: int, emoji: str) -> None:
    menu_for(app, message_id)
    react_menu = app.react_menu
    labels = [str(react_menu.entrycget(i, "label")) for i in range(len(REACTIONS))]
    app.message_menu.unpost()
    react_menu.invoke(next(i for i, label in enumerate(labels) if label.startswith(emoji)))


def enter(app: ChatApp, text: str | None = None) -> None:
    if text is not None:
        app.input.delete(0, "end")
        app.input.insert(0, text)
    app.input.focus_force()
    app.root.update()
    app.input.event_generate("<Return>")


def line_of(app: ChatApp, message_id: int) -> str:
    """What the message list shows of one message."""
    ranges = app.conversation.tag_ranges(tag_of(message_id))
    return str(app.conversation.get(ranges[0], ranges[-1])) if ranges else ""


def test_the_message_menu_reply_edit_react_delete(
    xvfb: str,
    spawn_node: Callable[..., NodeProcess],
    loop_thread: LoopThread,
    tmp_path: Path,
) -> None:
    node = spawn_node("n1", "--edit-window", f"{EDIT_WINDOW:g}s")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)

    async def setup() -> tuple[ChatClient, int]:
        bob = ChatClient([address])
        for name in ("alice", "bob"):
            await bob.create_account(name, PASSWORD)
        async with ChatClient([address]) as alice:
            await alice.login("alice", PASSWORD)
            old = await alice.send("bob", "an old note")  # (past the window, later)
            await alice.create_room("team")
            await alice.invite("team", "bob")
        await bob.login("bob", PASSWORD)
        await bob.join_room("team")
        return bob, old

    bob, old = loop_thread.submit(setup()).result(WAIT)
    sent_old = time.monotonic()  # (after the node stamped it)
    bob_got: list[Message] = []

    async def bob_receives() -> None:
        async for m in bob.inbox():
            bob_got.append(m)

    def bob_sees(kind: str, target: int, body: str = "") -> Callable[[], bool]:
        """Whether bob's stream brought alice's event."""
        done = (kind, target, body, "alice")
        return lambda: any((m.kind, m.target_id, m.body, m.sender) == done for m in bob_got)

    inbox = loop_thread.submit(bob_receives())
    app = ChatApp(address, refresh_ms=300)
    try:
        submit_form(app, "alice", PASSWORD)
        pump(app, lambda: app.me == "alice", "alice logged in")
        pump(app, lambda: app.contacts.exists("bob"), "bob in the contacts")
        app.open_conversation(Peer("bob"))
        pump(app, lambda: "you: an old note" in conversation(app), "the conversation")
        # (every message edited below is new: well within the edit window)
        first = loop_thread.submit(bob.send("alice", "helo alice")).result(WAIT)
        pump(app, lambda: "bob: helo alice" in conversation(app), "bob's message, live")
        # bob's message: Reply and React; not hers to edit or delete
        entries = menu_for(app, first)
        assert entries == {
            "Reply": "normal",
            "Edit": "disabled",
            "Delete": "disabled",
            "React": "normal",
        }
        choose(app, "Reply")
        assert app.compose_var.get() == "Replying to bob: helo alice"
        assert app.compose_bar.winfo_ismapped()
        enter(app, "hi bob")
        pump(app, lambda: any(m.body == "hi bob" for m in bob_got), "bob gets the reply")
        [reply] = [m for m in bob_got if m.body == "hi bob"]
        assert reply.reply_to == first
        assert not app.compose_bar.winfo_ismapped()
        pump(app, lambda: "↪ bob: helo alice\n" in line_of(app, reply.id), "the quote line")
        # her own, with the keyboard: Edit puts its text in the input box
        entries = menu_for(app, reply.id, keyboard=True)
        assert entries["Edit"] == entries["Delete"] == "normal"
        choose(app, "Edit")
        assert app.input.get() == "hi bob"
        assert app.compose_var.get().startswith("Editing your message")
        enter(app, "hi bob!")
        pump(app, bob_sees(EDIT, reply.id, "hi bob!"), "bob sees the edit")
        pump(app, lambda: "you: hi bob! (edited)\n" in line_of(app, reply.id), "edited here")
        # bob edits his: redrawn in place, and the quote of it in her reply
        loop_thread.submit(bob.edit_message(first, "hello alice")).result(WAIT)
        pump(app, lambda: "bob: hello alice (edited)\n" in line_of(app, first), "bob's edit")
        pump(app, lambda: "↪ bob: hello alice\n" in line_of(app, reply.id), "the quote, too")
        # reactions: hers from the menu, bob's live; the same entry takes hers back
        react(app, first, THUMBS)
        pump(app, bob_sees(REACT, first, THUMBS), "bob sees her 👍")
        loop_thread.submit(bob.react(first, HEART)).result(WAIT)
        pump(app, lambda: f"{THUMBS} 1   {HEART} 1\n" in line_of(app, first), "both reactions")
        react(app, first, THUMBS)
        pump(app, bob_sees(UNREACT, first, THUMBS), "bob sees it taken back")
        pump(app, lambda: line_of(app, first).endswith(f"  {HEART} 1\n"), "her 👍 gone")
        # the node's refusal, in its words: a fourth reaction of hers
        for emoji in REACTIONS[1 : MAX_REACTIONS + 1]:
            react(app, first, emoji)
            pump(app, bob_sees(REACT, first, emoji), f"her {emoji}")
        react(app, first, REACTIONS[MAX_REACTIONS + 1])
        refused = "cannot react to that message: not an allowed reaction"
        pump(app, lambda: app.notice_var.get().startswith(refused), "a reaction refused")
        shown_live = line_of(app, first)
        screenshot(app, xvfb, tmp_path / "reactions.png")
        # Delete asks first
        menu_for(app, reply.id)
        choose(app, "Delete")
        pump(app, lambda: app.delete_window.winfo_viewable(), "the question")
        app.delete_confirm.invoke()
        pump(app, bob_sees(DELETE, reply.id), "bob sees the deletion")
        pump(app, lambda: "you: Message deleted\n" in line_of(app, reply.id), "deleted here")
        assert menu_for(app, reply.id) == {
            "Reply": "disabled",
            "Edit": "disabled",
            "Delete": "disabled",
            "React": "disabled",
        }
        app.message_menu.unpost()
        # past the edit window: the node says so
        time.sleep(max(0.0, sent_old + EDIT_WINDOW + 0.2 - time.monotonic()))
        app.open_conversation(Peer("bob"))
        pump(app, lambda: line_of(app, old) != "", "her old note")
        menu_for(app, old)
        choose(app, "Edit")
        enter(app, "an old note, edited")
        late = "cannot edit that message: the message is too old to edit"
        pump(app, lambda: app.notice_var.get() == late, "the edit refused")
        app.compose_cancel.invoke()  # the ✕: the edit given up
        assert app.input.get() == "" and not app.compose_bar.winfo_ismapped()
        # in a room of hers: she may delete bob's message there
        spam = loop_thread.submit(bob.send("", "spam", room="team")).result(WAIT)
        app.open_conversation(InRoom("team"))
        pump(app, lambda: "bob: spam" in line_of(app, spam), "the room")
        pump(app, lambda: app.rooms.get("team") is not None, "her rooms listed")
        entries = menu_for(app, spam)
        assert (entries["Edit"], entries["Delete"]) == ("disabled", "normal")
        choose(app, "Delete")
        pump(app, lambda: app.delete_window.winfo_viewable(), "the question")
        app.delete_confirm.invoke()
        pump(app, bob_sees(DELETE, spam), "bob sees his message deleted")
        pump(app, lambda: "Message deleted" in line_of(app, spam), "deleted in the room")
    finally:
        app.close()
    # the GUI again: the history shows the same
    again = ChatApp(address, refresh_ms=300)
    try:
        submit_form(again, "alice", PASSWORD)
        pump(again, lambda: again.me == "alice", "alice logged in again")
        again.open_conversation(Peer("bob"))
        pump(again, lambda: line_of(again, reply.id) != "", "the history")
        reactions = f"{HEART} 2   {REACTIONS[2]} 1   {REACTIONS[3]} 1"
        assert line_of(again, first).endswith(f"bob: hello alice (edited)\n  {reactions}\n")
        assert line_of(again, first) == shown_live
        assert "↪ bob: hello alice\n" in line_of(again, reply.id)
        assert "you: Message deleted\n" in line_of(again, reply.id)
    finally:
        again.close()
        inbox.cancel()
        loop_thread.submit(bob.close()).result(WAIT)
