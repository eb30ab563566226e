"""The chat rules: sessions, and each client operation on accounts and messages.

Every operation checks its input first (chatd.server.chat.limits) and raises
RequestRefused (changing nothing) when it is refused; a change is made only
by submitting one log entry to the writer. This module knows neither gRPC
nor replication: the writer it is given decides where and when entries are
committed. The room operations are in room_ops, a user's streams in streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from chatd.contract import USERNAME_RE, Code
from chatd.proto import log_pb2
from chatd.server import protocol
from chatd.server.chat.hub import Hub
from chatd.server.chat.limits import (
    CHAT_PAGE_DEFAULT,
    CHAT_PAGE_MAX,
    GET_MESSAGES_LIMIT,
    GET_MESSAGES_MAX_BYTES,
    INT32_MAX,
    MAX_ACK_IDS,
    MAX_PASSWORD_CHARS,
    ChatLimits,
    check_file_id,
    check_message,
    check_password,
    check_request_id,
    check_username,
    newest_within,
)
from chatd.server.chat.passwords import hash_password, new_session_id, session_hash, verify_password
from chatd.server.chat.ratelimit import RateLimiter
from chatd.server.chat.room_rates import RoomRates
from chatd.server.chat.throttle import LoginThrottle
from chatd.server.errors import ClusterUpgrading, OverLimit, RequestRefused
from chatd.server.storage.rooms import Room
from chatd.server.storage.store import Applied, Session, Store, StoredMessage, User, now_us
from chatd.words import counted

T = TypeVar("T")
log = logging.getLogger(__name__)


class Writer(Protocol):
    """Where entries go: the node's group-commit writer (and replication)."""

    visible_message_id: int

    async def submit(self, entry: log_pb2.Entry) -> Applied: ...

    def enqueue(self, entry: log_pb2.Entry) -> asyncio.Future[Applied]: ...

    def writable(self) -> bool:
        """Whether this node takes writes now (it is the master)."""


