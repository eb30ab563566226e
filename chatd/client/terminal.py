"""The terminal client, `chatd chat`: prompt_toolkit on asyncio.

`prompt_async()` runs inside `patch_stdout()`, and a background task prints
what arrives above the prompt the moment it arrives. Commands start with
`/`; plain text goes to the current conversation. Errors are one line; a
lost connection is one status line and the session goes on, no new login.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
from collections.abc import Callable, Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from chatd.client import errors
from chatd.client.api import ChatClient, ConnectionEvent, Message
from chatd.client.errors import ChatError, NotLoggedIn, Unavailable
from chatd.contract import Code

COMMANDS = {
    "/create": "/create NAME         create an account (asks for a password) and log in",
    "/login": "/login NAME          log in (asks for the password)",
    "/users": "/users [PATTERN]     list users, online or offline",
    "/chat": "/chat NAME           talk to NAME: show recent history, plain text goes there",
    "/send": "/send NAME TEXT      send one message to NAME",
    "/history": "/history [N]         the last N messages of this conversation (default 20)",
    "/logout": "/logout              end this session",
    "/delete": "/delete              delete your account (asks to confirm)",
    "/help": "/help                this list",
    "/quit": "/quit                leave (Ctrl-D too)",
}
NAME_COMMANDS = ("/login", "/chat", "/send", "/users")


TEXT: dict[type[ChatError], str] = {
    NotLoggedIn: "you are not logged in: /login NAME or /create NAME",
}


def describe(exc: ChatError, name: str = "") -> str:
    """One clear line for a failed call, in this front end's words."""
    return errors.describe(exc, name, TEXT)


def stamp(m: Message) -> str:
    return m.time.astimezone().strftime("%H:%M")


