"""The terminal client driven as a user would: `chatd chat` on a
pseudo-terminal (pexpect), against real nodes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pyte
import pytest
from prompt_toolkit.document import Document

from chatd.client import ChatClient
from chatd.client.errors import NoSuchRecipient, WrongPassword
from chatd.client.terminal import ChatCompleter, describe
from tests.cluster import Cluster
from tests.conftest import PASSWORD, NodeProcess, spawn_chatd, stop_demo, wait_serving
from tests.waiting import eventually_async

TIMEOUT = 15


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def inbox_of(client: ChatClient) -> list[str]:
    """The bodies of the client's unread messages, once there are some
    (bounded): the prompt shows again once a send is answered, but pexpect
    may have matched the prompt of the line just typed."""
    got = await eventually_async(client.get_messages, "unread messages", interval=0.05)
    return [m.body for m in got]


async def make_bob(address: str) -> ChatClient:
    bob = ChatClient([address])
    await bob.create_account("bob", PASSWORD)
    await bob.login("bob", PASSWORD)
    return bob


def test_chat_session_as_a_user(
    spawn_node: Callable[..., NodeProcess], chat_process: Callable[..., pexpect.spawn[str]]
) -> None:
    node = spawn_node("n1")
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    child = chat_process("--server", address)
    child.expect("/help")
    # create an account: the password is asked twice, with hidden input
    create_account(child, "alice")
    child.expect("alice>")
    assert PASSWORD not in (child.before or "")

    async def bob_joins() -> None:
        bob = await make_bob(address)
        await bob.close()

    run(bob_joins())
    # a clear one-line error
    child.sendline("/chat zed")
    child.expect("zed does not exist")
    # tab completion of a command and of a username (what the commands
    # answer shows the completed text was entered)
    child.send("/us\t")
    child.sendline("")
    child.expect("bob +offline")
    child.send("/chat b\t")
    child.sendline("")
    child.expect("talking to bob")
    child.expect("alice → bob>")
    child.sendline("hello bob")
    child.expect("alice → bob>")

    async def bob_reads_and_answers() -> list[str]:
        bob = ChatClient([address])
        await bob.login("bob", PASSWORD)
        got = await inbox_of(bob)
        await bob.send("alice", "hi alice, from bob")
        await bob.close()
        return got

    assert run(bob_reads_and_answers()) == ["hello bob"]
    # the message from bob appears above the prompt, while alice is at the prompt
    child.expect(r"\[\d\d:\d\d\] bob: hi alice, from bob")
    child.sendline("/history 5")
    child.expect(r"you: hello bob")
    child.sendline("/logout")
    child.expect("logged out")
    child.sendline("/login alice")
    child.expect("password:")
    child.sendline("wrong password")
    child.expect("incorrect password")

    async def bob_writes_twice() -> None:
        bob = ChatClient([address])
        await bob.login("bob", PASSWORD)
        for text in ("while you were out", "and again"):
            await bob.send("alice", text)
        await bob.close()

    run(bob_writes_twice())
    # logging in names the conversations with unread messages
    child.sendline("/login alice")
    child.expect("password:")
    child.sendline(PASSWORD)
    child.expect(r"unread: bob \(2\)")
    child.sendline("/users")
    child.expect("bob +offline, 2 unread")
    child.sendline("/chat bob")  # what it shows counts as read
    child.expect("and again")
    child.sendline("/users")
    child.expect(r"bob +offline\r")
    child.sendcontrol("d")  # Ctrl-D leaves
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0


def test_master_lost_is_one_status_line(
    tmp_path: Path, chat_process: Callable[..., pexpect.spawn[str]]
) -> None:
    cluster = Cluster.start(tmp_path)
    try:
        addresses = ",".join(cluster.addresses.values())

        async def accounts() -> None:
            c = ChatClient(addresses.split(","))
            await c.create_account("alice", PASSWORD)
            await c.create_account("bob", PASSWORD)
            await c.close()

        run(accounts())
        child = chat_process("--server", addresses, "--user", "alice")
        child.expect("password:")
        child.sendline(PASSWORD)
        child.expect("logged in as alice")
        child.sendline("/chat bob")
        child.expect("alice → bob>")
        master = cluster.master()
        assert master is not None
        cluster.kill(master)
        child.sendline("after the failover")
        # the node lost is the master, wherever the client's stream was held
        child.expect("connection to (\\S+) lost, reconnecting")
        assert isinstance(child.match, re.Match) and child.match[1] == cluster.addresses[master]
        child.expect("reconnected to")
        child.expect("alice → bob>")

        async def bob_reads() -> list[str]:
            bob = ChatClient(addresses.split(","))
            await bob.login("bob", PASSWORD)
            got = await inbox_of(bob)
            await bob.send("alice", "still here")
            await bob.close()
            return got

        assert run(bob_reads()) == ["after the failover"]
        child.expect("bob: still here")  # the live stream came back by itself
        assert "log in" not in (child.before or "").lower()
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        cluster.stop_all()


def test_completion_and_error_lines() -> None:
    completer = ChatCompleter(lambda: {"bob", "bella", "carol"})
    words = [c.text for c in completer.get_completions(Document("/chat b"), None)]
    assert words == ["bella", "bob"]
    assert [c.text for c in completer.get_completions(Document("/he"), None)] == ["/help"]
    assert describe(NoSuchRecipient(15, "receiver does not exist"), "bob") == "bob does not exist"
    assert describe(WrongPassword(10, "x")) == "incorrect password"


def test_demo_runs_a_cluster_and_a_client_and_stops_it(
    chat_process: Callable[..., pexpect.spawn[str]],
) -> None:
    child = spawn_chatd("demo", timeout=60)
    try:
        pids = []
        for _ in range(3):
            child.expect(r"n\d  (127\.0\.0\.1:\d+)  web http:\S+  pid (\d+)")
            assert isinstance(child.match, re.Match)
            pids.append(int(child.match.group(2)))
        child.expect(r"chatd chat --server (\S+)")
        assert isinstance(child.match, re.Match)
        servers = child.match.group(1)
        create_account(child, "alice")

        async def users() -> list[str]:
            c = ChatClient(servers.split(","))
            names = [u.name for u in await c.list_users()]
            await c.close()
            return names

        assert run(users()) == ["alice"]
        child.sendline("/quit")
        child.expect("demo nodes stopped")
        child.expect(pexpect.EOF)
        child.wait()
        assert child.exitstatus == 0
        for pid in pids:  # every node process is gone
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        stop_demo(child)  # (its nodes too, even those it had not named yet)


def create_account(child: pexpect.spawn[str], name: str) -> None:
    """/create at the prompt; the password is asked twice."""
    child.expect("chatd>")
    child.sendline(f"/create {name}")
    child.expect("password:")
    child.sendline(PASSWORD)
    child.expect("password again:")
    child.sendline(PASSWORD)
    child.expect(f"logged in as {name}")


class Screen:
    """What a terminal shows of a child's output: a pyte screen fed with
    everything the child wrote."""

    def __init__(self, child: pexpect.spawn[str], rows: int = 40, cols: int = 160) -> None:
        self.child = child
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait(self, shown: Callable[[str], bool], timeout: float = TIMEOUT) -> str:
        """Feeds output to the screen until `shown(text)` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(pexpect.TIMEOUT):
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.1))
            if shown(self.text()):
                return self.text()
        raise AssertionError(f"not shown within {timeout} s; the screen:\n{self.text()}")


