"""The checks of single fields read from the cluster wire: each returns the
value, or raises `WireError` (a ValueError) for one the core's types, or
the store, cannot hold:

- numbers (indexes, counts, commit indexes, probes, membership sequence
  numbers) are within 0..2**63-1 (SQLite's INTEGER; a protobuf uint64 goes
  to 2**64-1); epochs are within 0..2**62, so that elections counting up
  from the highest epoch a peer may send still fit (a node takes epoch + 1
  when it wins);
- node ids match `chatd.config.NODE_ID_RE` (what `--node-id` accepts; a
  generated id is 12 hex digits); addresses are what
  `chatd.config.is_node_address` accepts (HOST:PORT, port 1..65535, at most
  262 characters; `--advertise` is held to the same).

What a whole message must be is the translation's (chatd.server.cluster.wire).
"""

from __future__ import annotations

from collections.abc import Iterable

from chatd.config import NODE_ID_RE, is_node_address
from chatd.server.errors import WireError

MAX_INT = 2**63 - 1  # SQLite INTEGER; every number the store keeps is below it
MAX_EPOCH = 2**62


def number(value: int, what: str, top: int = MAX_INT) -> int:
    v = int(value)
    if not 0 <= v <= top:
        raise WireError(f"{what} {v} is outside 0..{'2**63-1' if top == MAX_INT else '2**62'}")
    return v


def epoch(value: int, what: str) -> int:
    """An epoch: at most 2**62, so that counting up from any epoch a peer
    may send still fits SQLite's INTEGER for 2**62 more elections."""
    return number(value, what, MAX_EPOCH)


def node_id(value: str, what: str, *, empty: bool = False) -> str:
    """A node id; "" only where the field may be unset (`empty`)."""
    if value == "" and empty:
        return value
    if not NODE_ID_RE.fullmatch(value):
        raise WireError(f"{what} {show(value)} is not a node id ({NODE_ID_RE.pattern})")
    return value


def address(value: str, what: str) -> str:
    if not is_node_address(value):
        raise WireError(f"{what} {show(value)} is not a HOST:PORT address")
    return value


def ids(values: Iterable[str], what: str, limit: int) -> frozenset[str]:
    """At most `limit` node ids, none twice."""
    listed = list(values)
    if len(listed) > limit:
        raise WireError(f"{what}: {len(listed)} ids, more than {limit}")
    for v in listed:
        node_id(v, what)
    unique = frozenset(listed)
    if len(unique) != len(listed):
        raise WireError(f"{what}: an id is listed twice")
    return unique


def show(value: str) -> str:
    """A field's value for an error message: quoted, and cut short."""
    return repr(value if len(value) <= 70 else value[:64] + "...")
