"""Editing, deleting and reacting to a message, over Chat
(chatd.server.chat.rules): the request's checks and the rate here, who may
act on which message in the apply (chatd.server.storage.edits), so that it
is decided on the state the entry meets.

Each is one log entry of protocol 4 (refused with UNAVAILABLE, "being
upgraded", while a member speaks 3) and counts against the user's
--send-rate as a Send does. A message id that is not a positive int32
answers NO_SUCH_MESSAGE, as an unknown one does, and as one the caller may
not read: nothing tells a caller whether another conversation's message
exists. Each answers the id of the event it made; a reaction already there
(or taken back where there is none) makes none and answers 0.
"""

from __future__ import annotations

from collections.abc import Callable

from chatd.contract import MAX_REACTIONS, REACTIONS, Code
from chatd.proto import log_pb2
from chatd.server.chat.limits import INT32_MAX, check_message
from chatd.server.chat.rules import Chat
from chatd.server.errors import RequestRefused


def check_message_id(message_id: int) -> None:
    if not 0 < message_id <= INT32_MAX:
        raise RequestRefused(Code.NO_SUCH_MESSAGE)


def check_reaction(emoji: str) -> None:
    if emoji not in REACTIONS:
        raise RequestRefused(Code.INVALID_REACTION, "a reaction is one of " + " ".join(REACTIONS))


class EditOps:
    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    def _actor(self, session_id: str, message_id: int, check: Callable[[], None]) -> str:
        """The caller's name, once the session, the id, the request's own
        `check` and the rate hold (in that order: a refused request spends
        nothing of the rate)."""
        s = self.chat.session(session_id)
        check_message_id(message_id)
        check()
        self.chat.take_send(s.uid)
        return s.username

    async def edit(self, session_id: str, message_id: int, body: str) -> int:
        actor = self._actor(session_id, message_id, lambda: check_message(body, self.chat.limits))
        window_us = int(self.chat.limits.edit_window * 1_000_000)
        op = log_pb2.EditMessage(actor=actor, message_id=message_id, body=body, window_us=window_us)
        return (await self.chat._submit(log_pb2.Entry(edit_message=op))).message_id

    async def delete(self, session_id: str, message_id: int) -> int:
        actor = self._actor(session_id, message_id, lambda: None)
        op = log_pb2.DeleteMessage(actor=actor, message_id=message_id)
        return (await self.chat._submit(log_pb2.Entry(delete_message=op))).message_id

    async def react(self, session_id: str, message_id: int, emoji: str, remove: bool) -> int:
        actor = self._actor(session_id, message_id, lambda: check_reaction(emoji))
        op = log_pb2.React(
            actor=actor,
            message_id=message_id,
            emoji=emoji,
            remove=remove,
            max_per_user=MAX_REACTIONS,
        )
        return (await self.chat._submit(log_pb2.Entry(react=op))).message_id
