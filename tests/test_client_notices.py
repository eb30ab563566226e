"""What the clients tell their user of what others did: an operator's
logout, disable or delete (the terminal says "not logged in", its prompt
too), a room invitation or removal (the terminal and the GUI, as it
happens); /create checks the name before the password; counts agree in
number; and every command writing to stdout exits quietly when its
reader went away."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pexpect
import pytest

from chatd.client import ChatClient
from chatd.client.gui import ChatApp, LoopThread
from tests.conftest import PASSWORD, NodeProcess, spawn_chatd, wait_serving
from tests.test_gui import contact, loop_thread, pump, submit_form
from tests.test_terminal import create_account

__all__ = ["loop_thread"]  # (a fixture of the GUI's tests, used here)

TIMEOUT = 15


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture
def address(spawn_node: Callable[..., NodeProcess]) -> str:
    node = spawn_node("n1")
    wait_serving(node.address)  # type: ignore[attr-defined]
    return str(node.address)  # type: ignore[attr-defined]


@pytest.fixture
def terminal(address: str) -> Iterator[pexpect.spawn[str]]:
    child = spawn_chatd("chat", "--server", address, timeout=TIMEOUT)
    yield child
    if child.isalive():
        child.kill(9)
        child.wait()


async def accounts(address: str, *names: str) -> None:
    async with ChatClient([address]) as c:
        for name in names:
            await c.create_account(name, PASSWORD)


def chatd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("action", ["logout", "disable", "delete"])
def test_an_operator_ends_the_session_and_the_terminal_says_so(
    address: str, terminal: pexpect.spawn[str], action: str
) -> None:
    run(accounts(address, "bob"))
    create_account(terminal, "alice")
    terminal.sendline("/chat bob")
    terminal.expect("alice → bob>")
    out = chatd("users", action, "alice", "--server", address)
    assert out.returncode == 0, out
    terminal.expect("your session ended; /login NAME to continue")
    terminal.expect(r"\(not logged in\) chatd>")
    terminal.sendline("are you there, bob?")
    terminal.expect("you are not logged in: /login NAME or /create NAME")
    terminal.expect(r"\(not logged in\) chatd>")
    assert "choose someone" not in str(terminal.before)


def test_create_with_a_taken_name_says_so_before_the_password(
    address: str, terminal: pexpect.spawn[str]
) -> None:
    run(accounts(address, "bob"))
    terminal.expect(r"\(not logged in\) chatd>")
    for name in ("bob", "BOB"):
        terminal.sendline(f"/create {name}")
        i = terminal.expect([f"{name} is already taken", "password:"])
        assert i == 0, "the password was asked for a taken name"
        terminal.expect(r"\(not logged in\) chatd>")


def test_room_invitations_and_removals_are_shown_as_they_happen(
    address: str, terminal: pexpect.spawn[str], loop_thread: LoopThread
) -> None:
    run(accounts(address, "bob"))
    create_account(terminal, "alice")
    terminal.sendline("/room create solo")
    terminal.expect("room #solo created")
    terminal.sendline("/room list")
    terminal.expect(r"#solo +1 member\b")
    bob = ChatClient([address])

    def as_bob(coro: object) -> None:
        loop_thread.submit(coro).result(TIMEOUT)  # type: ignore[arg-type]

    try:
        as_bob(bob.login("bob", PASSWORD))
        as_bob(bob.create_room("team", "the plan"))
        as_bob(bob.invite("team", "alice"))
        terminal.expect(r"you are invited to #team \(the plan\): /join team")
        terminal.sendline("/join team")
        terminal.expect("joined #team")
        terminal.sendline("/room list")
        terminal.expect(r"#team +2 members")
        as_bob(bob.remove_from_room("team", "alice"))
        terminal.expect("you are no longer in #team")
        terminal.sendline("/room leave solo")  # her own doing: said once
        terminal.expect("left #solo")
        with pytest.raises(pexpect.TIMEOUT):
            terminal.expect("no longer in #solo", timeout=5)
    finally:
        as_bob(bob.close())


def test_gui_shows_invitations_and_removals(
    xvfb: str, address: str, loop_thread: LoopThread
) -> None:
    loop_thread.submit(accounts(address, "alice", "bob")).result(TIMEOUT)
    bob = ChatClient([address])
    loop_thread.submit(bob.login("bob", PASSWORD)).result(TIMEOUT)
    app = ChatApp(address, refresh_ms=300)
    try:
        submit_form(app, "alice", PASSWORD)
        pump(app, lambda: app.me == "alice", "alice logged in")
        loop_thread.submit(bob.create_room("team")).result(TIMEOUT)
        loop_thread.submit(bob.invite("team", "alice")).result(TIMEOUT)
        pump(app, lambda: "you are invited to #team" in app.notice_var.get(), "the invitation")
        pump(app, lambda: contact(app, "#team") == ("invited", ""), "the room listed")
        app.contacts.selection_set("#team")  # opening it joins
        pump(app, lambda: contact(app, "#team")[0] == "2 members", "two members")
        loop_thread.submit(bob.leave_room("team")).result(TIMEOUT)
        pump(app, lambda: contact(app, "#team")[0] == "1 member", "one member")
        loop_thread.submit(bob.close()).result(TIMEOUT)
        bob = ChatClient([address])
        loop_thread.submit(bob.create_account("carol", PASSWORD)).result(TIMEOUT)
        loop_thread.submit(bob.login("carol", PASSWORD)).result(TIMEOUT)
        loop_thread.submit(bob.create_room("club")).result(TIMEOUT)
        loop_thread.submit(bob.invite("club", "alice")).result(TIMEOUT)
        pump(app, lambda: "you are invited to #club" in app.notice_var.get(), "a second one")
        app.contacts.selection_set("#club")
        pump(app, lambda: contact(app, "#club")[0] == "2 members", "alice in #club")
        loop_thread.submit(bob.remove_from_room("club", "alice")).result(TIMEOUT)
        pump(app, lambda: "you are no longer in #club" in app.notice_var.get(), "the removal")
    finally:
        app.close()
        loop_thread.submit(bob.close()).result(TIMEOUT)


@pytest.mark.parametrize(
    "command",
    [["status"], ["status", "--json"], ["health"], ["users", "list"], ["users", "show", "bob"]],
)
def test_a_closed_stdout_ends_a_command_quietly(address: str, command: list[str]) -> None:
    """`chatd status | head -1`: the reader may be gone before the command
    writes (here: always)."""
    run(accounts(address, "bob"))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "chatd", *command, "--server", address],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(write_end)
    assert out.stderr == "", out.stderr
    assert out.returncode == 1
