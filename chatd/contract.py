"""What a client and a node agree on beyond the protos (API.md): the error
codes, the username rules, the metadata key that names the master, the keepalive policy every
channel and the node's server share, a client channel's options, and the
metadata that carries the cluster secret (tools and nodes send it).

Both sides import this module; it imports neither, so the client library
never loads the server's code.
"""

from __future__ import annotations

import enum
import os
import re
from typing import Any


class Code(enum.IntEnum):
    """The client API's `error_code` values: part of the wire contract."""

    OK = 0
    INVALID_ARGUMENT = 2
    INVALID_USERNAME = 3
    INVALID_PASSWORD = 4
    INVALID_MESSAGE = 5
    USERNAME_TAKEN = 8
    NO_SUCH_USER = 9
    WRONG_PASSWORD = 10
    NOT_LOGGED_IN = 14
    NO_SUCH_RECIPIENT = 15
    NO_MESSAGES = 17
    NOT_MASTER = 18
    # rooms
    NO_SUCH_ROOM = 20
    ROOM_NAME_TAKEN = 21
    NOT_A_MEMBER = 22  # not in the room (or, to join, not invited)
    NOT_ALLOWED = 23  # the room's admins (or its creator) only; a message's author only
    INVALID_ROOM = 24  # a room name or topic that is not allowed
    ROOM_LIMIT = 25  # over a room limit: members per room, rooms per user
    ACCOUNT_DISABLED = 26  # an operator disabled the account: logins are refused
    # edits, deletions, reactions, replies (protocol 4)
    NO_SUCH_MESSAGE = 27  # none the caller may read (or it was deleted): never says which
    EDIT_WINDOW_PASSED = 28  # the message is older than the node's --edit-window
    INVALID_REACTION = 29  # not one of REACTIONS, or more than MAX_REACTIONS a message
    # files and profiles (protocol 4)
    NO_SUCH_FILE = 30  # none the caller may read (or send, or show): never says which
    FILE_TOO_LARGE = 31  # over --max-file-bytes, or the user's --max-user-file-bytes
    INVALID_FILE = 32  # an upload that is not whole, or an image that cannot be read
    INVALID_PROFILE = 33  # a display name that is too long or holds control characters


# The reactions a user may put on a message (React's emoji), and how many
# distinct ones one user may put on one message.
REACTIONS = (
    "\N{THUMBS UP SIGN}",
    "\N{HEAVY BLACK HEART}\N{VARIATION SELECTOR-16}",
    "\N{FACE WITH TEARS OF JOY}",
    "\N{FACE WITH OPEN MOUTH}",
    "\N{CRYING FACE}",
    "\N{PARTY POPPER}",
    "\N{EYES}",
    "\N{WHITE HEAVY CHECK MARK}",
)
MAX_REACTIONS = 3


# Usernames: what a node accepts (and a client checks before it asks for a
# password): 1 to 32 ASCII letters, digits, "_", "." and "-".
USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
USERNAME_RULE = "use 1 to 32 of A-Z a-z 0-9 _ . -"


def valid_username(name: str) -> bool:
    return USERNAME_RE.fullmatch(name) is not None


# An UNAVAILABLE answer from a node that is up and refuses the call for now
# for a reason of its own (fewer copies in sync than --min-in-sync): this
# trailing metadata key says so, with the details the reason. A client does
# not count the node as lost: it retries there, and shows that reason when
# it gives up. (A slave relaying the master's answer passes it on.)
REFUSED_HEADER = "chatd-refused"

# A stream a node relays to the master, ended because the master stopped
# answering (UNAVAILABLE): trailing metadata naming that master's address
# (as MASTER_HEADER did), so that the client reports the node it lost, not
# the one that relayed, which is alive.
MASTER_LOST_HEADER = "chatd-master-lost"
# Every answer of the ClientAccount service carries the master's address
# under this key (trailing metadata; initial metadata on Subscribe), so a
# client goes straight there next time.
MASTER_HEADER = "chatd-master"
# A RESOURCE_EXHAUSTED answer's trailing metadata: milliseconds after which
# to retry, when the node knows.
RETRY_AFTER_HEADER = "chatd-retry-after-ms"
# On a call a slave relays to the master (over the peer listener, behind
# the secret): the address its client called from, for the per-address
# throttles. Ignored on the client listener.
CLIENT_HEADER = "chatd-client"
# On a NodeAdmin call a node carries on to the master: it is not carried on
# again (two nodes that each take the other for the master do not bounce it).
FORWARDED_HEADER = "chatd-forwarded"
# On a Connect a slave carries to the master with its deliveries served by
# the slave itself (sends and acknowledgements only): the session's user
# counts as online on the master while it is open. Peer listener only.
DELIVERED_HEADER = "chatd-delivered-elsewhere"

