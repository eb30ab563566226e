"""An operator's account administration (`chatd users`, NodeAdmin.ManageUser),
at the master, over Chat: reads from the caches and the committed tables,
changes as replicated log entries (chatd.server.storage.accounts), each logged.
"""

from __future__ import annotations

import logging

from chatd.contract import Code
from chatd.proto import cluster_pb2, log_pb2
from chatd.server.chat.limits import check_password
from chatd.server.chat.passwords import hash_password
from chatd.server.chat.rules import Chat
from chatd.server.errors import DEFAULT_MESSAGES, RequestRefused, ServerError
from chatd.words import counted

log = logging.getLogger(__name__)

Action = cluster_pb2.UserAdminRequest.Action


def _refusal(exc: RequestRefused | ServerError) -> str:
    if isinstance(exc, RequestRefused):
        return exc.message or DEFAULT_MESSAGES.get(exc.code, str(exc.code))
    return f"not done: {exc}"


class UserAdmin:
    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    def _infos(self, names: list[str]) -> list[cluster_pb2.AccountInfo]:
        """The cached facts of these accounts: one pass over the sessions."""
        store = self.chat.store
        used: dict[int, list[int]] = {}
        for s in store.sessions.values():
            used.setdefault(s.uid, []).append(s.last_used_us)
        out = []
        for name in names:
            user = store.users[name]
            mine = used.get(user.uid, [])
            out.append(
                cluster_pb2.AccountInfo(
                    username=name,
                    disabled=user.disabled,
                    sessions=len(mine),
                    online=self.chat.hub.online(name),
                    last_active_us=max(mine, default=0),
                )
            )
        return out

    def _user(self, username: str) -> str:
        found = self.chat.find_user(username)
        if found is None:
            raise RequestRefused(Code.NO_SUCH_USER, f"{username or '(no name)'}: no such user")
        return found

    async def handle(self, r: cluster_pb2.UserAdminRequest) -> cluster_pb2.UserAdminResponse:
        try:
            return await self._handle(r)
        except (RequestRefused, ServerError) as exc:
            return cluster_pb2.UserAdminResponse(ok=False, error=_refusal(exc))

    async def resend(self, r: cluster_pb2.ResendRequest) -> cluster_pb2.ResendResponse:
        """A rolled-back message written again (`chatd rollback resend`), as
        a new message from its sender; at most once per request id."""
        try:
            if not r.request_id:  # without one, a retried call would write it twice
                raise RequestRefused(Code.INVALID_ARGUMENT, "a resend needs a request_id")
            sender = self._user(r.sender)
            applied = await self.chat.send_as(sender, r.recipient, r.body, r.request_id, r.room)
        except (RequestRefused, ServerError) as exc:
            code = exc.code if isinstance(exc, RequestRefused) else 0
            return cluster_pb2.ResendResponse(ok=False, error=_refusal(exc), error_code=code)
        if not applied.duplicate:
            log.info(
                "operator: re-sent a message from %s to %s as message %d",
                sender,
                f"room {r.room}" if r.room else r.recipient,
                applied.message_id,
            )
        return cluster_pb2.ResendResponse(
            ok=True, message_id=applied.message_id, duplicate=applied.duplicate
        )

    async def _handle(self, r: cluster_pb2.UserAdminRequest) -> cluster_pb2.UserAdminResponse:
        chat = self.chat
        if r.action == Action.LIST:
            names = sorted(
                (n for n in chat.store.users if r.pattern.casefold() in n.casefold()),
                key=str.casefold,
            )
            return cluster_pb2.UserAdminResponse(ok=True, accounts=self._infos(names))
        name = self._user(r.username)
        if r.action == Action.SHOW:
            [info] = self._infos([name])
            counts = await chat._read(chat.store.account_counts, name)
            if counts is not None:
                info.created_us = counts.created_us
                info.disabled_since_us = counts.disabled_since_us
                info.messages_received = counts.messages_received
                info.undelivered = counts.undelivered
                info.rooms = counts.rooms
            return cluster_pb2.UserAdminResponse(ok=True, accounts=[info])
        if r.action in (Action.DISABLE, Action.ENABLE):
            disabled = r.action == Action.DISABLE
            entry = log_pb2.Entry(
                set_disabled=log_pb2.SetDisabled(username=name, disabled=disabled)
            )
            what = "disabled" if disabled else "enabled"
        elif r.action == Action.DELETE:
            entry = log_pb2.Entry(delete_account=log_pb2.DeleteAccount(username=name))
            what = "deleted"
        elif r.action == Action.LOGOUT:
            entry = log_pb2.Entry(end_user_sessions=log_pb2.EndUserSessions(username=name))
            what = "logged out everywhere"
        elif r.action == Action.RESET_PASSWORD:
            check_password(r.password, chat.limits)
            hashed = await chat._hash(
                ("operator", ""), hash_password, r.password, chat.limits.password_hash_cost
            )
            entry = log_pb2.Entry(
                set_password=log_pb2.SetPassword(username=name, password_hash=hashed)
            )
            what = "given a new password"
        else:
            raise RequestRefused(Code.INVALID_ARGUMENT, f"unknown action {r.action}")
        applied = await chat._submit(entry)
        ended = len(applied.ended_sessions)
        log.info("operator: account %s %s (%s ended)", name, what, counted(ended, "session"))
        return cluster_pb2.UserAdminResponse(ok=True, sessions_ended=ended)
