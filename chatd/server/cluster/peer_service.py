"""The peer services (MasterService, SlaveService): cluster-internal calls.

The servicers translate between protobufs and the core's messages and hand
them to the replication driver; they make no replication decision.

Every RPC here requires the cluster secret (`chatd.server.cluster.secret`). With no
secret configured the node listens on loopback only, and these services are
open to local callers.

A request that fails the wire's checks (`chatd.server.cluster.wire`) is refused with
INVALID_ARGUMENT before it reaches the core, and logged in one line; so is a
log stream carrying one (the stream ends), or a snapshot chunk that does not
continue the snapshot the core accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc

from chatd.core.types import CheckMasterReply, Message, RegisterReply, UpdateAck
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.server import protocol
from chatd.server.cluster import wire
from chatd.server.errors import WireError

if TYPE_CHECKING:
    from chatd.server.cluster.digests import DigestWatcher
    from chatd.server.cluster.peers import Peers
    from chatd.server.cluster.replication import Replicator

    Ctx = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)


REPLY_TIMEOUT_S = 2.0

T = TypeVar("T")
R = TypeVar("R", bound=Message)


async def _refuse(context: Ctx, rpc: str, exc: WireError) -> NoReturn:
    """Ends a call whose request fails the wire's checks: one log line, and
    INVALID_ARGUMENT with the reason."""
    log.warning("refused %s from %s: %s", rpc, context.peer(), exc)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{rpc}: {exc}")


async def _checked(context: Ctx, rpc: str, translate: Callable[[], T]) -> T:
    """The core's message for a request, or the call refused."""
    try:
        return translate()
    except WireError as exc:
        await _refuse(context, rpc, exc)


async def _exchange(repl: Replicator, request: Message, reply_type: type[R]) -> R:
    """Steps a request into the core and waits for the reply it produces
    (matched to it by a request id: chatd.server.cluster.replies)."""
    async with asyncio.timeout(REPLY_TIMEOUT_S):
        return await repl.replies.ask(request, reply_type)


async def _answer(
    repl: Replicator, context: Ctx, rpc: str, translate: Callable[[], Message], reply_type: type[R]
) -> R:
    """A cluster call: the request checked and translated (or refused), stepped
    into the core, and the core's reply."""
    return await _exchange(repl, await _checked(context, rpc, translate), reply_type)


class MasterServicer(cluster_pb2_grpc.MasterServiceServicer):
    def __init__(self, repl: Replicator, digests: DigestWatcher | None = None) -> None:
        self.repl = repl
        self.digests = digests
        self._said_too_old: dict[str, int] = {}

    async def RegisterSlave(
        self, request: cluster_pb2.RegisterSlaveRequest, context: Ctx
    ) -> cluster_pb2.RegisterSlaveResponse:
        theirs, cluster = (
            protocol.of(context.invocation_metadata()),
            self.repl.store.cluster_version,
        )
        if theirs < cluster:  # it could not apply this cluster's log
            if self._said_too_old.get(request.node_id) != theirs:
                self._said_too_old[request.node_id] = theirs
                log.error(
                    "node %s speaks protocol %d and this cluster is at %d: it is not taken "
                    "in (it stays out of sync); upgrade it",
                    request.node_id,
                    theirs,
                    cluster,
                )
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"this cluster is at protocol {cluster}, the node at {theirs}: upgrade it",
            )
        reply = await _answer(
            self.repl,
            context,
            "RegisterSlave",
            lambda: wire.register_from(request, self.repl.node_id),
            RegisterReply,
        )
        return wire.register_reply_to(reply)

    async def HeartBeat(
        self, request: cluster_pb2.HeartBeatRequest, context: Ctx
    ) -> cluster_pb2.HeartBeatResponse:
        st = self.repl.status()
        return cluster_pb2.HeartBeatResponse(
            node_id=st.id,
            epoch=st.epoch,
            role=st.role.value,
            master_id=st.master,
            commit_index=st.commit,
            applied_index=self.repl.store.last_index,
        )

    async def CheckMaster(
        self, request: cluster_pb2.CheckMasterRequest, context: Ctx
    ) -> cluster_pb2.CheckMasterResponse:
        # a node asking with a higher epoch does not move this one (only masters do)
        me = self.repl.node_id
        reply = await _answer(
            self.repl,
            context,
            "CheckMaster",
            lambda: wire.check_master_from(request, me),
            CheckMasterReply,
        )
        return wire.check_reply_to(reply, reply.membership.addresses.get(reply.master, ""))

    async def ReportDigest(
        self, request: cluster_pb2.DigestReport, context: Ctx
    ) -> cluster_pb2.DigestAck:
        report = await _checked(context, "ReportDigest", lambda: wire.digest_report_from(request))
        if self.digests is None:
            return cluster_pb2.DigestAck(node_id=self.repl.node_id)
        return self.digests.receive(report)