class ChatCompleter(Completer):
    """Completes commands, then usernames after the commands that take one."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self.names = names

    def get_completions(self, document: Document, complete_event: object) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split(" ")
        if len(words) == 1 and text.startswith("/"):
            for cmd in COMMANDS:
                if cmd.startswith(text):
                    yield Completion(cmd, start_position=-len(text))
        elif len(words) == 2 and words[0] in NAME_COMMANDS:
            for name in sorted(self.names()):
                if name.startswith(words[1]):
                    yield Completion(name, start_position=-len(words[1]))


class Terminal:
    def __init__(
        self,
        client: ChatClient,
        *,
        session: PromptSession[str] | None = None,
        out: Callable[[str], None] = print,
    ) -> None:
        self.client = client
        self.out = out
        self.peer: str | None = None
        self.users: set[str] = set()
        self._receiver: asyncio.Task[None] | None = None
        self._lost = False
        client.on_connection = self._connection
        self.session = session or PromptSession(history=InMemoryHistory())
        self.session.completer = ChatCompleter(lambda: self.users)
        self.session.complete_while_typing = False

    # -- the loop --

    def prompt(self) -> str:
        me = self.client.username
        if me is None:
            return "chatd> "
        return f"{me} → {self.peer}> " if self.peer else f"{me}> "

    async def run(self, user: str | None = None) -> None:
        self.out("chatd: type /help for commands, /quit to leave")
        with patch_stdout(raw=True):
            try:
                if user:
                    await self.handle(f"/login {user}")
                while True:
                    try:
                        line = await self.session.prompt_async(self.prompt)
                    except KeyboardInterrupt:
                        continue
                    except EOFError:
                        break
                    if not await self.handle(line.strip()):
                        break
            finally:
                await self._stop_receiver()
                await self.client.close()

    async def handle(self, line: str) -> bool:
        """Runs one input line; False means quit."""
        if not line:
            return True
        if not line.startswith("/"):
            if self.peer is None:
                self.out("choose someone to talk to first: /chat NAME")
            else:
                await self._send(self.peer, line)
            return True
        cmd, _, rest = line.partition(" ")
        rest = rest.strip()
        if cmd == "/quit":
            return False
        handler = getattr(self, "_cmd_" + cmd[1:], None)
        if cmd not in COMMANDS or handler is None:
            self.out(f"unknown command {cmd}; /help lists them")
            return True
        try:
            await handler(rest)
        except ChatError as exc:
            self.out(describe(exc, rest.split(" ")[0] if rest else ""))
        return True

    # -- commands --

    async def _cmd_help(self, rest: str) -> None:
        self.out("\n".join(COMMANDS.values()))

    async def _ask_password(self, label: str = "password: ") -> str:
        # A session of its own: PromptSession keeps a prompt's options as the
        # defaults of the next ones (with the main session, every command after
        # a password showed as stars), and its history would hold the password
        masked: PromptSession[str] = PromptSession(
            input=self.session.input, output=self.session.output, is_password=True
        )
        return await masked.prompt_async(label)

    async def _ask_new_password(self) -> str | None:
        password = await self._ask_password()
        again = await self._ask_password("password again: ")
        if again != password:
            self.out("the passwords differ")
            return None
        return password

    async def _cmd_create(self, name: str) -> None:
        if not name:
            self.out("usage: /create NAME")
            return
        password = await self._ask_new_password()
        if password is None:
            return
        await self.client.create_account(name, password)
        self.out(f"account {name} created")
        await self._login(name, password)

    async def _cmd_login(self, name: str) -> None:
        if not name:
            self.out("usage: /login NAME")
            return
        await self._login(name, await self._ask_password())

    async def _login(self, name: str, password: str) -> None:
        await self._stop_receiver()
        await self.client.login(name, password)
        self.peer = None
        self.out(f"logged in as {name}")
        await self._refresh_users()
        self._receiver = asyncio.create_task(self._receive())

    async def _cmd_users(self, pattern: str) -> None:
        users = await self.client.list_users()
        self.users = {u.name for u in users}
        shown = [u for u in users if not pattern or fnmatch.fnmatch(u.name, f"*{pattern}*")]
        if not shown:
            self.out("no users match" if pattern else "no users yet")
        for u in shown:
            self.out(f"  {u.name:<32} {'online' if u.online else 'offline'}")

    async def _cmd_chat(self, name: str) -> None:
        if not name:
            self.out("usage: /chat NAME")
            return
        history = await self.client.get_chat(name, limit=20)
        self.peer = name
        self.out(f"talking to {name}" + ("" if history else " (no messages yet)"))
        for m in history:
            self._show(m)

    async def _cmd_history(self, rest: str) -> None:
        if self.peer is None:
            self.out("choose someone to talk to first: /chat NAME")
            return
        n = int(rest) if rest.isdigit() else 20
        for m in await self.client.get_chat(self.peer, limit=max(1, min(n, 500))):
            self._show(m)

    async def _cmd_send(self, rest: str) -> None:
        name, _, text = rest.partition(" ")
        if not name or not text.strip():
            self.out("usage: /send NAME TEXT")
            return
        await self._send(name, text)

    async def _send(self, to: str, text: str) -> None:
        try:
            await self.client.send(to, text)
        except ChatError as exc:
            self.out(describe(exc, to))
            return
        if to != self.peer:
            self.out(f"sent to {to}")

    async def _cmd_logout(self, rest: str) -> None:
        await self._stop_receiver()
        await self.client.logout()
        self.peer = None
        self.out("logged out")

    async def _cmd_delete(self, rest: str) -> None:
        me = self.client.username
        if me is None:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")
        answer = await self.session.prompt_async(f"delete the account {me} for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            self.out("not deleted")
            return
        await self._stop_receiver()
        await self.client.delete_account()
        self.peer = None
        self.out(f"account {me} deleted")

    # -- incoming --

    async def _receive(self) -> None:
        try:
            async for m in self.client.inbox():
                self._show(m, incoming=True)
                if m.sender not in self.users:
                    self.users.add(m.sender)
        except NotLoggedIn:
            self.out("your session ended; /login NAME to continue")
        except Unavailable:
            self.out("no chatd node answers; new messages will show after the next /login")

    def _show(self, m: Message, incoming: bool = False) -> None:
        me = self.client.username
        other = m.recipient if m.sender == me else m.sender
        if incoming and other != self.peer:
            self.out(f"[{stamp(m)}] new message from {m.sender}: {m.body}")
        else:
            who = "you" if m.sender == me else m.sender
            self.out(f"[{stamp(m)}] {who}: {m.body}")

    def _connection(self, event: ConnectionEvent) -> None:
        if event.state == "lost" and not self._lost:
            self._lost = True
            self.out(f"connection to {event.address} lost, reconnecting…")
        elif event.state == "connected" and self._lost:
            self._lost = False
            self.out(f"reconnected to {event.address}")

    async def _refresh_users(self) -> None:
        with contextlib.suppress(ChatError):
            self.users = {u.name for u in await self.client.list_users()}

    async def _stop_receiver(self) -> None:
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
            self._receiver = None


def main(args: argparse.Namespace) -> int:
    async def run() -> None:
        client = ChatClient(args.server, tls_ca=getattr(args, "tls_ca", None))
        await Terminal(client).run(args.user)

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(run())
    return 0
