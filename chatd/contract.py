"""What a client and a node agree on beyond the protos (API.md): the error
codes, the metadata key that names the master, a client channel's options,
and the metadata that carries the cluster secret (tools and nodes send it).

Both sides import this module; it imports neither, so the client library
never loads the server's code.
"""

from __future__ import annotations

import enum


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


# Every answer of the ClientAccount service carries the master's address
# under this key (trailing metadata; initial metadata on Subscribe), so a
# client goes straight there next time.
MASTER_HEADER = "chatd-master"

# A client's channel to a node. Reconnects are retried often (a failover
# takes tens of milliseconds); the keepalive pings must not come more often
# than a node accepts (its grpc.http2.min_recv_ping_interval_without_data_ms,
# 5 s), or the node closes the connection.
CLIENT_CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 5_000),
    ("grpc.keepalive_timeout_ms", 3_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


# Every cluster RPC (node to node, and the operators' NodeAdmin calls)
# carries the cluster secret under this metadata key.
SECRET_HEADER = "x-chatd-secret"


def secret_metadata(secret: str | None) -> tuple[tuple[str, str], ...]:
    return ((SECRET_HEADER, secret),) if secret else ()
