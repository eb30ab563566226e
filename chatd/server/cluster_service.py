"""Cluster-internal services (MasterService, SlaveService, NodeAdmin).

The servicers translate between protobufs and the core's messages and hand
them to the replication driver; they make no replication decision.

Every RPC here requires the cluster secret (`chatd.server.secret`). With no
secret configured the node listens on loopback only, and these services are
open to local callers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from chatd.core.types import CheckMasterReply, Message, RegisterReply, UpdateAck
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.server import wire

if TYPE_CHECKING:
    from chatd.server.digests import DigestWatcher
    from chatd.server.peers import Peers
    from chatd.server.replication import Replicator

    Ctx = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)


class NodeView(Protocol):
    """What the admin service reads and asks of the node."""

    def status(self) -> cluster_pb2.NodeStatus: ...

    async def remove_member(self, node_id: str) -> tuple[bool, str]: ...


REPLY_TIMEOUT_S = 2.0
_askers = itertools.count(1)


async def _exchange(repl: Replicator, request: Message, reply_type: type) -> Message:
    """Steps a request into the core and waits for the reply it produces."""
    fut = repl.expect_reply(reply_type, request.src)
    try:
        repl.step(request)
        return await asyncio.wait_for(fut, REPLY_TIMEOUT_S)
    finally:
        repl.forget_reply(reply_type, request.src, fut)


class MasterServicer(cluster_pb2_grpc.MasterServiceServicer):
    def __init__(self, repl: Replicator, digests: DigestWatcher | None = None) -> None:
        self.repl = repl
        self.digests = digests

    async def RegisterSlave(
        self, request: cluster_pb2.RegisterSlaveRequest, context: Ctx
    ) -> cluster_pb2.RegisterSlaveResponse:
        reply = await _exchange(
            self.repl, wire.register_from(request, self.repl.node_id), RegisterReply
        )
        assert isinstance(reply, RegisterReply)
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
        # a caller that is not a node (a tool, a client) gets a name of its own
        asker = request.node_id if request.node_id not in ("", me) else f"?{next(_askers)}"
        msg = wire.check_master_from(request, me, asker)
        reply = await _exchange(self.repl, msg, CheckMasterReply)
        assert isinstance(reply, CheckMasterReply)
        return wire.check_reply_to(reply, reply.membership.addresses.get(reply.master, ""))

    async def ReportDigest(
        self, request: cluster_pb2.DigestReport, context: Ctx
    ) -> cluster_pb2.DigestAck:
        if self.digests is None:
            return cluster_pb2.DigestAck(node_id=self.repl.node_id)
        return self.digests.receive(request)


class SlaveServicer(cluster_pb2_grpc.SlaveServiceServicer):
    def __init__(self, repl: Replicator, peers: Peers) -> None:
        self.repl = repl
        self.peers = peers

    async def UpdateMaster(
        self, request: cluster_pb2.NewMasterRequest, context: Ctx
    ) -> cluster_pb2.UpdateAck:
        msg = wire.update_master_from(request, self.repl.node_id)
        reply = await _exchange(self.repl, msg, UpdateAck)
        assert isinstance(reply, UpdateAck)
        return wire.ack_to(reply)

    async def UpdateSlaves(
        self, request: cluster_pb2.UpdateSlavesRequest, context: Ctx
    ) -> cluster_pb2.UpdateAck:
        msg = wire.update_slaves_from(request, self.repl.node_id)
        reply = await _exchange(self.repl, msg, UpdateAck)
        assert isinstance(reply, UpdateAck)
        return wire.ack_to(reply)

    async def AcceptUpdates(
        self, request_iterator: AsyncIterator[cluster_pb2.AcceptUpdatesRequest], context: Ctx
    ) -> AsyncIterator[cluster_pb2.AcceptUpdatesResponse]:
        out: asyncio.Queue[cluster_pb2.AcceptUpdatesResponse | None] = asyncio.Queue()
        reader = asyncio.get_running_loop().create_task(self._read(request_iterator, out))
        reader.add_done_callback(lambda _t: out.put_nowait(None))  # the stream's end
        try:
            while (response := await out.get()) is not None:
                yield response
            if not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
        finally:
            reader.cancel()

    async def _read(
        self,
        requests: AsyncIterator[cluster_pb2.AcceptUpdatesRequest],
        out: asyncio.Queue[cluster_pb2.AcceptUpdatesResponse | None],
    ) -> None:
        repl = self.repl
        src = ""
        receiving: SnapshotReceiver | None = None
        try:
            async for r in requests:
                if r.node_id != src:
                    src = r.node_id
                    self.peers.inbound[src] = out
                if r.HasField("batch"):
                    msg = wire.batch_from(r, repl.node_id)
                    repl.step(msg, payload=tuple(r.batch.entries))
                elif r.HasField("snapshot"):
                    if not repl.accepts_snapshot(src, r.epoch):
                        continue  # not from a master this node may follow: ignored
                    if receiving is None:
                        receiving = SnapshotReceiver(repl.data_dir / "snapshot-in.tmp", src)
                    if await receiving.add(r.snapshot):
                        pos = wire.pos_from(r.snapshot.pos)
                        await repl.install_snapshot(receiving.path, pos)
                        receiving = None
                        out.put_nowait(
                            cluster_pb2.AcceptUpdatesResponse(
                                node_id=repl.node_id,
                                epoch=repl.epoch,
                                ok=True,
                                durable=wire.pos_to(pos),
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
    """Collects a snapshot's chunks in a file (off the event loop)."""

    def __init__(self, path: Path, src: str) -> None:
        self.path = path
        self.src = src
        self.received = 0
        self._file = path.open("wb")
        self._next_report = 0

    async def add(self, chunk: cluster_pb2.SnapshotChunk) -> bool:
        await asyncio.to_thread(self._file.write, chunk.data)
        self.received += len(chunk.data)
        if self.received >= self._next_report or chunk.last:
            log.info(
                "receiving a snapshot from %s: %d of %d bytes",
                self.src,
                self.received,
                chunk.total_bytes,
            )
            self._next_report = self.received + max(chunk.total_bytes // 4, 1)
        if chunk.last:
            await asyncio.to_thread(self._file.close)
        return bool(chunk.last)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class NodeAdminServicer(cluster_pb2_grpc.NodeAdminServicer):
    def __init__(self, node: NodeView) -> None:
        self.node = node

    async def Status(
        self, request: cluster_pb2.StatusRequest, context: Ctx
    ) -> cluster_pb2.NodeStatus:
        return self.node.status()

    async def RemoveMember(
        self, request: cluster_pb2.RemoveMemberRequest, context: Ctx
    ) -> cluster_pb2.RemoveMemberResponse:
        ok, error = await self.node.remove_member(request.node_id)
        return cluster_pb2.RemoveMemberResponse(ok=ok, error=error)
