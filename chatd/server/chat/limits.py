"""What the chat rules allow: the node's limits (ChatLimits), the bounds of
a request and of an answer, and the checks of a request's fields: pure
functions (property-tested), each raising RequestRefused for what it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from chatd.config import Config
from chatd.contract import USERNAME_RE, USERNAME_RULE, Code
from chatd.server.errors import RequestRefused
from chatd.server.storage.store import StoredMessage, message_bytes

MAX_PASSWORD_CHARS = 1024
MAX_REQUEST_ID_CHARS = 128
MAX_ACK_IDS = 10_000
GET_MESSAGES_LIMIT = 1000
# A GetMessages answer stays under gRPC's default 4 MiB receive limit with
# room to spare: messages it takes are marked delivered, so an answer the
# client cannot receive would lose them (the rest wait for the next call).
GET_MESSAGES_MAX_BYTES = 3 << 20
CHAT_PAGE_DEFAULT = 50
CHAT_PAGE_MAX = 500
BACKLOG_PAGE = 500
INT32_MAX = 2**31 - 1
_SETTING: dict[str, Any] = {f.name: f.default for f in fields(Config)}


@dataclass(frozen=True)
class ChatLimits:
    """What the chat rules allow: each field is the node's setting of that
    name, whose default is the setting's (chatd.config.Config, where each
    is declared and documented; node.py copies them by name). The send rate is
    enforced with a ratelimit.RateLimiter."""

    min_password_length: int = _SETTING["min_password_length"]
    max_message_chars: int = _SETTING["max_message_chars"]
    session_ttl: float = _SETTING["session_ttl"]
    password_hash_cost: int = _SETTING["password_hash_cost"]
    send_rate: float = _SETTING["send_rate"]
    send_burst: int = _SETTING["send_burst"]
    max_streams_per_user: int = _SETTING["max_streams_per_user"]
    max_room_members: int = _SETTING["max_room_members"]
    max_rooms_per_user: int = _SETTING["max_rooms_per_user"]
    account_rate: float = _SETTING["account_rate"]
    room_rate: float = _SETTING["room_rate"]
    invite_rate: float = _SETTING["invite_rate"]
    room_write_rate: float = _SETTING["room_write_rate"]
    max_invitations: int = _SETTING["max_invitations"]
    edit_window: float = _SETTING["edit_window"]
    max_file_bytes: int = _SETTING["max_file_bytes"]
    max_user_file_bytes: int = _SETTING["max_user_file_bytes"]
    upload_rate: float = _SETTING["upload_rate"]
    first_frame_timeout: float = _SETTING["first_frame_timeout"]
    max_unopened_streams: int = _SETTING["max_unopened_streams"]


def newest_within(page: list[StoredMessage], max_bytes: int) -> list[StoredMessage]:
    """The newest messages of `page` (oldest first) within `max_bytes`
    (store.message_bytes each; at least one): a page
    any default gRPC client can receive. The caller pages on from the
    oldest one returned."""
    total = 0
    for n, m in enumerate(reversed(page)):
        total += message_bytes(m.sender, m.recipient, m.body)
        if total > max_bytes and n > 0:
            return page[len(page) - n :]
    return page


# -- validation: pure functions, property-tested --


def check_username(username: str) -> None:
    if not USERNAME_RE.fullmatch(username):
        raise RequestRefused(
            Code.INVALID_USERNAME,
            f"invalid username: {USERNAME_RULE}",
        )


def check_password(password: str, limits: ChatLimits) -> None:
    if not limits.min_password_length <= len(password) <= MAX_PASSWORD_CHARS:
        raise RequestRefused(
            Code.INVALID_PASSWORD,
            f"invalid password: use {limits.min_password_length} to {MAX_PASSWORD_CHARS} "
            "characters",
        )


def check_message(body: str, limits: ChatLimits) -> None:
    if not 1 <= len(body) <= limits.max_message_chars:
        raise RequestRefused(
            Code.INVALID_MESSAGE,
            f"invalid message: use 1 to {limits.max_message_chars} characters",
        )


def check_file_id(file_id: str) -> None:
    """A file id is 32 lowercase hex digits (chatd.server.chat.file_ops);
    any other answers as an unknown one does."""
    if len(file_id) != 32 or not all(c in "0123456789abcdef" for c in file_id):
        raise RequestRefused(Code.NO_SUCH_FILE)


def check_request_id(request_id: str) -> None:
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise RequestRefused(
            Code.INVALID_ARGUMENT, f"request_id is longer than {MAX_REQUEST_ID_CHARS} characters"
        )
