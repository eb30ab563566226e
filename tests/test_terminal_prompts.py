"""The terminal client's questions and its conversation on screen, driven as
a user would (`chatd chat` on a pseudo-terminal, pexpect) against a real
node: Ctrl-C or Ctrl-D at a password prompt or a confirmation cancels that
command (the client goes on, no traceback); a name no account can have is
refused before a password is asked; a room the user is no longer in is left
on screen; and /room delete asks to confirm."""

from __future__ import annotations

import io
from collections.abc import Callable

import pexpect

from chatd.client import ChatClient
from tests.conftest import PASSWORD, NodeProcess, wait_serving
from tests.test_terminal import alice_at_a_terminal, run


def test_ctrl_c_and_ctrl_d_at_a_question_cancel_the_command(
    spawn_node: Callable[..., NodeProcess], chat_process: Callable[..., pexpect.spawn[str]]
) -> None:
    node = spawn_node("n1")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)

    async def alice() -> None:
        async with ChatClient([address]) as c:
            await c.create_account("alice", PASSWORD)

    run(alice())
    child = chat_process("--server", address, "--user", "alice")
    shown = io.StringIO()
    child.logfile_read = shown
    # the login that --user starts: cancelled, the client goes on not logged in
    child.expect("password:")
    child.sendcontrol("c")
    child.expect("/login cancelled")
    child.expect(r"\(not logged in\) chatd>")
    for command, answers, key in (
        ("/login alice", [], "d"),
        ("/create zoe", [], "c"),
        ("/create zoe", [PASSWORD], "d"),  # at "password again:"
    ):
        child.sendline(command)
        for answer in answers:
            child.expect("password:")
            child.sendline(answer)
        # the question the key answers, by its exact words: "password( again)?:"
        # also matched the first question's own redraw after its answer, so
        # the key could go out between the two questions and be lost
        child.expect("password again:" if answers else "password:")
        child.sendcontrol(key)
        child.expect(f"{command.split()[0]} cancelled")
        child.expect(r"\(not logged in\) chatd>")
    child.sendline("/login alice")
    child.expect("password:")
    child.sendline(PASSWORD)
    child.expect("logged in as alice")
    child.sendline("/password")
    child.expect("current password:")
    child.sendcontrol("c")
    child.expect("/password cancelled")
    child.sendline("/delete account")
    child.expect(r"delete the account alice for good\? \[y/N\]")
    child.sendcontrol("c")
    child.expect("/delete cancelled")
    child.expect("alice>")
    child.sendline("/users")  # still logged in, still answering
    child.expect("alice +online")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0
    assert "Traceback" not in shown.getvalue()

    async def users() -> list[str]:
        async with ChatClient([address]) as c:
            return [u.name for u in await c.list_users()]

    assert run(users()) == ["alice"]  # zoe was never created, alice not deleted


def test_a_name_no_account_can_have_is_refused_before_the_password(
    spawn_node: Callable[..., NodeProcess], chat_process: Callable[..., pexpect.spawn[str]]
) -> None:
    node = spawn_node("n1")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    child = chat_process("--server", address)
    child.expect(r"chatd>")
    for command in ("/create", "/login"):
        child.sendline(f"{command} \u212aelvin")  # KELVIN SIGN, then "elvin"
        child.expect(r"is not a valid username: use 1 to 32 of A-Z a-z 0-9 _ \. -")
        assert "password" not in (child.before or "")
        child.expect(r"\(not logged in\) chatd>")
    child.sendline("/create a name")
    child.expect("'a name' is not a valid username")
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_a_room_the_user_is_no_longer_in_is_left_on_screen(
    spawn_node: Callable[..., NodeProcess], chat_process: Callable[..., pexpect.spawn[str]]
) -> None:
    """alice talks in #den, which bob deletes, then in #lounge, from which
    bob removes her: each time her prompt leaves the room and says so; and
    her own /room delete asks first."""
    address, child = alice_at_a_terminal(spawn_node, chat_process)

    async def bob_invites(room: str, create: bool) -> None:
        async with ChatClient([address]) as bob:
            if create:
                await bob.create_account("bob", PASSWORD)
            await bob.login("bob", PASSWORD)
            await bob.create_room(room)
            await bob.invite(room, "alice")

    async def bob_does(what: str, room: str) -> None:
        async with ChatClient([address]) as bob:
            await bob.login("bob", PASSWORD)
            if what == "delete":
                await bob.delete_room(room)
            else:
                await bob.remove_from_room(room, "alice")

    for room, what in (("den", "delete"), ("lounge", "remove")):
        run(bob_invites(room, create=room == "den"))
        child.sendline(f"/join {room}")
        child.expect(f"in #{room}")
        child.expect(f"alice → #{room}>")
        run(bob_does(what, room))
        # the room watch tells within a few seconds; a line typed before it
        # does is refused, and leaves the room as well
        child.sendline("still here?")
        child.expect(f"left #{room}: /chat NAME or /chat #ROOM to talk again", timeout=15)
        child.expect("alice>")
        child.sendline("anyone?")
        child.expect("choose someone to talk to first")
    child.sendline("/room create team")
    child.expect("room #team created")
    child.sendline("/room delete team")
    child.expect(r"delete #team for good.*\[y/N\]")
    child.sendline("n")
    child.expect("not deleted")
    child.sendline("/room list")
    child.expect(r"#team +1 member")
    child.sendline("/room delete team")
    child.expect(r"\[y/N\]")
    child.sendline("yes")
    child.expect("deleted #team")
    child.sendline("/room list")
    child.expect("no rooms yet")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