class SlaveServicer(cluster_pb2_grpc.SlaveServiceServicer):
    def __init__(self, repl: Replicator, peers: Peers) -> None:
        self.repl = repl
        self.peers = peers
        self._said_too_new = 0

    async def UpdateMaster(
        self, request: cluster_pb2.NewMasterRequest, context: Ctx
    ) -> cluster_pb2.UpdateAck:
        reply = await _answer(
            self.repl,
            context,
            "UpdateMaster",
            lambda: wire.update_master_from(request, self.repl.node_id),
            UpdateAck,
        )
        return wire.ack_to(reply)

    async def UpdateSlaves(
        self, request: cluster_pb2.UpdateSlavesRequest, context: Ctx
    ) -> cluster_pb2.UpdateAck:
        reply = await _answer(
            self.repl,
            context,
            "UpdateSlaves",
            lambda: wire.update_slaves_from(request, self.repl.node_id),
            UpdateAck,
        )
        return wire.ack_to(reply)

    async def AcceptUpdates(
        self, request_iterator: AsyncIterator[cluster_pb2.AcceptUpdatesRequest], context: Ctx
    ) -> AsyncIterator[cluster_pb2.AcceptUpdatesResponse]:
        theirs = protocol.of(context.invocation_metadata())
        if theirs > protocol.VERSION:  # it may write what this node cannot apply
            self._too_new(theirs)
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"this node speaks protocol {protocol.VERSION}, the master {theirs}: upgrade it",
            )
        await context.send_initial_metadata(protocol.metadata())  # (the master records it)
        out: asyncio.Queue[cluster_pb2.AcceptUpdatesResponse | None] = asyncio.Queue()
        reader = asyncio.get_running_loop().create_task(self._read(request_iterator, out, theirs))
        reader.add_done_callback(lambda _t: out.put_nowait(None))  # the stream's end
        try:
            while (response := await out.get()) is not None:
                yield response
            # (ended by this node's stop, the reader still runs: it is cancelled)
            if reader.done() and not reader.cancelled() and (exc := reader.exception()) is not None:
                if isinstance(exc, WireError):
                    await _refuse(context, "AcceptUpdates", exc)
                raise exc
        finally:
            reader.cancel()

    def _too_new(self, theirs: int) -> None:
        """One log line for a master of a newer protocol (until it changes)."""
        if self._said_too_new != theirs:
            self._said_too_new = theirs
            log.error(
                "node %s speaks protocol %d and its master %d: it applies nothing of the "
                "master's and stays out of sync; upgrade this node",
                self.repl.node_id,
                protocol.VERSION,
                theirs,
            )

    async def _read(
        self,
        requests: AsyncIterator[cluster_pb2.AcceptUpdatesRequest],
        out: asyncio.Queue[cluster_pb2.AcceptUpdatesResponse | None],
        theirs: int,
    ) -> None:
        """Steps the stream's batches into the core and collects its snapshot
        chunks; a message that fails the wire's checks ends it (WireError)."""
        repl = self.repl
        src = ""  # the sender, once a message of it was taken
        receiving: SnapshotReceiver | None = None
        try:
            async for r in requests:
                sender = wire.sender_from(r)
                if src and sender != src:
                    raise WireError(f"sender {sender} in {src}'s log stream")
                if r.HasField("batch"):
                    if receiving is not None:
                        raise WireError("a log batch in the middle of a snapshot")
                    msg = wire.batch_from(r, repl.node_id)
                    if not src:  # its answers go back on this stream
                        src = sender
                        self.peers.inbound[src] = out
                        self.peers.protocols[src] = theirs
                    repl.step(msg, payload=tuple(r.batch.entries))
                elif r.HasField("snapshot"):
                    offer = wire.snapshot_offer_from(r)
                    if receiving is None:
                        if not repl.accepts_snapshot(offer.src, offer.epoch):
                            raise WireError(
                                f"a snapshot from {offer.src} at epoch {offer.epoch}, "
                                "which this node does not take"
                            )
                        if not src:
                            src = sender
                            self.peers.inbound[src] = out
                        receiving = SnapshotReceiver(repl.data_dir / "snapshot-in.tmp", offer)
                    if await receiving.add(offer, r.snapshot):
                        await repl.install_snapshot(receiving.path, offer.pos)
                        receiving = None
                        out.put_nowait(
                            cluster_pb2.AcceptUpdatesResponse(
                                node_id=repl.node_id,
                                epoch=repl.epoch,
                                ok=True,
                                durable=wire.pos_to(offer.pos),
                                snapshot_installed=True,
                            )
                        )
        finally:
            if self.peers.inbound.get(src) is out:
                del self.peers.inbound[src]
            if receiving is not None:
                receiving.discard()
            if src:  # a master that died closed it: the core asks whether it lives
                repl.stream_lost(src)


class SnapshotReceiver:
    """Collects one snapshot's chunks in a file (off the event loop). Every
    chunk must repeat the first one's offer (sender, epoch, position, size)
    and continue where the previous one ended; the last one completes the
    size exactly. Anything else is a WireError and the file is discarded."""

    def __init__(self, path: Path, offer: wire.SnapshotOffer) -> None:
        self.path = path
        self.offer = offer
        self.received = 0
        self._file = path.open("wb")
        self._next_report = 0

    async def add(self, offer: wire.SnapshotOffer, chunk: cluster_pb2.SnapshotChunk) -> bool:
        """Writes a chunk; True once the last one is written."""
        if offer != self.offer:
            raise WireError(f"a snapshot chunk of {offer} in the middle of {self.offer}")
        total = self.offer.total_bytes
        end = self.received + len(chunk.data)
        if end > total:
            raise WireError(f"snapshot chunks of {end} bytes, more than the {total} offered")
        if not chunk.data:
            raise WireError(f"an empty snapshot chunk at byte {self.received} of {total}")
        if chunk.last != (end == total):
            raise WireError(
                f"a snapshot chunk of {len(chunk.data)} bytes at byte {self.received} of "
                f"{total} {'says' if chunk.last else 'does not say'} it is the last"
            )
        await asyncio.to_thread(self._file.write, chunk.data)
        self.received = end
        if self.received >= self._next_report or chunk.last:
            log.info(
                "receiving a snapshot from %s: %d of %d bytes", self.offer.src, self.received, total
            )
            self._next_report = self.received + max(total // 4, 1)
        if chunk.last:
            await asyncio.to_thread(self._file.close)
        return bool(chunk.last)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)
