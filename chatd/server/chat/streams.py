"""A user's streams of messages (Subscribe, Connect): the bound on how many
a user holds (--max-streams-per-user, on every node together), and what each
delivers: the backlog from the store, then the live messages of the hub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from chatd.contract import Code
from chatd.server.chat.limits import BACKLOG_PAGE
from chatd.server.chat.passwords import session_hash
from chatd.server.chat.rules import Chat
from chatd.server.errors import (
    OverLimit,
    RequestRefused,
    SessionEnded,
    StreamDropped,
    SubscriberTooSlow,
)
from chatd.server.storage.store import StoredMessage


def _bounded(chat: Chat, username: str) -> None:
    """OverLimit when the user holds the most streams allowed."""
    if chat.hub.streams_of(username) >= chat.limits.max_streams_per_user:
        raise OverLimit(f"at most {chat.limits.max_streams_per_user} streams per user")


def attend(chat: Chat, username: str) -> None:
    """A slave serves one more of the user's streams (its deliveries):
    counted here, the master, against the user's stream limit."""
    _bounded(chat, username)
    chat.hub.attend(username)


async def subscribe(
    chat: Chat, session_id: str, after_id: int, live_only: bool = False, events: bool = False
) -> AsyncIterator[StoredMessage]:
    """Every message to the caller with id > after_id: backlog, then live;
    with `events`, the events of the caller's conversations among them
    (edits, deletions, reactions: chatd.server.storage.edits).

    The subscription opens before the backlog is read, so a message
    committed meanwhile is in the queue if it is not in the backlog; ids
    at or below the last one sent are skipped, so none repeats. Messages
    that become visible without being published (a new master's
    inherited ones) are read from the store when the hub says so. Ends with
    SessionEnded, StreamDropped or SubscriberTooSlow.
    """
    s = chat.session(session_id)
    if after_id < 0:
        raise RequestRefused(Code.INVALID_ARGUMENT, "after_message_id is >= 0")
    _bounded(chat, s.username)
    sub = chat.hub.open(s.username, session_hash(session_id), events)
    try:
        # live only: what is visible now counts as read
        last = max(after_id, chat.writer.visible_message_id) if live_only else after_id
        backlog = not live_only
        while True:
            while backlog:  # page by page; an overflow means: read on
                sub.stale = False
                upto = chat.writer.visible_message_id
                page = await chat._read(
                    chat.store.inbox_after, s.uid, last, upto, BACKLOG_PAGE, events
                )
                for m in page:
                    yield m
                    last = m.id
                if len(page) == BACKLOG_PAGE:
                    continue
                if sub.overflowed:
                    sub.reset_overflow()
                elif not sub.stale:
                    backlog = False
            await sub.wait()  # live
            if sub.ended is not None:
                raise StreamDropped(sub.ended) if sub.retryable else SessionEnded(sub.ended)
            if sub.overflowed:
                raise SubscriberTooSlow(
                    f"subscriber fell {sub.capacity} messages behind; resume after {last}"
                )
            if sub.stale:  # read what became visible unpublished, then the queue
                backlog = True
                continue
            while sub.queue:
                m = sub.queue.popleft()
                if m.id > last:
                    yield m
                    last = m.id
    finally:
        chat.hub.close(sub)