# Keepalive, one policy for every channel (the client library's, the nodes'
# to each other, the relay's to the master) and for the node's server. A
# gRPC server counts a ping that comes sooner than
# grpc.http2.min_ping_interval_without_data_ms after the previous one, with
# no data or headers sent by the server in between, as a strike (unset, that
# minimum is 5 minutes: every keepalive ping would be one), and after
# grpc.http2.max_ping_strikes strikes in a row it closes the connection
# (GOAWAY ENHANCE_YOUR_CALM "too_many_pings"), ending every call on it: a
# client's idle stream, and on a slave every stream it relays to the master
# at once. Pings come from two sources on a client: keepalive (every
# KEEPALIVE_TIME_MS) and flow-control probes (grpc.http2.bdp_probe, on by
# default), which are off: they tune flow-control windows for bulk transfers
# over long links, chat frames are small, and others see them strike
# (grpc/grpc-java#7302). So only keepalive pings go out, five times further
# apart than the server permits.
#
# gRPC ignores a channel argument it does not know, without a word: every
# "grpc." option string here is checked against the installed gRPC's own
# (tests/test_keepalive.py).
#
# CHATD_KEEPALIVE_MS replaces the 10 s period (in nodes and clients alike,
# read once, at import): the tests hold connections idle for several
# periods with a short one.
KEEPALIVE_ENV = "CHATD_KEEPALIVE_MS"
KEEPALIVE_LIMITS_MS = (100, 3_600_000)


def _keepalive_ms() -> int:
    text = os.environ.get(KEEPALIVE_ENV, "").strip()
    if not text:
        return 10_000
    low, high = KEEPALIVE_LIMITS_MS
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{KEEPALIVE_ENV}={text!r}: milliseconds from {low} to {high} are needed")
    return int(text)


KEEPALIVE_TIME_MS = _keepalive_ms()
KEEPALIVE_TIMEOUT_MS = 5_000  # an unanswered ping closes the connection after this
PING_PERMITTED_EVERY_MS = KEEPALIVE_TIME_MS // 5  # the server's minimum
PING_STRIKES = 2  # gRPC's default, stated here so the policy is in one place
KEEPALIVE_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    # keep pinging a connection whose only call is a stream that receives
    # (Subscribe): by default a client stops after two pings without sending
    # data, and a dead peer behind an idle stream would go unnoticed
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.bdp_probe", 0),
]
KEEPALIVE_SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", PING_PERMITTED_EVERY_MS),
    ("grpc.http2.max_ping_strikes", PING_STRIKES),
]

# A node named by a DNS name (chatd2:50052, a pod's name) moves to another
# address when its container restarts. A channel whose connection fails asks
# its resolver for the name again, but gRPC answers from its cache until
# grpc.dns_min_time_between_resolutions_ms has passed since the last lookup
# (30 s by default: a restarted container went unreached for 25-45 s).
DNS_REFRESH_MS = 1_000
# Reconnects are retried often (a failover takes tens of milliseconds), and a
# failed connection looks the name up again within DNS_REFRESH_MS.
RECONNECT_CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.dns_min_time_between_resolutions_ms", DNS_REFRESH_MS),
]
# A client's channel to a node.
CLIENT_CHANNEL_OPTIONS = [*RECONNECT_CHANNEL_OPTIONS, *KEEPALIVE_CHANNEL_OPTIONS]


# Every cluster RPC (node to node, and the operators' NodeAdmin calls)
# carries the cluster secret under this metadata key.
SECRET_HEADER = "x-chatd-secret"


def status_named(number: int) -> Any:
    """The grpc.StatusCode a SendResult's `status` number stands for (UNKNOWN
    for a number that is none); grpc is imported here, not at import time."""
    import grpc

    return next((c for c in grpc.StatusCode if c.value[0] == number), grpc.StatusCode.UNKNOWN)


def secret_metadata(secret: str | None) -> tuple[tuple[str, str], ...]:
    return ((SECRET_HEADER, secret),) if secret else ()
