"""A master's log batches, each encoded once for all the slaves it goes to.

The core sends every slave that has nothing in flight the same Append (the
same entries, commit index and flags: only its destination differs), so the
links (`chatd.server.cluster.peers`) share one encoding of it: the first
link to send a batch reads its entries and encodes the request, the others
write the same bytes. The log stream's requests are therefore written as
bytes (`open_stream`: a serializer that passes them through); a snapshot's
chunks, sent to one slave, are messages encoded as they are written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from chatd.core.types import Append, Pos
from chatd.proto import cluster_pb2 as pb
from chatd.server.cluster import wire

ACCEPT_UPDATES = "/SlaveService/AcceptUpdates"  # (as chatd.proto.cluster_pb2_grpc names it)
KEPT = 4  # encodings kept: the batch each slave is sent now, and a few before it

# everything of an Append its request carries (all of it but its destination)
Key = tuple[str, int, Pos, int, int, int, bool, int]


def _serialize(request: bytes | pb.AcceptUpdatesRequest) -> bytes:
    return request if isinstance(request, bytes) else request.SerializeToString()


def open_stream(channel: grpc.aio.Channel, metadata: Any) -> Any:
    """A log stream (`SlaveService.AcceptUpdates`) to write requests to, as
    bytes (`Batches.encoded`) or as messages."""
    call = channel.stream_stream(
        ACCEPT_UPDATES,
        request_serializer=_serialize,
        response_deserializer=pb.AcceptUpdatesResponse.FromString,
    )
    return call(metadata=metadata)  # type: ignore[call-arg]


class Batches:
    """The newest batches' encoded requests, by what each carries."""

    def __init__(self) -> None:
        # each batch's encoding, while it is being made too (its entries
        # may be read from the log, in the database thread meanwhile)
        self._kept: dict[Key, asyncio.Future[bytes]] = {}

    async def encoded(
        self, m: Append, entries: Callable[[Append], Awaitable[list[bytes]]]
    ) -> bytes:
        """The request carrying `m`, encoded; `entries` reads its entries
        (only when no other slave was sent the same batch)."""
        key = (m.src, m.epoch, m.prev, m.count, m.entry_epoch, m.commit, m.in_sync, m.echo)
        shared = self._kept.get(key)
        if shared is not None:
            if not shared.done():
                await asyncio.wait((shared,))
            if not shared.cancelled():  # (one that failed is made again here)
                return shared.result()
        made: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._kept[key] = made
        if len(self._kept) > KEPT:
            del self._kept[next(iter(self._kept))]
        try:
            data = wire.batch_to(m, await entries(m) if m.count else []).SerializeToString()
        except BaseException:
            made.cancel()
            if self._kept.get(key) is made:
                del self._kept[key]
            raise
        made.set_result(data)
        return data

    def clear(self) -> None:
        """Forgets every encoding (the node stopped being master: a later
        term's entries are another master's)."""
        self._kept.clear()
