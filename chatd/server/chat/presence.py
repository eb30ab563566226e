"""Typing notices and read receipts: who may send a typing notice and who
sees it, each stream's bound on them, and the receipts a user may read and
share.

Typing is never written to the log: a notice reaches the event streams of
the conversation's other parties that are open on the master (a slave's
carried ones included, which the slave passes on), and is dropped when the
typer may not write there (a room not joined, an account that is not
live), when it is over its stream's bound (TypingGate) or its user's at
the master (all the user's streams together: the hub's), or when a
stream's event queue is full. It is never answered: a stray or late one (a member
who just left) is not the stream's error. Receipts are the read markers
(chatd.server.storage.delivery, receipts): each node tells its own streams
of a marker that moved when it applies the MarkRead.
"""

from __future__ import annotations

import time

from chatd.contract import USERNAME_RE, Code
from chatd.proto import log_pb2
from chatd.server.chat.events import TypingNotice
from chatd.server.chat.ratelimit import RateLimiter
from chatd.server.chat.rules import Chat
from chatd.server.errors import RequestRefused
from chatd.server.storage.store import conversation_key

TYPING_EXPIRES_MS = 6000  # a receiver shows "typing" this long, unless renewed
TYPING_EVERY_S = 1.0  # one notice per conversation per stream in this time
TYPING_RATE = 4.0  # notices per second per stream, all conversations together
TYPING_BURST = 8
TYPING_CONVERSATIONS = 64  # conversations a stream's gate remembers
# typing frames a stream may have dropped in a second before it is read no
# more until the second is over (gRPC's flow control then holds its client)
TYPING_DROPS_PER_S = 1000


class TypingGate:
    """One stream's bound on typing notices: a well-formed one (one of peer
    and room, a name of the username alphabet), at most one per
    conversation per TYPING_EVERY_S, and TYPING_RATE a second in all;
    the rest are dropped. A stream that goes on sending what is dropped is
    paused (`pause`): a flood costs its node a bounded share of its time."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], float] = {}
        self._rate = RateLimiter(TYPING_RATE, TYPING_BURST)
        self._second = 0.0  # the start of the second whose drops are counted
        self.dropped_now = 0

    def pause(self, now: float) -> float:
        """Seconds the stream's frames should go unread: past
        TYPING_DROPS_PER_S drops this second, until the second ends."""
        if self.dropped_now < TYPING_DROPS_PER_S or now - self._second >= 1.0:
            return 0.0
        return self._second + 1.0 - now

    def _drop(self, now: float) -> bool:
        if now - self._second >= 1.0:
            self._second, self.dropped_now = now, 0
        self.dropped_now += 1
        return False

    def allow(self, peer: str, room: str, now: float) -> bool:
        name = peer or room
        if bool(peer) == bool(room) or not USERNAME_RE.fullmatch(name):
            return self._drop(now)
        key = ("p" if peer else "r", name.casefold())
        last = self._last.get(key)
        if last is not None and now - last < TYPING_EVERY_S:
            return self._drop(now)
        if len(self._last) >= TYPING_CONVERSATIONS:
            self._last = {k: t for k, t in self._last.items() if now - t < TYPING_EVERY_S}
            if len(self._last) >= TYPING_CONVERSATIONS:
                return self._drop(now)
        if not self._rate.allow(None, now):
            return self._drop(now)
        self._last[key] = now
        return True


class Presence:
    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    def typing(self, session_id: str, peer: str, room: str) -> int:
        """Passes a typing notice (one its stream's gate let through) to the
        event streams here of those who should see it: the peer's, or every
        other joined member's of the room. How many streams were told (0:
        dropped, the caller may not write there)."""
        chat = self.chat
        try:
            s = chat.session(session_id)
        except RequestRefused:
            return 0
        if room:
            r = chat.store.rooms.find(room) if USERNAME_RE.fullmatch(room) else None
            me = r.members.get(s.uid) if r is not None else None
            if r is None or me is None or not me.joined:
                return 0
            to = [m.name for m in r.members.values() if m.joined and m.uid != s.uid]
            notice = TypingNotice(s.username, "", r.name, TYPING_EXPIRES_MS)
        else:
            name = chat.find_user(peer)
            if name is None or name == s.username:
                return 0
            to = [name]
            notice = TypingNotice(s.username, name, "", TYPING_EXPIRES_MS)
        return chat.hub.typing(notice, to, time.monotonic())

    async def receipts(
        self, session_id: str, peer: str, room: str
    ) -> tuple[bool, list[tuple[str, int]]]:
        """Whether the caller shares its receipts, and (username, upto) of
        how far each other party of the caller's conversation with `peer`,
        or of `room` (one it joined), has read it, by name; only those who
        share receipts, and none when the caller does not share its own.
        Neither peer nor room: the first alone."""
        chat = self.chat
        s = chat.session(session_id)
        if peer and room:
            raise RequestRefused(Code.INVALID_ARGUMENT, "one of peer and room, not both")
        if not peer and not room:
            return await chat._read(chat.store.shares_receipts, s.uid), []
        if room:
            r = chat.room_named(room)
            me = r.members.get(s.uid)
            if me is None or not me.joined:
                raise RequestRefused(Code.NOT_A_MEMBER)
            names = {m.uid: m.name for m in r.members.values() if m.joined and m.uid != s.uid}
            conv = r.conv
        else:
            name = chat.find_user(peer)
            if name is None:
                raise RequestRefused(Code.NO_SUCH_USER)
            uid = chat.store.users[name].uid
            names = {uid: name} if uid != s.uid else {}
            conv = conversation_key(s.uid, uid)
        rows = await chat._read(chat.store.receipts, s.uid, conv, sorted(names))
        shares = bool(rows) or await chat._read(chat.store.shares_receipts, s.uid)
        return shares, sorted(
            ((names[uid], upto) for uid, upto in rows), key=lambda r: r[0].casefold()
        )

    async def share_receipts(self, session_id: str, share: bool) -> None:
        """Whether the caller's receipts are shown to others (and others'
        to it); a setting that is already so writes nothing."""
        chat = self.chat
        s = chat.session(session_id)
        if await chat._read(chat.store.shares_receipts, s.uid) == share:
            return
        chat.room_rates.take("write", s.uid, time.monotonic())
        op = log_pb2.ShareReceipts(username=s.username, share=share)
        await chat._submit(log_pb2.Entry(share_receipts=op))
