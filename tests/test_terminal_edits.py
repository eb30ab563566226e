"""The terminal client's commands on a message (/edit, /delete, /reply,
/react, /unreact): two people at terminals (prompt_toolkit reading a pipe,
in this process) talking through a real node, each seeing what the other
does the moment it is done, the history after a restart showing the same,
and the node's refusals said in its words."""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.application import create_app_session
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chatd.client import ChatClient, Message
from chatd.client.terminal import ChatCompleter, Terminal
from chatd.server.build import build
from chatd.server.node import Node
from tests.conftest import PASSWORD, node_config

WAIT = 10.0
THUMBS, HEART = "\N{THUMBS UP SIGN}", "\N{HEAVY BLACK HEART}\N{VARIATION SELECTOR-16}"


class At:
    """A person at a terminal client: what they type goes through
    prompt_toolkit (a pipe for its input), what it prints is `lines`."""

    def __init__(self, address: str) -> None:
        self.lines: list[str] = []
        self.read = 0  # lines before this one were matched already
        self.opened = contextlib.ExitStack()
        self.pipe = self.opened.enter_context(create_pipe_input())
        session: PromptSession[str] = PromptSession(input=self.pipe, output=DummyOutput())
        self.terminal = Terminal(ChatClient([address]), session=session, out=self.lines.append)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with create_app_session(input=self.pipe, output=DummyOutput()):
            await self.terminal.run()

    def type(self, line: str) -> None:
        self.pipe.send_text(line + "\r")

    async def shows(self, pattern: str) -> re.Match[str]:
        """The first line after those matched so far that matches `pattern`
        (waiting for it)."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while asyncio.get_running_loop().time() < deadline:
            for i in range(self.read, len(self.lines)):
                if found := re.search(pattern, self.lines[i]):
                    self.read = i + 1
                    return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"{pattern!r} not shown; after line {self.read}: {self.lines}")

    async def asks(self, question: str) -> None:
        """Waits for the prompt to be `question` (a confirmation)."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while self.terminal.session.message != question:
            assert asyncio.get_running_loop().time() < deadline, self.terminal.session.message
            await asyncio.sleep(0.01)

    async def login(self, name: str) -> None:
        self.type(f"/login {name}")
        self.type(PASSWORD)
        await self.shows(f"logged in as {name}")

    async def quit(self) -> None:
        self.type("/quit")
        async with asyncio.timeout(WAIT):
            await self.task
        self.opened.close()


@contextlib.asynccontextmanager
async def terminals(address: str, *names: str):  # type: ignore[no-untyped-def]
    """A terminal each, logged in; quit in the reverse order (each patched
    stdout in its turn)."""
    started: list[At] = []
    try:
        for name in names:
            at = At(address)
            started.append(at)
            await at.login(name)
        yield started
    finally:
        for at in reversed(started):
            if not at.task.done():
                with contextlib.suppress(Exception):
                    await at.quit()


async def accounts(address: str, *names: str) -> None:
    async with ChatClient([address]) as c:
        for name in names:
            await c.create_account(name, PASSWORD)


