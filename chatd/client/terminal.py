"""The terminal client, `chatd chat`: prompt_toolkit on asyncio.

`prompt_async()` runs inside `patch_stdout()`, and a background task prints
what arrives above the prompt the moment it arrives. Commands start with
`/`; plain text goes to the current conversation. Errors are one line; a
lost connection is one status line and the session goes on, no new login.

Each message's line starts with its id, what the commands on a message
take (/edit, /delete, /reply, /react, /unreact: chatd.client.lines says
why the id); the lines an edit, a deletion or a reaction prints name that
id. `known` holds the messages the terminal showed, kept up to date by the
events, for the quotes and the completion.

While a message line (not a /command) is typed in a conversation, the
others there are told (the library sends a frame every few seconds at
most); who types to me shows on the prompt's right side ("bob is typing…",
until it expires or bob's message comes), never as lines in the scrollback.
A read receipt that passes my last message on screen prints one quiet line
under it ("  seen by bob"; in a room, the first reader only): it belongs in
the scrollback, next to what was read, while typing is a passing state.
/seen lists everyone's; /search prints its results as message lines, with
where each is, paged by /more.

Lines name others with their display names, "bob (Bob Smith)" (/name and
/avatar set mine: chatd.client.terminal_profiles); a message is printed
once its sender's profile is known (asked in batches, kept a minute:
chatd.client.profiles), so a line is never printed twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fnmatch
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from prompt_toolkit import PromptSession
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from chatd.client import conversation, errors
from chatd.client.api import ChatClient
from chatd.client.conversation import (
    ROOM_MARK,
    Conversation,
    InRoom,
    of_message,
    room_named,
    said,
)
from chatd.client.errors import ChatError, NoSuchRoom, NotAMember, NotLoggedIn, Unavailable
from chatd.client.files_view import file_line
from chatd.client.lines import event_line, message_lines
from chatd.client.model import (
    DELETE,
    EDIT,
    REACT,
    UNREACT,
    ConnectionEvent,
    FileRef,
    Message,
    Receipt,
    Typing,
    applied,
)
from chatd.client.notices import (
    Seen,
    Typists,
    found_line,
    newest_mine,
    receipt_line,
    receipt_where,
    search_scope,
)
from chatd.client.profiles import Profiles
from chatd.client.rooms import Room, room_changes
from chatd.client.shown import NAMES, emoji_named, quote, reaction_names
from chatd.client.terminal_files import FileCommands
from chatd.client.terminal_profiles import ProfileCommands
from chatd.contract import USERNAME_RULE, Code, valid_username
from chatd.tls import TlsError, credentials_of, tls_options
from chatd.words import counted

COMMANDS = {
    "/create": "/create NAME         create an account (asks for a password) and log in",
    "/login": "/login NAME          log in (asks for the password)",
    "/users": "/users [PATTERN]     list users, online or offline, and unread counts",
    "/chat": "/chat NAME|#ROOM     talk to NAME or in ROOM: recent history; plain text goes there",
    "/send": "/send NAME TEXT      send one message to NAME",
    "/send-file": "/send-file PATH [TEXT]  send a file (and a text) to this conversation",
    "/download": "/download ID [PATH]  save the file of message ID (in ~/Downloads or here;\n"
    "                     PATH: a folder or a new file's name; never overwrites)",
    "/history": "/history [N]         the last N messages of this conversation (default 20)",
    "/reply": "/reply ID TEXT       answer message ID (the number its line starts with)",
    "/edit": "/edit ID TEXT        new text for a message of yours (Tab after the ID: its text)",
    "/delete": "/delete ID           delete message ID for everyone (yours; any in a room you\n"
    "                     are an admin of); asks to confirm\n"
    "/delete account      delete your account (asks to confirm)",
    "/react": "/react ID EMOJI      react to message ID: 👍 ❤️ 😂 😮 😢 🎉 👀 ✅, or a name\n"
    "                     (+1 heart joy wow cry tada eyes check; Tab lists them)",
    "/unreact": "/unreact ID EMOJI    take your reaction back",
    "/name": "/name [DISPLAY NAME]  show or set your display name (/name -: none)",
    "/avatar": "/avatar PATH         make an image your avatar (/avatar -: none)",
    "/seen": "/seen                how far the others here have read (read receipts)",
    "/receipts": "/receipts [on|off]   share how far you have read (and see others'), or not",
    "/search": "/search [#ROOM|@NAME] WORDS  your messages holding WORDS (all your\n"
    "                     conversations, or one), newest first; /more: older ones",
    "/more": "/more                the next page of the last /search",
    "/find": "/find PREFIX         the users whose name starts with PREFIX",
    "/room": "/room list | create ROOM [TOPIC] | invite ROOM NAME | remove ROOM NAME\n"
    "                     | leave ROOM | decline ROOM | delete ROOM | members ROOM\n"
    "                     rooms (list: yours, unread counts; delete: an admin's)",
    "/join": "/join ROOM           join a room you were invited to, and talk there",
    "/logout": "/logout              end this session",
    "/password": "/password            change your password (asks for the old and the new one)",
    "/help": "/help                this list",
    "/quit": "/quit                leave (Ctrl-D too)",
}
NAME_COMMANDS = ("/login", "/chat", "/send", "/users")
MESSAGE_COMMANDS = ("/edit", "/delete", "/reply", "/react", "/unreact", "/download")
PATHS = PathCompleter(expanduser=True)  # /send-file's and /avatar's
KNOWN_MAX = 5000  # messages `known` holds (the newest)
MAX_ID = 2**31 - 1  # a message id (int32 on the wire)


def number(text: str) -> int:
    """The whole number `text` is, in ASCII digits (0: none)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else 0


