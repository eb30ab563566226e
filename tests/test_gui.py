"""The GUI client (`chatd gui`) driven through its widgets on a virtual X
screen (Xvfb), against a real node in a child process, with other users on
separate `ChatClient`s."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pexpect
import pytest

from chatd.cli import build_parser
from chatd.client import ChatClient, Message
from chatd.client.conversation import Peer
from chatd.client.gui import ChatApp, LoopThread, client_options, main
from tests.conftest import PASSWORD, NodeProcess, spawn_chatd, stop_demo, wait_serving
from tests.waiting import eventually

if TYPE_CHECKING:
    import tkinter as tk

WAIT = 10.0  # seconds for any one thing to show


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    """An asyncio loop in a thread for the other users' clients."""
    runner = LoopThread()
    yield runner
    runner.stop()
    assert not runner.thread.is_alive()


def pump(app: ChatApp, until: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Runs Tk's event loop until `until()` holds, at most `timeout` seconds
    (failing with the window's status, form error and notice last seen)."""

    def state() -> object:
        app.root.update()
        if until():
            return True
        return (app.status_var.get(), app.login_error_var.get(), app.notice_var.get())

    eventually(
        state,
        f"{what} (seen: status, form, notice)",
        until=lambda seen: seen is True,
        timeout=timeout,
        interval=0.01,
    )


def shows(var: tk.StringVar, text: str) -> Callable[[], bool]:
    return lambda: var.get() == text


def conversation(app: ChatApp) -> str:
    return app.conversation.get("1.0", "end")


def contact(app: ChatApp, name: str) -> tuple[str, str]:
    """(status, unread) as the contact list shows them."""
    if not app.contacts.exists(name):
        return ("", "")
    return str(app.contacts.set(name, "status")), str(app.contacts.set(name, "unread"))


def screenshot(app: ChatApp, display: str, png: Path) -> None:
    """Saves the window as a PNG (set CHATD_GUI_SHOTS=DIR to keep a copy)."""
    from PIL import ImageGrab

    app.root.update()
    root = app.root
    x, y, width, height = (
        root.winfo_rootx(),
        root.winfo_rooty(),
        root.winfo_width(),
        root.winfo_height(),
    )
    shot = ImageGrab.grab(bbox=(x, y, x + width, y + height), xdisplay=display)
    shot.save(png)
    assert shot.size == (width, height)
    assert png.stat().st_size > 3_000
    assert len(shot.getcolors(maxcolors=width * height) or ()) > 10  # not a blank window
    if os.environ.get("CHATD_GUI_SHOTS"):
        shutil.copy(png, Path(os.environ["CHATD_GUI_SHOTS"]) / png.name)


def submit_form(app: ChatApp, name: str, password: str, button: str = "login") -> None:
    app.username_entry.delete(0, "end")
    app.username_entry.insert(0, name)
    app.password_entry.delete(0, "end")
    app.password_entry.insert(0, password)
    (app.login_button if button == "login" else app.create_button).invoke()


def test_gui(
    xvfb: str,
    spawn_node: Callable[..., NodeProcess],
    loop_thread: LoopThread,
    tmp_path: Path,
) -> None:
    node = spawn_node("n1")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)

    # bob, on his own client, sends 110 messages before alice logs in
    async def setup() -> ChatClient:
        bob = ChatClient([address])
        for name in ("alice", "bob"):
            await bob.create_account(name, PASSWORD)
        await bob.login("bob", PASSWORD)
        for i in range(110):
            await bob.send("alice", f"old {i}")
        return bob

    bob = loop_thread.submit(setup()).result(WAIT)
    bob_got: list[Message] = []

    async def bob_receives() -> None:  # keeps bob online, too
        async for m in bob.inbox():
            bob_got.append(m)

    bob_inbox = loop_thread.submit(bob_receives())
    app = ChatApp(address, refresh_ms=300)
    try:
        assert str(app.password_entry.cget("show")) == "*"
        # the form's errors, one line each
        for name, password, button, error in [
            ("nobody", PASSWORD, "login", "nobody does not exist"),
            ("alice", "wrong password", "login", "incorrect password"),
            ("bob", PASSWORD, "create", "username already exists"),
        ]:
            submit_form(app, name, password, button)
            pump(app, shows(app.login_error_var, error), repr(error))
        screenshot(app, xvfb, tmp_path / "login.png")
        # a new account logs straight in; Log out goes back to the form
        submit_form(app, "carol", PASSWORD, "create")
        pump(app, lambda: app.me == "carol" and app.chat_frame.winfo_ismapped(), "carol in")
        app.logout_button.invoke()
        pump(app, lambda: app.me is None and app.login_frame.winfo_ismapped(), "the form again")

        submit_form(app, "alice", PASSWORD)
        pump(app, lambda: app.me == "alice", "alice logged in")
        pump(app, shows(app.status_var, f"connected to {address}"), "connected")
        # contacts: bob online with 110 unread, carol offline
        pump(app, lambda: contact(app, "bob") == ("● online", "110"), "bob online, 110 unread")
        pump(app, lambda: contact(app, "carol") == ("○ offline", ""), "carol offline")
        assert not app.contacts.exists("alice")

        # bob's conversation: the newest 50; older ones on scrolling to the top,
        # and with the Load older button
        app.contacts.selection_set("bob")
        pump(app, lambda: "bob: old 109\n" in conversation(app), "bob's history")
        assert "old 59\n" not in conversation(app) and contact(app, "bob")[1] == ""
        assert app.conversation.yview()[1] == 1.0  # the newest shown
        app._scrolled("moveto", "0")  # what dragging the scrollbar to the top does
        pump(app, lambda: "bob: old 10\n" in conversation(app), "older history, scrolling")
        assert "old 9\n" not in conversation(app)
        app.older_button.invoke()
        pump(app, lambda: "bob: old 0\n" in conversation(app), "older history, the button")
        assert len(app.history) == 110
        pump(app, lambda: str(app.older_button.cget("state")) == "disabled", "no more history")

        # Enter sends to bob; bob's client gets it
        app.input.focus_force()
        app.input.insert(0, "hello bob")
        app.root.update()
        app.input.event_generate("<Return>")
        pump(app, lambda: any(m.body == "hello bob" for m in bob_got), "bob receiving")
        pump(app, lambda: "you: hello bob" in conversation(app), "alice's own message")
        assert app.input.get() == ""

        # bob answers; it shows live
        loop_thread.submit(bob.send("alice", "hi alice")).result(WAIT)
        pump(app, lambda: "bob: hi alice" in conversation(app), "bob's message, live")

        # carol writes while bob's conversation is shown: an unread count
        async def carol_writes() -> None:
            async with ChatClient([address]) as carol:
                await carol.login("carol", PASSWORD)
                await carol.send("alice", "psst")

        loop_thread.submit(carol_writes()).result(WAIT)
        pump(app, lambda: contact(app, "carol")[1] == "1", "carol's unread count")
        assert "psst" not in conversation(app)

        # read on another device of alice's: the count goes here too
        async def alice_reads_on_her_phone() -> None:
            async with ChatClient([address]) as phone:
                await phone.login("alice", PASSWORD)
                [psst] = await phone.get_chat("carol")
                await phone.mark_read(psst.id, peer="carol")

        loop_thread.submit(alice_reads_on_her_phone()).result(WAIT)
        pump(app, lambda: contact(app, "carol")[1] == "", "read on another device")

        # bob's stream ends: he shows offline
        bob_inbox.cancel()
        pump(app, lambda: contact(app, "bob")[0] == "○ offline", "bob offline")

        # the node dies and comes back: the status bar says so, messages flow again
        statuses: list[str] = []
        app.status_var.trace_add("write", lambda *_: statuses.append(app.status_var.get()))
        node.kill(signal.SIGKILL)
        pump(app, lambda: "connection lost, retrying…" in statuses, "connection lost")
        spawn_node("n1", port=int(address.rsplit(":", 1)[1]))
        pump(app, lambda: f"reconnected to {address}" in statuses, "reconnected", 20)
        loop_thread.submit(bob.send("alice", "still there?")).result(WAIT)
        pump(app, lambda: "bob: still there?" in conversation(app), "a message after restart")
        pump(app, lambda: contact(app, "bob")[0] == "○ offline", "contacts after restart")
        reconnected = f"reconnected to {address}"
        pump(app, shows(app.status_var, reconnected), "settled", 20)

        # Password…: a window with three masked fields; a wrong current
        # password is said there, the right one changes it
        app.password_button.invoke()
        pump(app, lambda: app.password_window.winfo_viewable(), "the password window")
        entries = app.password_entries
        assert all(str(e.cget("show")) == "*" for e in entries)
        for entry, text in zip(
            entries, ("wrong one", "new password 1", "new password 1"), strict=True
        ):
            entry.insert(0, text)
        app.password_submit.invoke()
        pump(app, shows(app.password_error_var, "that is not your current password"), "refused")
        entries[0].delete(0, "end")
        entries[0].insert(0, PASSWORD)
        app.password_submit.invoke()
        done = "password changed; your other sessions have ended"
        pump(app, shows(app.notice_var, done), "password changed")
        assert not app.password_window.winfo_exists()

        async def new_password_logs_in() -> None:
            async with ChatClient([address]) as again:
                await again.login("alice", "new password 1")

        loop_thread.submit(new_password_logs_in()).result(WAIT)

        screenshot(app, xvfb, tmp_path / "chat.png")
    finally:
        app.close()
        loop_thread.submit(bob.close()).result(WAIT)
    assert not app.runner.thread.is_alive()
    assert app.runner.loop.is_closed()


def test_arguments() -> None:
    parser = build_parser()
    args = parser.parse_args(["gui"])
    assert args.server == "127.0.0.1:50051"
    args = parser.parse_args(["gui", "--server", "10.0.0.1:1,10.0.0.2:2"])
    assert args.server == "10.0.0.1:1,10.0.0.2:2"
    assert main(parser.parse_args(["gui", "--server", " , "])) == 2
    # --retry-for reaches the window's clients (default: the library's 30 s)
    for flags, retry_for in (([], 30.0), (["--retry-for", "4"], 4.0)):
        options = client_options(parser.parse_args(["gui", *flags]))
        assert ChatClient("127.0.0.1:1", **options).retry_for == retry_for


def _create(child: pexpect.spawn[str], name: str) -> None:
    child.expect("chatd>")
    child.sendline(f"/create {name}")
    child.expect("password:")
    child.sendline(PASSWORD)
    child.expect("password again:")
    child.sendline(PASSWORD)
    child.expect(f"logged in as {name}")


def test_demo_two_terminals_and_the_gui_through_a_master_crash(xvfb: str, tmp_path: Path) -> None:
    """What a new user does first: `chatd demo` (alice's terminal), a second
    terminal client (bob), the GUI (carol); the master is killed by hand with
    kill -9, and all three go on chatting, seeing no more than a status line."""
    demo = spawn_chatd("demo", timeout=30)
    bob: pexpect.spawn[str] | None = None
    app: ChatApp | None = None
    pids: dict[str, int] = {}
    try:
        for _ in range(3):
            demo.expect(r"n\d  (127\.0\.0\.1:\d+)  web http:\S+  pid (\d+)")
            assert isinstance(demo.match, re.Match)
            pids[demo.match.group(1)] = int(demo.match.group(2))
        demo.expect(r"chatd chat --server (\S+)")
        assert isinstance(demo.match, re.Match)
        servers = demo.match.group(1)
        _create(demo, "alice")
        bob = spawn_chatd("chat", "--server", servers, timeout=30)
        _create(bob, "bob")
        app = ChatApp(servers, refresh_ms=300)
        submit_form(app, "carol", PASSWORD, "create")
        pump(app, lambda: app.me == "carol", "carol logged in", 20)

        demo.sendline("/chat bob")
        demo.expect("alice → bob>")
        demo.sendline("hi bob")
        bob.expect("new message from alice: hi bob")
        bob.sendline("/send carol hello carol")
        pump(app, lambda: contact(app, "bob")[1] == "1", "bob's message, unread")
        app.contacts.selection_set("bob")
        pump(app, lambda: "bob: hello carol\n" in conversation(app), "bob's message, read")
        app.input.insert(0, "hi bob, from the GUI")
        app.input.event_generate("<Return>")
        bob.expect("new message from carol: hi bob, from the GUI")

        # the master dies
        status = subprocess.run(
            [sys.executable, "-m", "chatd", "status", "--json", "--server", servers.split(",")[0]],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        master = json.loads(status.stdout)["master"]
        statuses: list[str] = [app.status_var.get()]
        app.status_var.trace_add("write", lambda *_: statuses.append(app.status_var.get()))
        os.kill(pids[master], signal.SIGKILL)

        demo.sendline("after the crash")
        demo.expect("reconnected to")
        bob.expect("new message from alice: after the crash")
        bob.sendline("/send carol are you still there?")
        pump(app, lambda: "bob: are you still there?\n" in conversation(app), "bob, after", 20)
        app.input.insert(0, "yes, still here")
        app.input.event_generate("<Return>")
        bob.expect("new message from carol: yes, still here")
        pump(app, lambda: app.status_var.get().startswith("reconnected to"), "GUI status", 20)
        # one line for the whole failover, however many calls and nodes it
        # took; connected to the node its session's stream is on (any node
        # serves it; the client picks one of those it was given)
        assert statuses == [statuses[0], "connection lost, retrying…", app.status_var.get()]
        assert statuses[0] in {f"connected to {a}" for a in servers.split(",")}, statuses
        assert app.me == "carol"  # no new log-in anywhere
        for child in (demo, bob):
            assert "log in" not in (child.before or "").lower()
        screenshot(app, xvfb, tmp_path / "after-crash.png")

        demo.sendline("/quit")
        demo.expect("demo nodes stopped")
        demo.expect(pexpect.EOF)
        demo.wait()
        assert demo.exitstatus == 0
        for pid in pids.values():  # every node is gone, the killed one reaped
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if app is not None:
            app.close()
        if bob is not None and bob.isalive():
            bob.kill(signal.SIGKILL)
            bob.wait()
        stop_demo(demo)  # (its nodes too, even those it had not named yet)
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_gui_room_with_three_people_one_removed(
    xvfb: str,
    spawn_node: Callable[..., NodeProcess],
    loop_thread: LoopThread,
    tmp_path: Path,
) -> None:
    """alice in the GUI: invited to a room with unread messages, she sees it
    beside her contacts, opens it (joining), reads the history and who is
    in it, writes there; when the room's creator removes her, the room
    leaves her list."""
    node = spawn_node("n1")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)

    async def setup() -> tuple[ChatClient, ChatClient]:
        bob, carol = ChatClient([address]), ChatClient([address])
        for name in ("alice", "bob", "carol"):
            await bob.create_account(name, PASSWORD)
        await bob.login("bob", PASSWORD)
        await carol.login("carol", PASSWORD)
        await bob.create_room("team", "the plan")
        for name in ("alice", "carol"):
            await bob.invite("team", name)
        await carol.join_room("team")
        for i in range(3):
            await bob.send("", f"before alice {i}", room="team")
        return bob, carol

    bob, carol = loop_thread.submit(setup()).result(WAIT)
    app = ChatApp(address, refresh_ms=300)
    try:
        submit_form(app, "alice", PASSWORD)
        pump(app, lambda: app.me == "alice", "alice logged in")
        pump(app, lambda: contact(app, "#team") == ("invited", ""), "the invitation")
        app.contacts.selection_set("#team")  # opening it joins
        pump(app, lambda: "bob: before alice 2\n" in conversation(app), "the room's history")
        pump(app, lambda: app.peer_var.get().startswith("Room #team: alice"), "who is in it")
        assert "carol" in app.peer_var.get() and "bob" in app.peer_var.get()
        pump(app, lambda: contact(app, "#team")[0] == "3 members", "three members")
        app.input.insert(0, "hello room")
        app.input.event_generate("<Return>")
        pump(app, lambda: "you: hello room\n" in conversation(app), "alice's message")

        async def carol_reads() -> list[str]:
            got = await carol.room_history("team")
            return [m.body for m in got]

        pump(app, lambda: "hello room" in loop_thread.submit(carol_reads()).result(WAIT), "sent")
        loop_thread.submit(carol.send("", "welcome alice", room="team")).result(WAIT)
        pump(app, lambda: "carol: welcome alice\n" in conversation(app), "carol, live")
        # who is in the room, kept current while it is shown
        loop_thread.submit(carol.leave_room("team")).result(WAIT)
        pump(app, lambda: "carol" not in app.peer_var.get(), "carol left, in the heading")
        pump(app, lambda: contact(app, "#team")[0] == "2 members", "two members")
        screenshot(app, xvfb, tmp_path / "room-open.png")
        # a conversation away from the room: its unread count grows
        app.contacts.selection_set("bob")
        pump(app, lambda: app.peer == Peer("bob"), "bob's conversation")
        loop_thread.submit(bob.send("", "while away", room="team")).result(WAIT)
        pump(app, lambda: contact(app, "#team")[1] == "1", "one unread in the room")
        screenshot(app, xvfb, tmp_path / "room.png")
        # removed: the room leaves her list
        loop_thread.submit(bob.remove_from_room("team", "alice")).result(WAIT)
        pump(app, lambda: not app.contacts.exists("#team"), "the room gone")
    finally:
        app.close()
        for c in (bob, carol):
            loop_thread.submit(c.close()).result(WAIT)