async def test_edit_reply_react_delete_between_two_terminals(node: Node) -> None:
    await accounts(node.address, "alice", "bob")
    async with terminals(node.address, "alice", "bob") as (alice, bob):
        alice.type("/chat bob")
        bob.type("/chat alice")
        await bob.shows("talking to alice")
        alice.type("helo bob")
        mid = (await alice.shows(r"^(\d+) \[\d\d:\d\d\] you: helo bob$"))[1]
        await bob.shows(rf"^{mid} \[\d\d:\d\d\] alice: helo bob$")  # live, with its id
        # /edit: both see which message changed, and how
        alice.type(f"/edit {mid} hello bob")
        edited = rf'edited message {mid} \("helo bob"\): hello bob$'
        await alice.shows(r"\] you " + edited)
        await bob.shows(r"\] alice " + edited)
        # /reply: the quote of what it answers above it, on both screens
        bob.type(f"/reply {mid} hi alice")
        await bob.shows("↪ reply to alice: hello bob$")
        rid = (await bob.shows(r"^(\d+) \[\d\d:\d\d\] you: hi alice$"))[1]
        await alice.shows("↪ reply to you: hello bob$")
        await alice.shows(rf"^{rid} \[\d\d:\d\d\] bob: hi alice$")
        # /react by a name or the emoji; what a message has after each
        bob.type(f"/react {mid} +1")
        reacted = rf'reacted {THUMBS} to message {mid} \("hello bob"\): {THUMBS} 1$'
        await bob.shows(r"\] you " + reacted)
        await alice.shows(r"\] bob " + reacted)
        alice.type(f"/react {mid} heart")
        both = f"{THUMBS} 1 {HEART} 1"
        await bob.shows(rf"\] alice reacted {HEART} to message {mid} .*: {both}$")
        bob.type(f"/react {mid} thumbsup")
        await bob.shows(f"you reacted {THUMBS} to message {mid} already")
        bob.type(f"/unreact {mid} {THUMBS}")
        await alice.shows(rf"\] bob took back {THUMBS} on message {mid} .*: {HEART} 1$")
        await bob.shows("you took back")
        bob.type(f"/react {mid} poo")
        await bob.shows(r"'poo' is no reaction: one of 👍 \(\+1\), ❤️ \(heart\)")
        # the node's refusals, in its words
        bob.type(f"/edit {mid} pwned")
        not_his = "only the room's admins \\(or the message's author\\) may do that"
        await bob.shows(f"cannot edit message {mid}: {not_his}")
        bob.type(f"/delete {mid}")
        await bob.asks(f'delete message {mid} ("hello bob") for everyone? [y/N] ')
        bob.type("y")
        await bob.shows(f"cannot delete message {mid}: {not_his}")
        bob.type("/edit 999999 x")
        await bob.shows("cannot edit message 999999: no such message")
        for ref in ("x", "\N{SUPERSCRIPT TWO}", str(2**31), "0", "-1"):
            bob.type(f"/edit {ref} y")
            await bob.shows("usage: /edit ID TEXT")
        # /delete asks first; "n" keeps it
        alice.type("oops, wrong window")
        oid = (await alice.shows(r"^(\d+) .*you: oops, wrong window$"))[1]
        await bob.shows(rf"^{oid} .*alice: oops")
        alice.type(f"/delete {oid}")
        await alice.asks(f'delete message {oid} ("oops, wrong window") for everyone? [y/N] ')
        alice.type("n")
        await alice.shows("not deleted")
        alice.type(f"/delete {oid}")
        alice.type("y")
        await alice.shows(rf'\] you deleted message {oid} \("oops, wrong window"\)$')
        await bob.shows(rf'\] alice deleted message {oid} \("oops, wrong window"\)$')
        await bob.quit()
        # each change printed once at each terminal: by the command that made
        # it or by the stream, whichever came first
        for at in (alice, bob):
            events = [line for line in at.lines if line.startswith("[")]
            assert len(events) == 5
            assert len(events) == len(set(events)), at.lines
        # bob's client again: a reply to a message it has not shown comes
        # with its quote; the history shows what the first one showed
        again = At(node.address)
        try:
            await again.login("bob")
            alice.type(f"/reply {mid} one more thing")
            await again.shows("^ +↪ reply to alice: hello bob$")
            await again.shows(r"^\d+ \[\d\d:\d\d\] new message from alice: one more thing$")
            again.type("/chat alice")
            await again.shows(rf"^{mid} \[\d\d:\d\d\] alice: hello bob \(edited\)  {HEART} 1$")
            await again.shows("^ +↪ reply to alice: hello bob$")
            await again.shows(rf"^{rid} \[\d\d:\d\d\] you: hi alice$")
            await again.shows(rf"^{oid} \[\d\d:\d\d\] alice: \[deleted\]$")
            # /help lists the commands on a message
            again.type("/help")
            listed = (await again.shows("/reply ID TEXT")).string
            for command in ("/edit ID TEXT", "/delete ID", "/react ID EMOJI", "/unreact ID"):
                assert command in listed
        finally:
            await again.quit()


async def test_an_edit_after_the_window_is_refused_at_the_terminal(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "n", edit_window=0.3))
    await node.start()
    try:
        await accounts(node.address, "alice")
        async with terminals(node.address, "alice") as (alice,):
            alice.type("/chat alice")
            alice.type("a note")
            mid = (await alice.shows(r"^(\d+) .*you: a note$"))[1]
            await asyncio.sleep(0.4)
            alice.type(f"/edit {mid} a better note")
            await alice.shows(f"cannot edit message {mid}: the message is too old to edit")
    finally:
        await node.stop()


def test_completion_of_ids_reactions_and_the_text_to_edit() -> None:
    now = datetime.now(UTC)
    shown = [
        Message(12, "bob", "alice", "hello there", now),
        Message(11, "alice", "bob", "my own words", now),
        Message(10, "alice", "bob", "", now, deleted=True),
    ]
    completer = ChatCompleter(lambda: (), lambda: shown, lambda: "alice")

    def offered(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text), None)]

    assert offered("/reply ") == ["12", "11"]  # (not the deleted one)
    assert offered("/edit ") == ["11"]  # her own only
    assert offered("/react 12 th") == ["thumbsup"]
    assert offered("/react 12 h") == ["heart", "haha", "hooray"]
    assert offered("/edit 11 ") == ["my own words"]
    assert offered("/ed") == ["/edit"]