NOT_LOGGED_IN = "you are not logged in: /login NAME or /create NAME"
TEXT: dict[type[ChatError], str] = {NotLoggedIn: NOT_LOGGED_IN}
ROOM_WATCH_S = 3.0  # how often the rooms are listed, to tell invitations and removals


class Cancelled(Exception):
    """Ctrl-C or Ctrl-D at a question (a password, a confirmation): the
    command it belongs to is dropped."""


def describe(exc: ChatError, name: str = "") -> str:
    """One clear line for a failed call, in this front end's words."""
    return errors.describe(exc, name, TEXT)


class ChatCompleter(Completer):
    """Completes commands, then usernames after the commands that take one
    (a path after /send-file or /avatar);
    after a command on a message, the ids of the conversation's messages
    (newest first: `messages()`; /edit: the user's own, `me()`), then for
    /react and /unreact the reactions' names, and for /edit the message's
    text (to change it rather than type it again)."""

    def __init__(
        self,
        names: Callable[[], Iterable[str]],
        messages: Callable[[], list[Message]] = list,
        me: Callable[[], str | None] = lambda: None,
        rooms: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.names = names
        self.messages = messages
        self.me = me
        self.rooms = rooms

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
        elif len(words) == 2 and words[0] == "/receipts":
            for state in ("on", "off"):
                if state.startswith(words[1]):
                    yield Completion(state, start_position=-len(words[1]))
        elif len(words) == 2 and words[0] == "/search" and words[1][:1] in (ROOM_MARK, "@"):
            named = [str(InRoom(r)) for r in self.rooms()] + [f"@{n}" for n in self.names()]
            for where in sorted(named):
                if where.startswith(words[1]):
                    yield Completion(where, start_position=-len(words[1]))
        elif len(words) == 2 and words[0] in ("/send-file", "/avatar"):
            yield from PATHS.get_completions(Document(words[1]), CompleteEvent())
        elif len(words) == 2 and words[0] in MESSAGE_COMMANDS:
            yield from self._ids(words[0], words[1])
        elif len(words) == 3 and words[0] in ("/react", "/unreact"):
            for name in reaction_names():
                if name.startswith(words[2]):
                    emoji = emoji_named(name) or ""
                    yield Completion(name, -len(words[2]), display_meta=emoji)
        elif len(words) == 3 and words[0] == "/edit" and not words[2] and number(words[1]):
            m = next((m for m in self.messages() if m.id == number(words[1])), None)
            if m is not None and not m.deleted:
                yield Completion(m.body, 0, display=quote(m), display_meta="its text")

    def _ids(self, command: str, typed: str) -> Iterable[Completion]:
        me = self.me()
        for m in self.messages():
            if m.deleted or (command == "/edit" and m.sender != me):
                continue
            if command == "/download" and m.file is None:
                continue
            if str(m.id).startswith(typed):
                meta = f"{'you' if m.sender == me else m.sender}: {quote(m, 30)}"
                yield Completion(str(m.id), -len(typed), display_meta=meta)


ROOM_ACTIONS = ("list", "create", "invite", "remove", "leave", "members")


class Terminal(FileCommands, ProfileCommands):
    def __init__(
        self,
        client: ChatClient,
        *,
        session: PromptSession[str] | None = None,
        out: Callable[[str], None] = print,
    ) -> None:
        self.client = client
        self.out = out
        self.peer: Conversation | None = None  # shown, and where plain text goes
        self.users: set[str] = set()
        self.profiles = Profiles()  # display names, for the lines
        self._receiver: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.rooms: dict[str, Room] | None = None  # by name, as last listed (None: not yet)
        self._room_edits = 0  # what the user did to rooms here, counted
        # the events printed, by the command that made them or by the stream,
        # whichever came first: the other does not print them again
        self._printed: set[int] = set()
        self.known: dict[int, Message] = {}  # the messages shown, as they are now
        self._reading: asyncio.Task[None] | None = None  # a read marker on its way
        self._last_seen: Message | None = None
        self._lost = False
        self._presence: asyncio.Task[None] | None = None  # typing notices, receipts
        self.typists = Typists()
        self._seen = Seen()
        self._typing_calls: set[asyncio.Task[bool]] = set()
        self._search: tuple[str, str, str, int] | None = None  # query, peer, room, next
        client.on_connection = self._connection
        self.session = session or PromptSession(history=InMemoryHistory())
        self.session.completer = ChatCompleter(
            lambda: self.users,
            self._shown_messages,
            lambda: self.client.username,
            lambda: self.rooms or {},
        )
        self.session.complete_while_typing = False
        # "bob is typing…" on the prompt's right: there while it lasts, never
        # a line in the scrollback
        self.session.rprompt = self.typing_line
        self.session.default_buffer.on_text_changed += self._typed

    # -- the loop --

    def prompt(self) -> str:
        me = self.client.username
        if me is None:
            return "(not logged in) chatd> "
        return f"{me} → {self.peer}> " if self.peer else f"{me}> "

    async def run(self, user: str | None = None) -> None:
        self.out("chatd: type /help for commands, /quit to leave")
        # what is printed goes above the prompt (a terminal that prints its
        # lines elsewhere, `out`, leaves stdout alone)
        with patch_stdout(raw=True) if self.out is print else contextlib.nullcontext():
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
            if self.client.username is None:
                self.out(NOT_LOGGED_IN)
            elif self.peer is None:
                self.out("choose someone to talk to first: /chat NAME")
            else:
                await self._send(self.peer, line)
            return True
        cmd, _, rest = line.partition(" ")
        rest = rest.strip()
        if cmd == "/quit":
            return False
        handler = getattr(self, "_cmd_" + cmd[1:].replace("-", "_"), None)
        if cmd not in COMMANDS or handler is None:
            self.out(f"unknown command {cmd}; /help lists them")
            return True
        try:
            await handler(rest)
        except Cancelled:
            self.out(f"{cmd} cancelled")
        except NotLoggedIn as exc:
            await self._session_ended(describe(exc))
        except ChatError as exc:
            self.out(describe(exc, rest.split(" ")[0] if rest else ""))
        return True

    # -- commands --

    async def _cmd_help(self, rest: str) -> None:
        self.out("\n".join(COMMANDS.values()))

    async def _ask(self, session: PromptSession[str], label: str) -> str:
        """The answer to a question; Ctrl-C or Ctrl-D there raise Cancelled."""
        try:
            return await session.prompt_async(label)
        except (KeyboardInterrupt, EOFError):
            raise Cancelled() from None

    async def _confirm(self, question: str) -> bool:
        answer = await self._ask(self.session, f"{question} [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    async def _ask_password(self, label: str = "password: ") -> str:
        # A session of its own: PromptSession keeps a prompt's options as the
        # defaults of the next ones (with the main session, every command after
        # a password showed as stars), and its history would hold the password
        masked: PromptSession[str] = PromptSession(
            input=self.session.input, output=self.session.output, is_password=True
        )
        return await self._ask(masked, label)

    def _bad_name(self, name: str, usage: str) -> bool:
        """Says so when `name` is no username a node accepts (before a
        password is asked for it)."""
        if not name:
            self.out(f"usage: {usage}")
            return True
        if not valid_username(name):
            self.out(f"{name!a} is not a valid username: {USERNAME_RULE}")
            return True
        return False

    async def _ask_new_password(self, label: str = "password: ") -> str | None:
        password = await self._ask_password(label)
        again = await self._ask_password(label.replace(":", " again:"))
        if again != password:
            self.out("the passwords differ")
            return None
        return password

    async def _cmd_create(self, name: str) -> None:
        if self._bad_name(name, "/create NAME"):
            return
        taken = [
            u.name for u in await self.client.list_users() if u.name.casefold() == name.casefold()
        ]
        if taken:  # (before the password is asked; the node checks again)
            same = taken[0] == name
            self.out(
                f"{name} is already taken"
                + ("" if same else f" (as {taken[0]}: names must differ in more than case)")
            )
            return
        password = await self._ask_new_password()
        if password is None:
            return
        await self.client.create_account(name, password)
        self.out(f"account {name} created")
        await self._login(name, password)

    async def _cmd_login(self, name: str) -> None:
        if self._bad_name(name, "/login NAME"):
            return
        await self._login(name, await self._ask_password())

    async def _login(self, name: str, password: str) -> None:
        await self.client.login(name, password)  # (refused: the session so far goes on)
        await self._stop_receiver()
        self.peer = None
        self.profiles.clear()  # (what another account was told may differ)
        self.out(f"logged in as {name}")
        await self._refresh_users()
        await self._say_unread()
        self._receiver = asyncio.create_task(self._receive())
        self._presence = asyncio.create_task(self._watch_presence())
        self.rooms = None
        self._watcher = asyncio.create_task(self._watch_rooms())

    async def _say_unread(self) -> None:
        """One line naming the conversations with unread messages (what the
        user's read markers leave, on every device)."""
        with contextlib.suppress(ChatError):
            counts = [(u.peer, u.count) for u in await self.client.unread()]
            rooms = await self.client.rooms()
            counts += [(str(InRoom(r.name)), r.unread) for r in rooms if r.unread]
            if counts:
                self.out("unread: " + ", ".join(f"{name} ({n})" for name, n in counts))

    async def _cmd_users(self, pattern: str) -> None:
        users = await self.client.list_users()
        self.users = {u.name for u in users}
        unread: dict[str, int] = {}
        with contextlib.suppress(ChatError):
            unread = {u.peer: u.count for u in await self.client.unread()}
        shown = [u for u in users if not pattern or fnmatch.fnmatch(u.name, f"*{pattern}*")]
        if not shown:
            self.out("no users match" if pattern else "no users yet")
        await self.profiles.fetch(self.client, [u.name for u in shown])
        for u in shown:
            n = unread.get(u.name)
            count = f", {n} unread" if n else ""
            name = self.profiles.label(u.name)
            self.out(f"  {name:<32} {'online' if u.online else 'offline'}{count}")

    async def _cmd_chat(self, name: str) -> None:
        target = conversation.parse(name)
        if target is None:
            self.out("usage: /chat NAME or /chat #ROOM")
            return
        await self._open(target)

    async def _open(self, target: Conversation) -> None:
        """Shows the recent history there; plain text goes there now."""
        history = await conversation.history(self.client, target, limit=20)
        self.peer = target
        where = f"in {target}" if isinstance(target, InRoom) else f"talking to {target}"
        self.out(where + ("" if history else " (no messages yet)"))
        await self._show_page(target, history)
        await self._mark_read(history)

    async def _show_page(self, where: Conversation, page: list[Message]) -> None:
        """Shows a page of history, each reply with a quote of what it answers."""
        for m in page:
            self._keep(m)
        me = self.client.username
        await self.profiles.fetch(self.client, {m.sender for m in page if m.sender != me})
        for m in page:
            await self._show(m, where=where)

    async def _mark_read(self, shown: list[Message]) -> None:
        """What the screen shows of the conversation counts as read (on
        every device of the user)."""
        if not shown:
            return
        where = of_message(shown[-1], self.client.username)
        with contextlib.suppress(ChatError):
            await conversation.mark_read(self.client, where, shown[-1].id)

    async def _cmd_history(self, rest: str) -> None:
        if self.peer is None:
            self.out("choose someone to talk to first: /chat NAME")
            return
        n = number(rest) or 20
        page = await conversation.history(self.client, self.peer, limit=max(1, min(n, 500)))
        await self._show_page(self.peer, page)

    async def _cmd_join(self, text: str) -> None:
        room = room_named(text)
        if room is None:
            self.out("usage: /join ROOM")
            return
        await self.client.join_room(room.name)
        self._known(room.name, joined=True)
        self.out(f"joined {room}")
        await self._open(room)

    async def _cmd_room(self, rest: str) -> None:
        action, *args = rest.split(" ") if rest else ["list"]
        args = [a for a in args if a]
        room = room_named(args[0]) if args else None
        others = args[1:]  # a user, or a topic's words
        c = self.client
        if action == "list" and not args:
            rooms = await c.rooms()
            if not rooms:
                self.out("no rooms yet: /room create ROOM")
            for r in rooms:
                state = "" if r.joined else " (invited: /join " + r.name + ")"
                unread = f", {r.unread} unread" if r.unread else ""
                topic = f": {r.topic}" if r.topic else ""
                listed = f"{InRoom(r.name)!s:<32}"
                self.out(f"  {listed} {counted(r.members, 'member')}{unread}{state}{topic}")
        elif room is None:
            self.out("usage: " + " ".join(COMMANDS["/room"].split()))
        elif action == "create":
            topic = " ".join(others)
            await c.create_room(room.name, topic)
            self._known(room.name, joined=True, topic=topic)
            self.out(f"room {room} created")
        elif action in ("invite", "remove") and len(others) == 1:
            if action == "invite":
                await c.invite(room.name, others[0])
                self.out(f"{others[0]} invited to {room}")
            else:
                await c.remove_from_room(room.name, others[0])
                self.out(f"{others[0]} removed from {room}")
        elif action in ("leave", "delete") and not others:
            if action == "delete" and not await self._confirm(
                f"delete {room} for good, with its messages, for every member?"
            ):
                self.out("not deleted")
                return
            await (c.leave_room if action == "leave" else c.delete_room)(room.name)
            self._known(room.name, joined=False)
            if self.peer == room:
                self.peer = None
            self.out(f"{'left' if action == 'leave' else 'deleted'} {room}")
        elif action == "decline" and not others:
            await c.decline_invite(room.name)
            self._known(room.name, joined=False)
            self.out(f"declined the invitation to {room}")
        elif action == "members" and not others:
            for m in await c.room_members(room.name):
                role = " (admin)" if m.admin else ""
                state = "invited" if not m.joined else "online" if m.online else "offline"
                self.out(f"  {m.name:<32} {state}{role}")
        else:
            self.out("usage: " + " ".join(COMMANDS["/room"].split()))

    async def _cmd_send(self, rest: str) -> None:
        name, _, text = rest.partition(" ")
        if not name or not text.strip():
            self.out("usage: /send NAME TEXT")
            return
        to = conversation.parse(name)
        if to is None:
            self.out("usage: /send NAME TEXT")
            return
        await self._send(to, text)

    async def _send(
        self, to: Conversation, text: str, reply_to: int = 0, file: FileRef | None = None
    ) -> None:
        file_id = file.file_id if file is not None else ""
        try:
            message_id = await conversation.send(self.client, to, text, reply_to, file_id)
        except NotLoggedIn as exc:
            await self._session_ended(describe(exc))
            return
        except ChatError as exc:
            self.out(describe(exc, str(to)))
            if isinstance(exc, NotAMember | NoSuchRoom) and to == self.peer:
                self._leave_room_on_screen()
            return
        if message_id in self.known:  # (its room's stream was quicker)
            return
        me = self.client.username or ""
        sent = Message(
            message_id, me, to.name, text, datetime.now(UTC), reply_to=reply_to, file=file
        )
        if isinstance(to, InRoom):
            sent = dataclasses.replace(sent, room=to.name)
        self._keep(sent)
        if to == self.peer:
            await self._show(sent)  # (with its id, for the commands on it)
        else:
            self.out(f"sent to {to} as message {message_id}")

    # -- commands on a message: its id, what its line starts with --

    def _message_args(self, rest: str, usage: str, *, text: bool = True) -> tuple[int, str] | None:
        """(id, the rest) of "ID TEXT"; None, with the usage said, if not that."""
        ref, _, more = rest.partition(" ")
        if not 0 < number(ref) <= MAX_ID or (text and not more.strip()):
            self.out(f"usage: {usage} (ID: the number a message's line starts with)")
            return None
        if self.client.username is None:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")
        return int(ref), more.strip()

    async def _on_message(
        self, verb: str, message_id: int, call: Awaitable[int], event: Message
    ) -> int | None:
        """Runs a call on a message; prints its event (`event`, whose id the
        answer gives) as the stream would, or the node's refusal. Returns
        the event's id (0: nothing changed), or None when refused."""
        try:
            event_id = await call
        except NotLoggedIn:
            raise
        except ChatError as exc:
            self.out(f"cannot {verb} message {message_id}: {describe(exc)}")
            return None
        if event_id and not self._once(event_id):
            self._show_event(dataclasses.replace(event, id=event_id))
        return event_id

    def _once(self, event_id: int) -> bool:
        """Whether event `event_id` was printed (and will not come again),
        else notes that it is now."""
        if event_id in self._printed:
            self._printed.discard(event_id)
            return True
        self._printed.add(event_id)
        return False

    def _event(self, kind: str, message_id: int, body: str = "") -> Message:
        """An event of mine on message `message_id` (its id to come)."""
        target = self.known.get(message_id)
        me = self.client.username or ""
        recipient, room = (target.recipient, target.room) if target is not None else ("", "")
        return Message(
            0, me, recipient, body, datetime.now(UTC), room, kind=kind, target_id=message_id
        )

    async def _cmd_edit(self, rest: str) -> None:
        args = self._message_args(rest, "/edit ID TEXT")
        if args is not None:
            mid, text = args
            event = self._event(EDIT, mid, text)
            await self._on_message("edit", mid, self.client.edit_message(mid, text), event)

    async def _delete_message(self, rest: str) -> None:
        args = self._message_args(rest, "/delete ID, or /delete account", text=False)
        if args is None:
            return
        mid = args[0]
        m = self.known.get(mid)
        what = f'message {mid} ("{quote(m)}")' if m is not None else f"message {mid}"
        if not await self._confirm(f"delete {what} for everyone?"):
            self.out("not deleted")
            return
        event = self._event(DELETE, mid)
        await self._on_message("delete", mid, self.client.delete_message(mid), event)

    async def _cmd_reply(self, rest: str) -> None:
        args = self._message_args(rest, "/reply ID TEXT")
        if args is None:
            return
        mid, text = args
        m = self.known.get(mid)
        to = of_message(m, self.client.username) if m is not None else self.peer
        if to is None:
            self.out(f"message {mid} is not on this screen: /chat to its conversation first")
            return
        await self._send(to, text, reply_to=mid)

    async def _cmd_react(self, rest: str) -> None:
        await self._reaction(rest, remove=False)

    async def _cmd_unreact(self, rest: str) -> None:
        await self._reaction(rest, remove=True)

    async def _reaction(self, rest: str, *, remove: bool) -> None:
        """/react adds, /unreact takes back: each is the same whatever was
        there (a retry, or a command typed twice, changes nothing more)."""
        command = "/unreact" if remove else "/react"
        args = self._message_args(rest, f"{command} ID EMOJI")
        if args is None:
            return
        mid, typed = args
        emoji = emoji_named(typed)
        if emoji is None:
            listed = ", ".join(f"{e} ({names[0]})" for e, (_, names) in NAMES.items())
            self.out(f"{typed!r} is no reaction: one of {listed}")
            return
        call = self.client.unreact(mid, emoji) if remove else self.client.react(mid, emoji)
        event = self._event(UNREACT if remove else REACT, mid, emoji)
        verb = "take back a reaction on" if remove else "react to"
        if await self._on_message(verb, mid, call, event) == 0:
            self.out(
                f"you had no {emoji} on message {mid}"
                if remove
                else f"you reacted {emoji} to message {mid} already"
            )

    def _shown_messages(self) -> list[Message]:
        """The shown conversation's messages this terminal knows, newest
        first (what the completion offers)."""
        me, peer = self.client.username, self.peer
        shown = [m for m in self.known.values() if of_message(m, me) == peer]
        return sorted(shown, key=lambda m: -m.id)[:30]

    async def _cmd_logout(self, rest: str) -> None:
        if self.client.username is None:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")
        await self._stop_receiver()
        await self._flush_read()
        await self.client.logout()
        self.peer = None
        self.out("logged out")

    async def _cmd_password(self, rest: str) -> None:
        if self.client.username is None:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")
        old = await self._ask_password("current password: ")
        new = await self._ask_new_password("new password: ")
        if new is None:
            return
        try:
            await self.client.change_password(old, new)
        except errors.WrongPassword:
            self.out("that is not your current password; nothing changed")
            return
        self.out("password changed; your other sessions have ended")

    async def _cmd_delete(self, rest: str) -> None:
        if rest != "account":
            await self._delete_message(rest)
            return
        me = self.client.username
        if me is None:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")
        if not await self._confirm(f"delete the account {me} for good?"):
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
                if m.event:
                    if not self._once(m.id):
                        self._show_event(m)
                    continue
                if m.id in self.known:
                    continue
                self._keep(m)
                if self.typists.said(m, self.client.username):
                    self._redraw()
                await self._show(m, incoming=True)
                if m.sender not in self.users:
                    self.users.add(m.sender)
                if of_message(m, self.client.username) == self.peer:
                    self._read_soon(m)
        except NotLoggedIn:
            await self._session_ended("your session ended; /login NAME to continue")
        except Unavailable:
            self.out("no chatd node answers; new messages will show after the next /login")

    def _keep(self, m: Message) -> None:
        """`m` is on the screen: known, for quotes, events and completion."""
        self.known[m.id] = m
        if len(self.known) > KNOWN_MAX + KNOWN_MAX // 10:  # (the oldest tenth goes)
            for old in sorted(self.known)[: len(self.known) - KNOWN_MAX]:
                del self.known[old]

    async def _show(
        self, m: Message, incoming: bool = False, where: Conversation | None = None
    ) -> None:
        """Prints a message's lines (a reply's quote of what it answers,
        fetched when not known here)."""
        me = self.client.username
        other = where or of_message(m, me)
        replied = self.known.get(m.reply_to) if m.reply_to else None
        if m.reply_to and replied is None:
            with contextlib.suppress(ChatError):
                replied = await conversation.message(self.client, other, m.reply_to)
            if replied is not None:
                self._keep(replied)
        new = incoming and other != self.peer
        new_in = f" in {other}" if new and isinstance(other, InRoom) else ""
        if m.sender != me:
            await self.profiles.fetch(self.client, [m.sender])
        label = self.profiles.label(m.sender)
        lines = message_lines(m, me, replied=replied, new=new, new_in=new_in, label=label)
        for line in lines:
            self.out(line)
        if m.file is not None and not m.deleted:
            indent = " " * (len(str(m.id)) + 1)
            self.out(f"{indent}{file_line(m.file)} \N{EM DASH} /download {m.id} [PATH]")

    def _show_event(self, m: Message) -> None:
        """An edit, deletion or reaction, as one line naming the message;
        the message, if known here, brought up to date."""
        me = self.client.username
        target = self.known.get(m.target_id)
        after = applied(target, m) if target is not None else None
        if after is not None:
            self.known[after.id] = after
        self.out(event_line(m, target, me, self.peer, after))

    def _read_soon(self, m: Message) -> None:
        """Marks the current conversation read up to `m` shortly (one marker
        for a burst of messages)."""
        self._last_seen = m
        if self._reading is None or self._reading.done():

            async def later() -> None:
                await asyncio.sleep(0.5)
                if self._last_seen is not None:
                    await self._mark_read([self._last_seen])

            self._reading = asyncio.create_task(later())

    async def _flush_read(self) -> None:
        """A marker still waiting (the screen showed it) is set now."""
        task, self._reading = self._reading, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._last_seen is not None:
                await self._mark_read([self._last_seen])

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
        """Stops the tasks of a session: its deliveries and its room watch."""
        for task in (self._receiver, self._watcher, self._presence):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._receiver = self._watcher = self._presence = None
        self.typists = Typists()
        self._search = None

    async def _session_ended(self, why: str) -> None:
        """The node ended the session (an operator logged the user out or
        disabled the account, the account was deleted, or it expired): this
        terminal forgets it, and says so in its prompt too."""
        if self.client.username is None:
            self.out(why)
            return
        await self._stop_receiver()
        await self.client.forget_session()
        self.peer = None
        self.out(why)

    # -- typing notices, read receipts --

    def typing_line(self) -> str:
        """ "bob is typing…" in the conversation shown ("": nobody is)."""
        return self.typists.line(self.peer, asyncio.get_running_loop().time())

    def _redraw(self) -> None:
        self.session.app.invalidate()  # (nothing while no prompt runs)

    def _typed(self, buffer: Buffer) -> None:
        """The line being typed changed: a message to the conversation shown
        (not a command, nor the answer to a question) tells them I type
        (the library sends one frame every few seconds at most)."""
        text, where = buffer.text, self.peer
        if not text.strip() or text.startswith("/") or where is None:
            return
        if self.client.username is None or self.session.message != self.prompt:
            return
        task = asyncio.create_task(self._send_typing(where))
        self._typing_calls.add(task)
        task.add_done_callback(self._typing_calls.discard)

    async def _send_typing(self, where: Conversation) -> bool:
        with contextlib.suppress(ChatError):  # (best effort: a notice may be lost)
            if isinstance(where, InRoom):
                return await self.client.typing(room=where.name)
            return await self.client.typing(peer=where.name)
        return False

    async def _watch_presence(self) -> None:
        """Typing notices (shown by the prompt until they expire) and live
        receipts (a line once a reader passes my last message shown here)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ChatError):
            async for e in self.client.events():
                if isinstance(e, Typing):
                    self.typists.typing(e)
                    self._redraw()
                    loop.call_at(e.until + 0.05, self._redraw)
                else:
                    self._receipt(e)

    def _receipt(self, r: Receipt) -> None:
        where = receipt_where(r)
        if where != self.peer:
            return  # (/seen tells, there)
        mine = newest_mine(list(self.known.values()), self.client.username, where)
        if self._seen.passed(r, mine):
            self.out(f"  seen by {r.username}" + (" (/seen: the others)" if r.room else ""))

    def _here(self) -> Conversation | None:
        """The conversation shown (None, said so, when there is none)."""
        if self.client.username is None:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")
        if self.peer is None:
            self.out("choose someone to talk to first: /chat NAME")
        return self.peer

    async def _cmd_seen(self, rest: str) -> None:
        where = self._here()
        if where is None:
            return
        if isinstance(where, InRoom):
            receipts = await self.client.list_receipts(room=where.name)
        else:
            receipts = await self.client.list_receipts(peer=where.name)
        if not receipts:
            self.out(
                f"no read receipts in {where}: the others share none, or you do not (/receipts on)"
            )
            return
        mine = newest_mine(list(self.known.values()), self.client.username, where)
        for r in receipts:
            self.out(receipt_line(r, mine))

    async def _cmd_receipts(self, rest: str) -> None:
        if rest == "":
            shares = await self.client.shares_receipts()
            self.out(f"read receipts {'on' if shares else 'off'} (/receipts on|off)")
            return
        if rest not in ("on", "off"):
            self.out("usage: /receipts [on|off]")
            return
        await self.client.share_receipts(rest == "on")
        self.out(
            "read receipts on: others see how far you have read, and you theirs"
            if rest == "on"
            else "read receipts off: no one sees how far you have read, nor you theirs"
        )

    # -- search --

    async def _cmd_search(self, rest: str) -> None:
        scope = search_scope(rest)
        if scope is None:
            self.out("usage: /search [#ROOM|@NAME] WORDS")
            return
        self._search = (*scope, 0)
        await self._search_page()

    async def _cmd_more(self, rest: str) -> None:
        if self._search is None:
            self.out("no more results: /search WORDS first")
            return
        await self._search_page()

    async def _search_page(self) -> None:
        """Prints the next page of the last search, as the message lines."""
        assert self._search is not None
        query, peer, room, before = self._search
        me = self.client.username
        try:
            page = await self.client.search_messages(query, peer=peer, room=room, before=before)
        except NotLoggedIn:
            raise
        except ChatError as exc:
            self._search = None
            self.out(describe(exc, peer or (str(InRoom(room)) if room else "")))
            return
        where = f" with {peer}" if peer else f" in {InRoom(room)}" if room else ""
        if not page.messages:
            self.out(f'nothing{" more" if before else ""} found for "{query}"{where}')
        today = datetime.now().astimezone().strftime("%Y-%m-%d")
        for m in page.messages:
            self.out(found_line(m, me, today))
        if page.next_before:
            self._search = (query, peer, room, page.next_before)
            self.out("/more: older results")
        else:
            self._search = None

    async def _cmd_find(self, prefix: str) -> None:
        if self.client.username is None:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")
        users = await self.client.search_users(prefix)
        self.users |= {u.name for u in users}
        if not users:
            self.out(f"no user's name starts with {prefix!r}")
        for u in users:
            self.out(f"  {u.name:<32} {'online' if u.online else 'offline'}")

    # -- rooms: invitations and removals --

    async def _watch_rooms(self) -> None:
        """Lists the user's rooms every few seconds and tells what others
        changed: an invitation, a removal (the node sends no event for
        them). The first listing tells the invitations pending."""
        while True:
            edits = self._room_edits
            try:
                listed = await self.client.rooms()
            except NotLoggedIn:
                return  # (the receiver tells)
            except ChatError:  # (no node answers: the status line tells; try again)
                await asyncio.sleep(ROOM_WATCH_S)
                continue
            if edits == self._room_edits:  # (else: listed before the user's own change)
                changes = room_changes(self.rooms, listed)
                for line in said(changes, lambda r: f"/join {r}"):
                    self.out(line)
                self.rooms = {r.name: r for r in listed}
                if any(InRoom(r.name) == self.peer for r in changes.gone if r.joined):
                    self._leave_room_on_screen()
            await asyncio.sleep(ROOM_WATCH_S)

    def _leave_room_on_screen(self) -> None:
        """The room on screen is one the user is no longer in (removed, or
        the room deleted): the terminal leaves it, and says so."""
        room, self.peer = self.peer, None  # (before the line: the prompt shown with it)
        self.out(f"left {room}: /chat NAME or /chat #ROOM to talk again")

    def _known(self, room: str, *, joined: bool, topic: str = "") -> None:
        """What the user did to a room here, so that the watch does not tell
        it back (joined False: it left)."""
        self._room_edits += 1
        if self.rooms is None:
            return
        if not joined:
            self.rooms.pop(room, None)
            return
        was = self.rooms.get(room)
        self.rooms[room] = (
            dataclasses.replace(was, joined=True)
            if was is not None
            else Room(room, topic, self.client.username or "", 1, 0, True, True)
        )


def main(args: argparse.Namespace) -> int:
    try:
        credentials_of(args)
    except TlsError as exc:
        print(f"chatd chat: error: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        client = ChatClient(args.server, retry_for=args.retry_for, **tls_options(args))
        # SIGTERM, and SIGHUP (the terminal closed), end the client as /quit
        # does: the session closed, the terminal's modes restored
        stop = asyncio.current_task()
        assert stop is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await Terminal(client).run(args.user)

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(run())
    return 0
