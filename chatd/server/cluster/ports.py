"""What the replication driver and the cluster transport ask of each other,
and of the live readers, as Protocols: the driver (replication) and the
transport (peers) each name the other's part here instead of importing it,
so neither imports the other; build.py builds both and hands each to the other.
"""

from __future__ import annotations

from typing import Protocol

from chatd.core.types import Message, Pos
from chatd.server.storage.store import Store


class Driver(Protocol):
    """The replication driver, as the transport sees it: who this node is,
    and where the replies and failures of its calls go."""

    node_id: str
    store: Store
    tick_seconds: float

    @property
    def epoch(self) -> int: ...

    @property
    def rpc_timeout(self) -> float: ...

    def address_of(self, node: str) -> str | None: ...

    def step(self, msg: Message, payload: tuple[bytes, ...] = ()) -> None: ...

    def report_unreachable(self, peer: str) -> None: ...

    def snapshot_sent(self, dst: str, pos: Pos | None) -> None: ...


class Transport(Protocol):
    """The cluster transport, as the driver sees it: what it sends."""

    def send(self, msg: Message) -> None: ...

    def send_snapshot(self, dst: str) -> None: ...

    def close_links(self) -> None: ...

    def seed_failures(self) -> list[str]:
        """How each seed (--join) failed when last asked, e.g. "127.0.0.1:50052
        refuses connections" (those that answered are not listed)."""
        ...


class Streams(Protocol):
    """The live readers' streams (the chat layer's hub): ended when this
    node's master changes."""

    def end_all(self, reason: str) -> None: ...
