"""What the front ends show of the others' typing and reading, and the
lines of a search's results (chatd.client.terminal, chatd.client.gui).

`Typists` holds who is typing where, until when (the event loop's time):
the notice goes at its expiry or when that person's message arrives there.
`Seen` tells once, per message of mine, that someone read past it.

Imports: chatd.client.conversation, chatd.client.model, chatd.client.shown."""

from __future__ import annotations

from chatd.client.conversation import ROOM_MARK, Conversation, InRoom, Peer, of_message
from chatd.client.model import Message, Receipt, Typing
from chatd.client.shown import who

ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"


def typing_where(t: Typing) -> Conversation:
    """The conversation a typing notice is about (to me: with its sender)."""
    return InRoom(t.room) if t.room else Peer(t.sender)


def receipt_where(r: Receipt) -> Conversation:
    """The conversation a live receipt is about (to me: with its reader)."""
    return InRoom(r.room) if r.room else Peer(r.username)


class Typists:
    """Who is typing in which conversation, until when."""

    def __init__(self) -> None:
        self._until: dict[Conversation, dict[str, float]] = {}

    def typing(self, t: Typing) -> None:
        self._until.setdefault(typing_where(t), {})[t.sender] = t.until

    def said(self, m: Message, me: str | None) -> bool:
        """`m` arrived: its sender no longer types there. Whether a notice went."""
        typists = self._until.get(of_message(m, me), {})
        return typists.pop(m.sender, None) is not None

    def line(self, where: Conversation | None, now: float) -> str:
        """ "bob is typing…" for the conversation `where` ("" when nobody is)."""
        if where is None:
            return ""
        typists = self._until.get(where, {})
        for gone in [name for name, until in typists.items() if until <= now]:
            del typists[gone]
        names = sorted(typists)
        if not names:
            return ""
        if len(names) == 1:
            return f"{names[0]} is typing{ELLIPSIS}"
        if len(names) == 2:
            return f"{names[0]} and {names[1]} are typing{ELLIPSIS}"
        return f"{len(names)} people are typing{ELLIPSIS}"


class Seen:
    """Tells once that a reader passed my newest message of a conversation:
    in a one-to-one conversation, that the other read it; in a room, the
    first member who did (a line for each member would flood the screen
    of a big room: the others are for /seen)."""

    def __init__(self) -> None:
        self._told: set[tuple[int, str]] = set()  # (my message, its reader; "": a room's)

    def passed(self, r: Receipt, newest_mine: int) -> bool:
        """Whether receipt `r` newly reads past my message `newest_mine`
        (0: none here), noted so that it is told once."""
        told = (newest_mine, "" if r.room else r.username)
        if not newest_mine or r.upto < newest_mine or told in self._told:
            return False
        if len(self._told) > 10_000:
            self._told.clear()
        self._told.add(told)
        return True


def newest_mine(messages: list[Message], me: str | None, where: Conversation) -> int:
    """The id of my newest message in `where` among `messages` (0: none)."""
    return max(
        (m.id for m in messages if m.sender == me and not m.event and of_message(m, me) == where),
        default=0,
    )


def receipt_line(r: Receipt, mine: int) -> str:
    """A reader's line in /seen: how far they read, and whether past my last."""
    seen = " (your last message too)" if mine and r.upto >= mine else ""
    return f"  {r.username:<32} read up to message {r.upto}{seen}"


def search_scope(text: str) -> tuple[str, str, str] | None:
    """(words, peer, room) of what the user typed to search: "WORDS", or
    "#ROOM WORDS" or "@NAME WORDS" to keep to one conversation (None:
    no words, or a bare "#" or "@")."""
    first, _, words = text.strip().partition(" ")
    peer = room = ""
    if first[:1] == ROOM_MARK:
        room = first[len(ROOM_MARK) :]
    elif first[:1] == "@":
        peer = first[1:]
    else:
        words = text
    if not words.strip() or (first[:1] in (ROOM_MARK, "@") and len(first) == 1):
        return None
    return words.strip(), peer, room


def found_line(m: Message, me: str | None, today: str) -> str:
    """A search result: id, time (with the date unless `today`), where, who, text."""
    local = m.time.astimezone()
    when = (
        local.strftime("%H:%M")
        if local.strftime("%Y-%m-%d") == today
        else (local.strftime("%Y-%m-%d %H:%M"))
    )
    where = of_message(m, me)
    edited = " (edited)" if m.edited else ""
    return f"{m.id} [{when}] ({where}) {who(m.sender, me)}: {m.body}{edited}"
