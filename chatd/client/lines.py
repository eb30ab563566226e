"""The terminal client's lines for messages and for the events that change
them (chatd.client.terminal prints them).

A message's line starts with its reference, the message id: the one number
that names it on every screen (the other party's, another device's, the
history after a restart, the event lines), so "/edit 123" means the same
message wherever it is typed. A per-conversation #n would have to count
the whole conversation (no call says where a message stands in it), would
move as older pages load, and would differ between the two parties.

    123 [12:01] bob (Bob Smith): hello (edited)  👍 2 ❤️ 1
        ↪ reply to bob: hello
    124 [12:02] you: hi!
    125 [12:03] bob: [deleted]

Imports: chatd.client.conversation, chatd.client.model and chatd.client.shown."""

from __future__ import annotations

from chatd.client.conversation import Conversation, InRoom, Peer, of_message
from chatd.client.model import DELETE, EDIT, REACT, UNREACT, Message
from chatd.client.shown import quote, reactions_line, who

REPLY_MARK = "\N{RIGHTWARDS ARROW WITH HOOK}"


def stamp(m: Message) -> str:
    return m.time.astimezone().strftime("%H:%M")


def message_lines(
    m: Message,
    me: str | None,
    *,
    replied: Message | None = None,
    new: bool = False,
    new_in: str = "",
    label: str = "",
) -> list[str]:
    """The lines of a message: the quote of the one it answers (`replied`,
    when known), then the message with its state; `new`: one that came in
    elsewhere than the conversation shown (`new_in`: " in #room"); `label`:
    how the sender is named, if not by the username ("bob (Bob Smith)")."""
    lines = []
    if m.reply_to:
        said = (
            f"{who(replied.sender, me)}: {quote(replied)}"
            if replied is not None
            else f"message {m.reply_to}"
        )
        lines.append(f"{' ' * (len(str(m.id)) + 1)}{REPLY_MARK} reply to {said}")
    body = "[deleted]" if m.deleted else m.body
    edited = " (edited)" if m.edited and not m.deleted else ""
    reactions = reactions_line(m)
    state = f"{edited}  {reactions}" if reactions else edited
    sender = label or m.sender
    if new:
        lines.append(f"{m.id} [{stamp(m)}] new message{new_in} from {sender}: {body}{state}")
    else:
        lines.append(f"{m.id} [{stamp(m)}] {'you' if m.sender == me else sender}: {body}{state}")
    return lines


def where_of(event: Message, target: Message | None, me: str | None) -> Conversation | None:
    """The conversation an event's message is in (None: not known here: the
    event of mine on a message to me whose sender this terminal never saw)."""
    if target is not None:
        return of_message(target, me)
    if event.room:
        return InRoom(event.room)
    if event.sender != me:
        return Peer(event.sender)
    return Peer(event.recipient) if event.recipient != me else None


def event_line(
    event: Message,
    target: Message | None,
    me: str | None,
    shown: Conversation | None,
    after: Message | None = None,
) -> str:
    """One line for an edit, deletion or reaction: who did what to which
    message (its reference, and a quote of it when known: `target`, as it
    was before the event), and where, if not in the conversation `shown`;
    a reaction's line ends with the message's reactions `after` it."""
    named = f"message {event.target_id}"
    if target is not None and not target.deleted:
        named += f' ("{quote(target, 30)}")'
    where = where_of(event, target, me)
    if where is not None and where != shown:
        named += f" in {where}" if isinstance(where, InRoom) else f" with {where}"
    done = {
        EDIT: f"edited {named}: {event.body}",
        DELETE: f"deleted {named}",
        REACT: f"reacted {event.body} to {named}",
        UNREACT: f"took back {event.body} on {named}",
    }.get(event.kind, f"{event.kind} {named}")
    if event.kind in (REACT, UNREACT) and after is not None:
        done += f": {reactions_line(after) or 'no reactions'}"
    return f"[{stamp(event)}] {who(event.sender, me)} {done}"
