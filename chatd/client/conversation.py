"""The conversation a front end shows: with one user (`Peer`) or in a room
(`InRoom`). Both front ends (chatd.client.terminal, chatd.client.gui) hold
a `Conversation`, never a bare string; the user types and sees a room as
"#name" (`/chat #team`), which `parse` (or `room_named`, where only a room
can be meant) and `str()` translate: no other place adds or strips the "#".

Imports: chatd.client.api, chatd.client.model and chatd.client.rooms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chatd.client.api import ChatClient
from chatd.client.model import Message
from chatd.client.rooms import RoomChanges

ROOM_MARK = "#"  # what a room's name starts with where the user types or sees it


@dataclass(frozen=True, slots=True)
class Peer:
    """The conversation with the user `name`."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class InRoom:
    """The conversation in the room `name` (without the "#")."""

    name: str

    def __str__(self) -> str:
        return ROOM_MARK + self.name


Conversation = Peer | InRoom


def parse(text: str) -> Conversation | None:
    """What the user typed or picked: "#room", or a user (None: neither)."""
    if text.startswith(ROOM_MARK):
        return room_named(text)
    return Peer(text) if text else None


def room_named(text: str) -> InRoom | None:
    """The room the user named where only a room can be meant (`/join`,
    `/room`): "#team" or "team" (None: no name)."""
    name = text.removeprefix(ROOM_MARK)
    return InRoom(name) if name else None


def of_message(m: Message, me: str | None) -> Conversation:
    """The conversation a message belongs to: its room, or the other user."""
    if m.room:
        return InRoom(m.room)
    return Peer(m.recipient if m.sender == me else m.sender)


async def history(
    client: ChatClient, c: Conversation, *, before: int = 0, limit: int = 50
) -> list[Message]:
    """One page of the conversation (newest before `before`), oldest first."""
    if isinstance(c, InRoom):
        return await client.room_history(c.name, before=before, limit=limit)
    return await client.get_chat(c.name, before=before, limit=limit)


async def send(
    client: ChatClient, c: Conversation, text: str, reply_to: int = 0, file_id: str = ""
) -> int:
    """Sends `text` there (answering message `reply_to`, 0: none; carrying
    my uploaded file `file_id`, "": none); the message id."""
    if isinstance(c, InRoom):
        return await client.send("", text, room=c.name, reply_to=reply_to, file_id=file_id)
    return await client.send(c.name, text, reply_to=reply_to, file_id=file_id)


async def message(client: ChatClient, c: Conversation, message_id: int) -> Message | None:
    """Message `message_id` of the conversation, as it is now (None: not
    there, or deleted from history's view)."""
    page = await history(client, c, before=message_id + 1, limit=1)
    return page[0] if page and page[0].id == message_id else None


async def mark_read(client: ChatClient, c: Conversation, upto: int) -> None:
    """I have read the conversation up to message `upto`."""
    if isinstance(c, InRoom):
        await client.mark_read(upto, room=c.name)
    else:
        await client.mark_read(upto, peer=c.name)


def said(changes: RoomChanges, join_hint: Callable[[str], str]) -> list[str]:
    """The changes in words; `join_hint(room)` tells how to join there."""
    lines = [
        f"you are invited to {InRoom(r.name)}"
        + (f" ({r.topic})" if r.topic else "")
        + f": {join_hint(r.name)}"
        for r in changes.invited
    ]
    lines += [
        f"you are no longer in {InRoom(r.name)}"
        if r.joined
        else f"your invitation to {InRoom(r.name)} ended"
        for r in changes.gone
    ]
    return lines