def test_the_screen_after_a_password_prompt_shows_what_is_typed(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    """/create asks for the password twice, masked; the prompts after it show
    what is typed (they showed stars for every command), and the password
    is never on the screen."""
    node = spawn_node("n1")
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    child = spawn_chatd("chat", "--server", address, timeout=TIMEOUT)
    try:
        screen = Screen(child)
        screen.wait(lambda t: "chatd>" in t)
        child.send("/create yul\r")
        screen.wait(lambda t: "password:" in t)
        child.send(PASSWORD)
        text = screen.wait(lambda t: "password: " + "*" * len(PASSWORD) in t)
        child.send("\r")
        screen.wait(lambda t: "password again:" in t)
        child.send(PASSWORD + "\r")
        screen.wait(lambda t: "logged in as yul" in t and t.rstrip().endswith("yul>"))
        child.send("/users")
        text = screen.wait(lambda t: t.rstrip().endswith("yul> /users"))
        child.send("\r")
        text = screen.wait(lambda t: re.search(r"yul +online", t) is not None)
        child.send("/chat yul")
        text = screen.wait(lambda t: t.rstrip().endswith("yul> /chat yul"))
        assert PASSWORD not in text
        child.send("\r")
        # /password: the current one, then the new one twice, all masked
        new = "a brand new password"
        for old in ("not my password", PASSWORD):
            child.send("/password\r")
            screen.wait(lambda t: t.rstrip().endswith("current password:"))
            child.send(old + "\r")
            for label in ("new password:", "new password again:"):
                screen.wait(lambda t, label=label: t.rstrip().endswith(label))  # type: ignore[misc]
                child.send(new + "\r")
        text = screen.wait(lambda t: "password changed; your other sessions have ended" in t)
        assert "that is not your current password; nothing changed" in text
        child.send("/users")  # and the prompt after it shows what is typed
        text = screen.wait(lambda t: t.rstrip().endswith("> /users"))
        assert new not in text and PASSWORD not in text and "not my password" not in text
    finally:
        child.kill(9)
        child.wait()

    async def new_password_works() -> None:
        async with ChatClient([address]) as c:
            await c.login("yul", new)

    run(new_password_works())


def alice_at_a_terminal(
    spawn_node: Callable[..., NodeProcess], chat_process: Callable[..., pexpect.spawn[str]]
) -> tuple[str, pexpect.spawn[str]]:
    """A node, and alice logged in at a terminal client of it."""
    node = spawn_node("n1")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    child = chat_process("--server", address)
    create_account(child, "alice")
    child.expect("alice>")
    return address, child


def test_a_room_with_three_people_one_removed(
    spawn_node: Callable[..., NodeProcess], chat_process: Callable[..., pexpect.spawn[str]]
) -> None:
    """alice, at the terminal, makes a room for three, talks in it as in a
    conversation, sees bob's answer above her prompt, and removes carol:
    carol gets nothing after that."""
    address, child = alice_at_a_terminal(spawn_node, chat_process)

    async def accounts() -> None:
        for name in ("bob", "carol"):
            c = ChatClient([address])
            await c.create_account(name, PASSWORD)
            await c.close()

    run(accounts())
    child.sendline("/room create team plans for the week")
    child.expect("room #team created")
    for name in ("bob", "carol"):
        child.sendline(f"/room invite team {name}")
        child.expect(f"{name} invited to #team")

    async def join(name: str) -> None:
        c = ChatClient([address])
        await c.login(name, PASSWORD)
        await c.join_room("team")
        await c.close()

    for name in ("bob", "carol"):
        run(join(name))
    child.sendline("/chat #team")
    child.expect("in #team")
    child.expect("alice → #team>")
    child.sendline("hello team")
    child.expect("alice → #team>")

    async def reads(name: str, answer: str = "") -> list[str]:
        c = ChatClient([address])
        await c.login(name, PASSWORD)
        got = await inbox_of(c)
        if answer:
            await c.send("", answer, room="team")
        await c.close()
        return got

    assert run(reads("bob", "hi alice, from bob")) == ["hello team"]
    child.expect(r"\[\d\d:\d\d\] bob: hi alice, from bob")  # in the room she is in
    assert run(reads("carol")) == ["hello team", "hi alice, from bob"]
    child.sendline("/room members team")
    child.expect(r"alice +online \(admin\)")
    child.sendline("/room remove team carol")
    child.expect("carol removed from #team")
    child.sendline("carol is gone")
    child.expect("alice → #team>")
    assert run(reads("bob")) == ["carol is gone"]

    async def carol_after() -> list[str]:
        c = ChatClient([address])
        await c.login("carol", PASSWORD)
        await asyncio.sleep(0.3)  # (nothing may come: a wait that proves an absence)
        got = [m.body for m in await c.get_messages()]
        await c.close()
        return got

    assert run(carol_after()) == []
    child.sendline("/room list")
    child.expect(r"#team +2 members")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0


def test_declining_an_invitation_and_deleting_a_room_at_the_terminal(
    spawn_node: Callable[..., NodeProcess], chat_process: Callable[..., pexpect.spawn[str]]
) -> None:
    """/room decline and /room delete: bob's invitation declined, alice's
    own room deleted; her list is empty after."""
    address, child = alice_at_a_terminal(spawn_node, chat_process)

    async def invited() -> None:
        async with ChatClient([address]) as bob:
            await bob.create_account("bob", PASSWORD)
            await bob.login("bob", PASSWORD)
            await bob.create_room("bobs")
            await bob.invite("bobs", "alice")

    run(invited())
    child.sendline("/room create team")
    child.expect("room #team created")
    child.sendline("/room decline bobs")
    child.expect("declined the invitation to #bobs")
    child.sendline("/room delete team")
    child.expect(r"delete #team for good.*\[y/N\]")
    child.sendline("y")
    child.expect("deleted #team")
    child.sendline("/room list")
    child.expect("no rooms yet")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0
