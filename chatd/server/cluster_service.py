"""Cluster-internal services (MasterService, SlaveService, NodeAdmin) and their guard.

The servicers translate between protobufs and the core's messages and hand
them to the replication driver; they make no replication decision.

Every RPC here requires the cluster secret as the `x-chatd-secret` metadata
value, compared in constant time, and is refused with UNAUTHENTICATED before
its request is even parsed. With no secret configured the node listens on
loopback only, and these services are open to local callers.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from chatd.core.types import CheckMasterReply, Message, RegisterReply, Role, UpdateAck
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.server import wire

if TYPE_CHECKING:
    from chatd.server.peers import Peers
    from chatd.server.replication import Replicator

log = logging.getLogger(__name__)

SECRET_HEADER = "x-chatd-secret"
CLUSTER_PREFIXES = ("/MasterService/", "/SlaveService/", "/NodeAdmin/")

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]


def secret_metadata(secret: str | None) -> tuple[tuple[str, str], ...]:
    return ((SECRET_HEADER, secret),) if secret else ()


class SecretInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses cluster RPCs that do not carry the cluster secret. (Under
    mutual TLS every caller already showed a certificate of the cluster CA
    at the handshake; without a secret, that is all the cluster services
    ask for.)"""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret.encode() if secret else None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        method = details.method or ""
        if self._secret is None or not method.startswith(CLUSTER_PREFIXES):
            return await continuation(details)
        given = b""
        for key, value in details.invocation_metadata or ():
            if key == SECRET_HEADER:
                given = value.encode() if isinstance(value, str) else value
        if hmac.compare_digest(given, self._secret):
            return await continuation(details)
        return _refusal(await continuation(details))


def _refusal(handler: Handler) -> Handler:
    """A handler of the same shape that refuses without parsing the request."""

    async def refuse_unary(request: Any, context: Ctx) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong or missing cluster secret")

    async def refuse_stream(request: Any, context: Ctx) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong or missing cluster secret")
        yield  # pragma: no cover - makes this an async generator

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse_unary)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse_unary)
    return grpc.stream_stream_rpc_method_handler(refuse_stream)


class NodeView(Protocol):
    """What the admin service reads and asks of the node."""

    def status(self) -> cluster_pb2.NodeStatus: ...

    async def remove_member(self, node_id: str) -> tuple[bool, str]: ...


REPLY_TIMEOUT_S = 2.0


async def _exchange(repl: Replicator, request: Message, reply_type: type) -> Message:
    """Steps a request into the core and waits for the reply it produces."""
    fut = repl.expect_reply(reply_type, request.src)
    try:
        repl.feed(repl.core.step, request)
        return await asyncio.wait_for(fut, REPLY_TIMEOUT_S)
    finally:
        repl.forget_reply(reply_type, request.src, fut)


def check_master_reply(repl: Replicator, asker: str) -> cluster_pb2.CheckMasterResponse:
    c = repl.core
    reply = CheckMasterReply(
        c.id, asker, c.epoch, c.role, c.master, c.durable, c.eligible, c.membership
    )
    return wire.check_reply_to(reply, c.membership.addresses.get(c.master, ""))


class MasterServicer(cluster_pb2_grpc.MasterServiceServicer):
    def __init__(self, repl: Replicator) -> None:
        self.repl = repl

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
        c = self.repl.core
        return cluster_pb2.HeartBeatResponse(
            node_id=c.id,
            epoch=c.epoch,
            role=c.role.value,
            master_id=c.master,
            commit_index=c.commit,
            applied_index=self.repl.store.last_index,
        )

    async def CheckMaster(
        self, request: cluster_pb2.CheckMasterRequest, context: Ctx
    ) -> cluster_pb2.CheckMasterResponse:
        # Read-only in the core, so answered straight from its state; a node
        # asking with a higher epoch does not move this one (only masters do).
        return check_master_reply(self.repl, request.node_id)


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
                    repl.feed(repl.core.step, msg, payload=tuple(r.batch.entries))
                elif r.HasField("snapshot"):
                    c = repl.core
                    if r.epoch < c.epoch or c.role is Role.MASTER or c.master not in ("", src):
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
                                epoch=repl.core.epoch,
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
                repl.feed(repl.core.stream_lost, src)


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
