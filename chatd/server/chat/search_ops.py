"""The search operations of the client API, over Chat (chatd.server.chat.rules):
the messages a caller may read that hold some words, and the accounts whose
name starts with a prefix.

A caller reads its one-to-one conversations (sender or recipient) and the
rooms it has joined, their whole history (as GetRoomHistory reads them; a
member who left or was removed reads none of them any more): the search
asks the index (chatd.server.storage.search) for the caller's own tokens
only, so it never looks at anything else. Narrowed to a room, the caller
not in it is told NOT_A_MEMBER (NO_SUCH_ROOM when there is none), as
GetRoomHistory tells it; narrowed to a peer, NO_SUCH_RECIPIENT when there
never was such an account, as GetChat.

The query is cut into words here (letters, digits, marks), each given to
the index as a quoted string: nothing of the query's text is FTS5 syntax.
It is bounded (MAX_QUERY_CHARS, MAX_QUERY_WORDS); one without a word is
INVALID_ARGUMENT. Results are newest first, at most SEARCH_PAGE_MAX, with
the id to page on from. Only committed messages the writer made visible are
found (the reads' bound, chatd.server.chat.rules).
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass

from chatd.contract import USERNAME_RE, Code
from chatd.server.chat.limits import GET_MESSAGES_MAX_BYTES
from chatd.server.chat.rules import Chat
from chatd.server.errors import RequestRefused
from chatd.server.storage import search
from chatd.server.storage.store import StoredMessage, conversation_key, message_bytes

SEARCH_PAGE_DEFAULT = 20
SEARCH_PAGE_MAX = 100
USERS_DEFAULT = 20
USERS_MAX = 100
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.-]{0,32}")


@dataclass(frozen=True, slots=True)
class Found:
    messages: list[StoredMessage]  # newest first
    next_before_id: int  # 0: no more


def words_of(query: str) -> list[str]:
    """The query's words, or RequestRefused(INVALID_ARGUMENT) saying why not."""
    if len(query) > search.MAX_QUERY_CHARS:
        raise RequestRefused(
            Code.INVALID_ARGUMENT, f"a search query is at most {search.MAX_QUERY_CHARS} characters"
        )
    words = search.query_words(query)
    if not words:
        raise RequestRefused(
            Code.INVALID_ARGUMENT, "a search query needs a word (letters or digits)"
        )
    if len(words) > search.MAX_QUERY_WORDS:
        raise RequestRefused(
            Code.INVALID_ARGUMENT, f"a search query is at most {search.MAX_QUERY_WORDS} words"
        )
    return words


def within_bytes(found: list[StoredMessage], max_bytes: int) -> list[StoredMessage]:
    """The first messages of `found` within `max_bytes` (at least one)."""
    total = 0
    for n, m in enumerate(found):
        total += message_bytes(m.sender, m.recipient, m.body)
        if total > max_bytes and n > 0:
            return found[:n]
    return found


class SearchOps:
    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    async def _scope(self, uid: int, peer: str, room: str) -> tuple[list[str], bool, int | None]:
        """The caller's tokens to match in the index, whether all of them
        must match (else one), and the conversation to keep to (or None)."""
        chat = self.chat
        if room:
            r = chat.room_named(room)
            me = r.members.get(uid)
            if me is None or not me.joined:
                raise RequestRefused(Code.NOT_A_MEMBER)
            return [f"r{r.id}"], False, None
        if peer:
            if not USERNAME_RE.fullmatch(peer):
                raise RequestRefused(Code.NO_SUCH_RECIPIENT)
            peer = chat.find_user(peer) or peer  # "Bob" is "bob"'s conversation
            peer_uid = await chat._read(chat.store.last_uid_named, peer)
            if peer_uid is None:
                raise RequestRefused(Code.NO_SUCH_RECIPIENT)
            tokens = sorted({f"u{uid}", f"u{peer_uid}"})
            return tokens, True, conversation_key(uid, peer_uid)
        rooms = chat.store.rooms
        joined = [rid for rid in rooms.of_user.get(uid, ()) if rooms.by_id[rid].members[uid].joined]
        return [f"u{uid}", *(f"r{rid}" for rid in sorted(joined))], False, None

    async def messages(
        self, session_id: str, query: str, peer: str, room: str, before_id: int, limit: int
    ) -> Found:
        chat = self.chat
        s = chat.session(session_id)
        if before_id < 0 or limit < 0:
            raise RequestRefused(Code.INVALID_ARGUMENT, "before_message_id and limit are >= 0")
        if peer and room:
            raise RequestRefused(Code.INVALID_ARGUMENT, "one of peer and room, or neither")
        words = words_of(query)
        tokens, every, conv = await self._scope(s.uid, peer, room)
        expression = search.match_expression(words, tokens, every)
        limit = min(limit or SEARCH_PAGE_DEFAULT, SEARCH_PAGE_MAX)
        visible = chat.writer.visible_message_id + 1
        before = min(before_id, visible) if before_id else visible
        rows = await chat._read(chat.store.search_messages, expression, before, conv, limit + 1)
        page = within_bytes(rows[:limit], GET_MESSAGES_MAX_BYTES)
        more = len(rows) > len(page)
        return Found(page, page[-1].id if more else 0)

    def users(self, session_id: str, prefix: str, limit: int) -> list[tuple[str, bool]]:
        """(name, online) of the live accounts whose name starts with
        `prefix` in any case, in name order (regardless of case)."""
        chat = self.chat
        chat.session(session_id)
        if limit < 0:
            raise RequestRefused(Code.INVALID_ARGUMENT, "limit is >= 0")
        if not _PREFIX_RE.fullmatch(prefix):
            raise RequestRefused(
                Code.INVALID_ARGUMENT,
                "a prefix is at most 32 of the username characters A-Z a-z 0-9 _ . -",
            )
        folded = prefix.casefold()
        names = (n for n in chat.store.users if n.casefold().startswith(folded))
        first = heapq.nsmallest(
            min(limit or USERS_DEFAULT, USERS_MAX), names, key=lambda n: (n.casefold(), n)
        )
        return [(name, chat.hub.online(name)) for name in first]
