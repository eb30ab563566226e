"""What the chat rules allow: the node's limits (ChatLimits), the bounds of
a request and of an answer, and the checks of a request's fields: pure
functions (property-tested), each raising RequestRefused for what it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class ChatLimits:
    """What the chat rules allow: each field is the node's setting of that
    name (chatd.config.Config; node.py copies them by name, and
    tests/test_settings.py checks the defaults agree). The send rate is
    enforced with a ratelimit.RateLimiter."""

    min_password_length: int = 8
    max_message_chars: int = 4096
    session_ttl: float = 30 * 24 * 3600.0
    password_hash_cost: int = 14  # scrypt N = 2**cost
    send_rate: float = 100.0  # Sends a second per user (0: no limit)
    send_burst: int = 200
    max_streams_per_user: int = 16
    max_room_members: int = 1000  # joined or invited
    max_rooms_per_user: int = 100  # joined (before protocol 3: or invited)
    account_rate: float = 20.0  # accounts an hour per client address (0: no limit)
    room_rate: float = 30.0  # rooms created an hour per user (chatd.server.chat.room_rates)
    invite_rate: float = 60.0  # invitations a minute per user
    room_write_rate: float = 20.0  # other room writes and read markers a second per user
    max_invitations: int = 100  # unanswered, per user: a new one drops the oldest
    first_frame_timeout: float = 5.0  # a Connect stream's open frame comes by then
    max_unopened_streams: int = 16  # Connect streams before their open frame, per address


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


def check_request_id(request_id: str) -> None:
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise RequestRefused(
            Code.INVALID_ARGUMENT, f"request_id is longer than {MAX_REQUEST_ID_CHARS} characters"
        )