class Chat:
    """Every client operation, over a store (reads) and a writer (changes)."""

    def __init__(
        self,
        store: Store,
        writer: Writer,
        hub: Hub,
        limits: ChatLimits,
        hasher: ThreadPoolExecutor,
        reader: ThreadPoolExecutor,
    ) -> None:
        self.store = store
        self.writer = writer
        self.hub = hub
        self.limits = limits
        self._hasher = hasher
        self._reader = reader
        self._touching: set[bytes] = set()
        self._send_limit = RateLimiter(limits.send_rate, limits.send_burst)
        self.throttle = LoginThrottle(limits.account_rate)
        self.room_rates = RoomRates(limits.room_rate, limits.invite_rate, limits.room_write_rate)

    @property
    def _ttl_us(self) -> int:
        return int(self.limits.session_ttl * 1_000_000)

    async def _submit(self, entry: log_pb2.Entry) -> Applied:
        return written(await self._enqueue(entry))

    def _enqueue(self, entry: log_pb2.Entry) -> asyncio.Future[Applied]:
        """The writer's future of `entry` (its Applied, whatever the code:
        `written` says what it means); ClusterUpgrading at once if a member
        cannot take it yet."""
        version = self.store.cluster_version
        if not protocol.writable(entry, version):
            raise ClusterUpgrading(
                "the cluster is being upgraded: not every node can take this yet "
                f"(it needs protocol {protocol.VERSION}); try again once every node is upgraded"
            )
        protocol.fit(entry, version)
        return self.writer.enqueue(entry)

    async def _hash(self, who: tuple[str, str], fn: Callable[..., T], *args: object) -> T:
        """`who`: (client address, username of a login or "")."""
        held = self.throttle.start_hash(*who)  # refused at once when too many wait
        hashing = asyncio.get_running_loop().run_in_executor(self._hasher, fn, *args)
        # the slot is held until the hash is done, not until the caller stops
        # waiting: a login whose caller cancels it still costs its hash
        hashing.add_done_callback(lambda _: self.throttle.end_hash(held))
        return await asyncio.shield(hashing)

    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, *args)

    def session(self, session_id: str) -> Session:
        """The live session with this id, or RequestRefused(14)."""
        s = self.store.sessions.get(session_hash(session_id)) if session_id else None
        if s is None:
            raise RequestRefused(Code.NOT_LOGGED_IN)
        now = now_us()
        if now - s.last_used_us > self._ttl_us:
            raise RequestRefused(Code.NOT_LOGGED_IN, "not logged in: the session has expired")
        if now - s.last_used_us > self._touch_every_us:
            self._touch(session_hash(session_id))
        return s

    @property
    def _touch_every_us(self) -> int:
        return min(self._ttl_us // 10, 3600 * 1_000_000)

    def _touch(self, h: bytes) -> None:
        """Records (replicated, in the background) that a session was used.
        Not on a slave (a stream it serves is carried to the master, which
        records it): the write could only fail there."""
        if h in self._touching or not self.writer.writable():
            return
        self._touching.add(h)
        entry = log_pb2.Entry(touch_session=log_pb2.TouchSession(session_hash=h))
        task = asyncio.get_running_loop().create_task(self.writer.submit(entry))
        task.add_done_callback(lambda t: self._touched(h, t))

    def _touched(self, h: bytes, task: asyncio.Task[Applied]) -> None:
        self._touching.discard(h)
        if not task.cancelled() and task.exception() is not None:
            log.debug("session touch not recorded: %s", task.exception())

    async def expire_idle_sessions(self) -> int:
        """Ends the sessions idle for longer than the TTL; returns how many."""
        idle_since = now_us() - self._ttl_us
        if not any(s.last_used_us < idle_since for s in self.store.sessions.values()):
            return 0
        entry = log_pb2.Entry(expire_sessions=log_pb2.ExpireSessions(idle_since_us=idle_since))
        return len((await self.writer.submit(entry)).ended_sessions)

    async def create_account(self, username: str, password: str, client: str = "") -> None:
        """`client`: the caller's address, for the per-address throttle."""
        check_username(username)
        check_password(password, self.limits)
        taken = self.store.find_user(username)
        if taken == username:
            raise RequestRefused(Code.USERNAME_TAKEN)
        if taken is not None:
            raise RequestRefused(
                Code.USERNAME_TAKEN,
                f"username already exists as {taken}: names must differ in more than case",
            )
        self.throttle.take_account(client, time.monotonic())
        cost = self.limits.password_hash_cost
        hashed = await self._hash((client, ""), hash_password, password, cost)
        # (at protocol 1 the entry goes without unique_casefold: then the check
        # above alone stands, and two names differing in case may be created)
        entry = log_pb2.CreateAccount(username=username, password_hash=hashed, unique_casefold=True)
        await self._submit(log_pb2.Entry(create_account=entry))

    async def _password_checked(
        self, name: str, found: str | None, password: str, client: str, missing: Code
    ) -> User:
        """The account `found` whose password this is, throttled as a login
        (`name`: what the throttles count; RequestRefused `missing` when there
        is no such account, WRONG_PASSWORD when it is not the password)."""
        delay = self.throttle.check_login(name, client, time.monotonic())
        if delay:
            await asyncio.sleep(delay)
        user = self.store.users.get(found) if found is not None else None
        # counted as failed until it succeeds (a caller that gives up
        # waiting has still made an attempt)
        self.throttle.failed_login(name, client, time.monotonic())
        if user is None:
            raise RequestRefused(missing)
        if not await self._hash((client, name), verify_password, password, user.password_hash):
            raise RequestRefused(Code.WRONG_PASSWORD)
        self.throttle.logged_in(user.username, client, time.monotonic())  # (attempt refunded)
        return user

    async def login(self, username: str, password: str, client: str = "") -> str:
        """`client`: the caller's address, for the failed-login throttles."""
        check_username(username)
        if len(password) > MAX_PASSWORD_CHARS:
            raise RequestRefused(Code.INVALID_PASSWORD)
        # the throttles count a name as the account it finds ("ALICE" logs
        # in as "alice", and counts as alice)
        found = self.store.find_user(username)
        user = await self._password_checked(
            found or username.casefold(), found, password, client, Code.NO_SUCH_USER
        )
        if user.disabled:  # (said only to one who knows the password)
            raise RequestRefused(Code.ACCOUNT_DISABLED)
        session_id = new_session_id()
        op = log_pb2.CreateSession(
            username=user.username,
            session_hash=session_hash(session_id),
            password_hash=user.password_hash,  # checked again at apply (not at protocol 1)
        )
        await self._submit(log_pb2.Entry(create_session=op))
        return session_id

    async def change_password(self, session_id: str, old: str, new: str, client: str = "") -> None:
        """The caller's new password, given the old one (throttled as a
        login is); the user's other sessions end, this one stays."""
        s = self.session(session_id)
        check_password(new, self.limits)
        if len(old) > MAX_PASSWORD_CHARS:
            raise RequestRefused(Code.WRONG_PASSWORD)
        name = s.username
        try:
            await self._password_checked(name, name, old, client, Code.NOT_LOGGED_IN)
        except RequestRefused as exc:
            if exc.code == Code.WRONG_PASSWORD:
                raise RequestRefused(exc.code, "incorrect password (the old one)") from None
            raise
        cost = self.limits.password_hash_cost
        hashed = await self._hash((client, name), hash_password, new, cost)
        op = log_pb2.SetPassword(
            username=s.username, password_hash=hashed, keep_session=session_hash(session_id)
        )
        await self._submit(log_pb2.Entry(set_password=op))

    async def logout(self, session_id: str) -> None:
        self.session(session_id)
        op = log_pb2.EndSession(session_hash=session_hash(session_id))
        await self._submit(log_pb2.Entry(end_session=op))

    async def delete_account(self, session_id: str) -> None:
        s = self.session(session_id)
        await self._submit(log_pb2.Entry(delete_account=log_pb2.DeleteAccount(username=s.username)))

    def find_user(self, name: str) -> str | None:
        """The live account a name from a request names ("Bob" finds "bob"),
        or None. A name outside the username rules names no account, though
        its casefold may equal one's ("\u212a" folds to "k")."""
        return self.store.find_user(name) if USERNAME_RE.fullmatch(name) else None

    def room_named(self, name: str) -> Room:
        """The room of that name (in any case), or RequestRefused(NO_SUCH_ROOM)."""
        room = self.store.rooms.find(name) if USERNAME_RE.fullmatch(name) else None
        if room is None:
            raise RequestRefused(Code.NO_SUCH_ROOM)
        return room

    async def send(self, session_id: str, *message: Any) -> int:
        """`start_send`'s message id, once written."""
        return written(await self.start_send(session_id, *message)).message_id

    def start_send(
        self,
        session_id: str,
        to: str,
        body: str,
        request_id: str,
        room: str = "",
        reply_to: int = 0,
        file_id: str = "",
    ) -> asyncio.Future[Applied]:
        """A message to the user `to`, or with `room` to that room (the
        membership rules are the apply's, chatd.server.storage.room_rules),
        answering message `reply_to` (0: none), carrying the sender's file
        `file_id` ("": none; with one, the body may be empty). Checked at
        once (raising what refuses it); the writer's future of its entry,
        whose `written` is the outcome (a Connect stream: no task a send)."""
        s = self.session(session_id)
        self.take_send(s.uid)
        entry = self._send_entry(s.username, to, body, request_id, room, reply_to, file_id)
        return self._enqueue(entry)

    def take_send(self, uid: int) -> None:
        """One of the user's message writes (a send, an edit, a deletion, a
        reaction): OverLimit past --send-rate. Per user, not per session:
        more sessions must not mean more writes."""
        if not self._send_limit.allow(uid, time.monotonic()):
            raise OverLimit(
                f"more than {counted(self.limits.send_rate, 'message')} a second from this user"
            )

    async def send_as(self, sender: str, *message: Any) -> Applied:
        """A message from the account `sender` (a session's, or an
        operator's resend of a rolled-back one): checked, written, applied.
        `reply_to`: the message it answers (the apply checks it is of the
        same conversation)."""
        return await self._submit(self._send_entry(sender, *message))

    def _send_entry(
        self,
        sender: str,
        to: str,
        body: str,
        request_id: str,
        room: str = "",
        reply_to: int = 0,
        file_id: str = "",
    ) -> log_pb2.Entry:
        """The checked entry of a send (RequestRefused if it cannot be one)."""
        check_request_id(request_id)
        if file_id:
            check_file_id(file_id)
        if body or not file_id:
            check_message(body, self.limits)
        if not 0 <= reply_to <= INT32_MAX:
            raise RequestRefused(Code.NO_SUCH_MESSAGE)
        op = log_pb2.SendMessage(
            sender=sender, body=body, request_id=request_id, reply_to=reply_to, file_id=file_id
        )
        if room:
            op.room = self.room_named(room).name
        else:
            recipient = self.find_user(to)  # "Bob" reaches "bob"
            if recipient is None:
                raise RequestRefused(Code.NO_SUCH_RECIPIENT)
            op.recipient = recipient
        return log_pb2.Entry(send_message=op)

    async def get_messages(self, session_id: str) -> list[StoredMessage]:
        s = self.session(session_id)
        # an empty inbox is answered without a log entry (every written
        # message is committed before its Send is answered, so it shows here)
        if not await self._read(self.store.has_undelivered, s.uid):
            raise RequestRefused(Code.NO_MESSAGES)
        limit = GET_MESSAGES_LIMIT
        if self.store.cluster_version < 2:  # no byte bound: so few that the longest fit
            longest = 4 * self.limits.max_message_chars + 2 * 4 * 32 + 32  # body, names
            limit = max(1, min(GET_MESSAGES_LIMIT, GET_MESSAGES_MAX_BYTES // longest))
        op = log_pb2.TakeUndelivered(
            username=s.username, limit=limit, max_bytes=GET_MESSAGES_MAX_BYTES
        )
        messages = (await self._submit(log_pb2.Entry(take_undelivered=op))).messages
        if not messages:
            raise RequestRefused(Code.NO_MESSAGES)
        return messages

    async def acknowledge(self, session_id: str, message_ids: list[int]) -> None:
        s = self.session(session_id)
        if len(message_ids) > MAX_ACK_IDS:
            raise RequestRefused(
                Code.INVALID_ARGUMENT, f"at most {MAX_ACK_IDS} message ids at once"
            )
        if any(m <= 0 for m in message_ids):
            raise RequestRefused(Code.INVALID_ARGUMENT, "message ids are positive")
        # Only ids that are the caller's undelivered messages go into the log:
        # made-up or repeated ones would otherwise make a replicated entry of
        # up to 10,000 ids each on every node for nothing (an acknowledge
        # flood). The entry's apply checks the recipient again.
        ids = await self._read(self.store.undelivered_among, s.uid, sorted(set(message_ids)))
        if not ids:
            return
        op = log_pb2.MarkDelivered(username=s.username, message_ids=ids)
        await self._submit(log_pb2.Entry(mark_delivered=op))

    async def get_chat(
        self, session_id: str, peer: str, before_id: int, limit: int
    ) -> list[StoredMessage]:
        s = self.session(session_id)
        if before_id < 0 or limit < 0:
            raise RequestRefused(Code.INVALID_ARGUMENT, "before_message_id and limit are >= 0")
        if not USERNAME_RE.fullmatch(peer):
            raise RequestRefused(Code.NO_SUCH_RECIPIENT)
        peer = self.find_user(peer) or peer  # "Bob" is "bob"'s conversation
        peer_uid = await self._read(self.store.last_uid_named, peer)
        if peer_uid is None:
            raise RequestRefused(Code.NO_SUCH_RECIPIENT)
        limit = min(limit or CHAT_PAGE_DEFAULT, CHAT_PAGE_MAX)
        visible = self.writer.visible_message_id + 1
        before = min(before_id, visible) if before_id else visible
        page = await self._read(self.store.conversation_before, s.uid, peer_uid, before, limit)
        if not page:
            raise RequestRefused(Code.NO_MESSAGES)
        return newest_within(page, GET_MESSAGES_MAX_BYTES)

    def list_users(self) -> list[tuple[str, bool]]:
        return [(name, self.hub.online(name)) for name in sorted(self.store.users)]


def written(applied: Applied) -> Applied:
    """An entry's outcome: `applied`, or RequestRefused with its code."""
    if applied.code != Code.OK:
        raise RequestRefused(applied.code)
    return applied
