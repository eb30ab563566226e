"""Outgoing cluster traffic: one log stream per slave, unary calls, snapshots.

`Peers.send(message)` never waits: log batches and heartbeats go on the
destination's stream (`SlaveService.AcceptUpdates`, opened on demand and
reopened after a failure), requests go out as unary calls in their own
tasks, and replies come back into the core through the replicator. A call
that fails, or whose answer fails the wire's checks (`chatd.server.cluster.wire`), is
reported to the core as unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import grpc

from chatd import tls
from chatd.config import PEER_PORT
from chatd.contract import (
    KEEPALIVE_CHANNEL_OPTIONS,
    RECONNECT_CHANNEL_OPTIONS,
    secret_metadata,
)
from chatd.core.types import (
    Append,
    AppendReply,
    CheckMaster,
    Message,
    Register,
    UpdateMaster,
    UpdateSlaves,
    seed_address,
)
from chatd.proto import cluster_pb2 as pb
from chatd.proto import cluster_pb2_grpc
from chatd.server import protocol
from chatd.server.cluster import wire
from chatd.server.cluster.batches import Batches, open_stream
from chatd.server.cluster.ports import Driver
from chatd.server.errors import WireError, reap
from chatd.server.storage import backup

log = logging.getLogger(__name__)

# what a log stream's writer or reader may end with when the stream breaks
# (the call ended, a write to it after, an answer that fails the wire's checks)
EXPECTED = (grpc.aio.AioRpcError, asyncio.InvalidStateError, WireError, OSError)
SNAPSHOT_CHUNK = 1 << 20
CLUSTER_MESSAGE_LIMIT = 64 * 1024 * 1024
CLUSTER_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", CLUSTER_MESSAGE_LIMIT),
    ("grpc.max_send_message_length", CLUSTER_MESSAGE_LIMIT),
    *RECONNECT_CHANNEL_OPTIONS,  # (a member named by DNS is looked up again)
    *KEEPALIVE_CHANNEL_OPTIONS,  # the relay's Subscribe streams ride on these channels
]


class SnapshotJob:
    """Marks, in a link's queue, where a snapshot is to be streamed."""


class Peers:
    def __init__(
        self,
        repl: Driver,
        secret: str | None,
        data_dir: Path,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.credentials = credentials
        self.repl = repl
        # every call to another node says this node's protocol version
        self.metadata = (*secret_metadata(secret), *protocol.metadata())
        # the protocol version each peer said, as its log stream's headers
        # (the master's) or as the master's stream to this node (a slave's)
        self.protocols: dict[str, int] = {}
        self.data_dir = data_dir
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._links: dict[str, Link] = {}
        self.batches = Batches()  # each batch encoded once, for every slave
        self.inbound: dict[str, asyncio.Queue[pb.AcceptUpdatesResponse | None]] = {}
        # addresses learned from other nodes' answers, for nodes this one's
        # membership does not list yet (a joining node finds the master so)
        self.directory: dict[str, str] = {}
        self._misdialled: set[str] = set()  # addresses said to be no peer listener
        self._seed_failed: dict[str, str] = {}  # a seed's address: how it last failed
        self._tasks: set[asyncio.Task[None]] = set()

    def end_inbound(self) -> None:
        """Ends every log stream a master holds into this node (at its stop:
        an open one would hold the server's shutdown grace)."""
        for q in list(self.inbound.values()):
            q.put_nowait(None)

    @property
    def rpc_timeout(self) -> float:
        return self.repl.rpc_timeout

    def address_of(self, node: str) -> str | None:
        if (seed := seed_address(node)) is not None:
            return seed
        return self.repl.address_of(node) or self.directory.get(node)

    def channel(self, address: str) -> grpc.aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            ch = tls.open_channel(address, self.credentials, CLUSTER_CHANNEL_OPTIONS)
            self._channels[address] = ch
        return ch

    # -- sending --

    def send(self, msg: Message) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> %r", self.repl.node_id, msg)
        if isinstance(msg, Append):
            self._link(msg.dst).put(msg)
        elif isinstance(msg, AppendReply):
            q = self.inbound.get(msg.dst)
            if q is not None:
                q.put_nowait(wire.append_reply_to(msg))
        elif isinstance(msg, CheckMaster | Register | UpdateMaster | UpdateSlaves):
            self._spawn(self._unary(msg))
        else:  # replies to unary calls are returned by the servicers
            log.debug("dropped %s to %s", type(msg).__name__, msg.dst)

    def seed_failures(self) -> list[str]:
        return [f"{address} {how}" for address, how in sorted(self._seed_failed.items())]

    def send_snapshot(self, dst: str) -> None:
        self._link(dst).put(SnapshotJob())

    def _link(self, dst: str) -> Link:
        link = self._links.get(dst)
        if link is None:
            link = self._links[dst] = Link(self, dst)
        return link

    def close_links(self) -> None:
        for link in self._links.values():
            link.close()
        self._links.clear()
        self.batches.clear()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unary(self, msg: Message) -> None:
        repl = self.repl
        address = self.address_of(msg.dst)
        if address is None:
            repl.report_unreachable(msg.dst)
            return
        master = cluster_pb2_grpc.MasterServiceStub(self.channel(address))
        slave = cluster_pb2_grpc.SlaveServiceStub(self.channel(address))
        kw: dict[str, Any] = {"timeout": self.rpc_timeout, "metadata": self.metadata}
        reply: Message
        try:
            if isinstance(msg, CheckMaster):
                r = await master.CheckMaster(wire.check_master_to(msg), **kw)
                reply = wire.check_reply_from(r, repl.node_id)
                self.directory.update(reply.membership.members)
            elif isinstance(msg, Register):
                rr = await master.RegisterSlave(wire.register_to(msg), **kw)
                reply = wire.register_reply_from(rr, repl.node_id)
            elif isinstance(msg, UpdateMaster):
                a = await slave.UpdateMaster(wire.update_master_to(msg), **kw)
                reply = wire.ack_from(a, repl.node_id)
            else:
                assert isinstance(msg, UpdateSlaves)
                a = await slave.UpdateSlaves(wire.update_slaves_to(msg), **kw)
                reply = wire.ack_from(a, repl.node_id)
        except grpc.aio.AioRpcError as exc:
            log.debug("%s to %s failed: %s", type(msg).__name__, msg.dst, exc.code().name)
            if seed_address(msg.dst) is not None:
                self._seed_failed[address] = _failure(exc)
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                await self._not_a_peer_listener(msg.dst, address)
            repl.report_unreachable(msg.dst)
            return
        except ValueError as exc:  # an answer that fails the wire's checks (the peer's fault)
            log.warning("%s to %s: unusable answer: %s", type(msg).__name__, msg.dst, exc)
            repl.report_unreachable(msg.dst)
            return
        self._seed_failed.pop(address, None)
        repl.step(reply)

    async def _not_a_peer_listener(self, dst: str, address: str) -> None:
        """An address that answers but serves no cluster service: most
        likely a node's client listener, given where its peer listener
        belongs (--join, --peer-advertise; in a container the host's port
        50052 may be a client port). One ERROR line an address, naming the
        peer listener when the node there says where it is; the node goes
        on looking (another seed or member may answer)."""
        if address in self._misdialled:
            return
        self._misdialled.add(address)
        who = "the seed " if seed_address(dst) is not None else f"member {dst}'s address "
        what, hint = "not a chatd peer listener", f"its peer listener (port {PEER_PORT} by default)"
        try:  # a client listener serves NodeAdmin: it says where its peer listener is
            s = await cluster_pb2_grpc.NodeAdminStub(self.channel(address)).Status(
                pb.StatusRequest(), metadata=self.metadata, timeout=self.rpc_timeout
            )
            what = f"node {s.node_id}'s client listener, not its peer listener"
            hint = f"its peer listener, {s.peer_address}" if s.peer_address else hint
        except grpc.aio.AioRpcError:
            pass
        log.error(
            "%s%s is %s: it does not serve the cluster service (UNIMPLEMENTED), so no "
            "master is found there; nodes reach each other at %s (--join takes that)",
            who,
            address,
            what,
            hint,
        )

    async def close(self) -> None:
        self.close_links()
        for t in list(self._tasks):
            t.cancel()
        for ch in self._channels.values():
            await ch.close(None)
        self._channels.clear()


def _failure(exc: grpc.aio.AioRpcError) -> str:
    """How a call to a seed failed, for the log ("SEED refuses connections")."""
    code, details = exc.code(), exc.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE and "refused" in details.lower():
        return "refuses connections (is a node listening there?)"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED or "timed out" in details:
        return "does not answer (no gRPC reply: a firewall, or not a chatd node?)"
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return "refuses this node's cluster secret"
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return "is not a peer listener"
    return f"cannot be reached ({code.name}: {details})"


class Link:
    """The master's log stream to one slave."""

    def __init__(self, peers: Peers, dst: str) -> None:
        self.peers = peers
        self.dst = dst
        self._said_too_old = 0  # the protocol last said too old (one line each)
        self.queue: asyncio.Queue[Append | SnapshotJob] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"link-{dst}")

    def put(self, item: Append | SnapshotJob) -> None:
        self.queue.put_nowait(item)

    def close(self) -> None:
        self.task.cancel()

    async def _run(self) -> None:
        repl = self.peers.repl
        while True:
            address = self.peers.address_of(self.dst)
            try:
                if address is None:
                    raise ConnectionError(f"no address for {self.dst}")
                call = open_stream(self.peers.channel(address), self.peers.metadata)
                loop = asyncio.get_running_loop()
                # the stream ends when either side does: a writer that failed
                # (a batch it could not read back, a snapshot that broke)
                # would otherwise leave it open with nothing more written
                writer = loop.create_task(self._write(call))
                reader = loop.create_task(self._read(call))
                try:
                    done, _ = await asyncio.wait(
                        (writer, reader), return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        task.result()  # raises what ended it, if anything did
                finally:
                    writer.cancel()
                    reader.cancel()
                    call.cancel()
                    # (what ended the stream is raised above; the other's end is logged)
                    await reap((writer, reader), log, f"log stream to {self.dst}", EXPECTED)
            except asyncio.CancelledError:
                raise
            except WireError as exc:  # the slave's fault: as if it were unreachable
                log.warning("log stream to %s: unusable answer: %s", self.dst, exc)
            except Exception as exc:  # any failure: report, wait a tick, reconnect
                log.debug("stream to %s broke: %r", self.dst, exc)
            self.peers.protocols.pop(self.dst, None)  # (heard anew on the next stream)
            while not self.queue.empty():  # what was queued is stale now
                if isinstance(self.queue.get_nowait(), SnapshotJob):
                    repl.snapshot_sent(self.dst, None)
            repl.report_unreachable(self.dst)
            await asyncio.sleep(repl.tick_seconds)

    async def _write(self, call: Any) -> None:
        """Writes what is queued, in order; cancelled when the stream ends."""
        while True:
            item = await self.queue.get()
            if isinstance(item, SnapshotJob):
                try:
                    await self._send_snapshot(call)
                except BaseException:
                    repl = self.peers.repl
                    repl.snapshot_sent(self.dst, None)
                    raise
            else:
                await call.write(await self.peers.batches.encoded(item, self._entries))

    async def _read(self, call: Any) -> None:
        repl = self.peers.repl
        said = await call.initial_metadata()
        if call.done() and await call.code() != grpc.StatusCode.OK:
            # it failed before it opened (the slave is down or unreachable):
            # its empty metadata says nothing of the slave's protocol
            raise ConnectionError(f"{self.dst}: {(await call.code()).name}")
        theirs = self.peers.protocols[self.dst] = protocol.of(said)
        cluster = repl.store.cluster_version
        if theirs < cluster:  # it could not apply this log: no entry goes to it
            if self._said_too_old != theirs:
                self._said_too_old = theirs
                log.error(
                    "node %s speaks protocol %d and this cluster is at %d: nothing is sent "
                    "to it (it stays out of sync); upgrade it",
                    self.dst,
                    theirs,
                    cluster,
                )
            raise ConnectionError(f"{self.dst} speaks protocol {theirs}, the cluster {cluster}")
        async for r in call:
            if r.snapshot_installed:
                repl.snapshot_sent(self.dst, wire.pos_from(r.durable))
            else:
                repl.step(wire.append_reply_from(r, repl.node_id))

    async def _entries(self, m: Append) -> list[bytes]:
        store = self.peers.repl.store
        first, last = m.prev.index + 1, m.prev.index + m.count
        recent = store.recent
        if first in recent and last in recent:
            with contextlib.suppress(KeyError):  # (one missing between: read from the log)
                return [recent[i] for i in range(first, last + 1)]
        entries = await asyncio.to_thread(store.log_entries, first, last)
        if len(entries) != m.count:
            raise ConnectionError(f"log entries {first}..{last} are no longer held")
        return entries

    async def _send_snapshot(self, call: Any) -> None:
        repl = self.peers.repl
        path = self.peers.data_dir / f"snapshot-for-{self.dst}.tmp"
        try:
            epoch, index = await asyncio.to_thread(repl.store.snapshot_to, path)
            if self.peers.protocols.get(self.dst, 1) < 2:
                await asyncio.to_thread(backup.forget_state_digest, path)
            total = path.stat().st_size
            if total > wire.MAX_SNAPSHOT_BYTES:  # the slave would refuse it
                log.error(
                    "cannot send %s a snapshot of %d bytes: the limit is %d",
                    self.dst,
                    total,
                    wire.MAX_SNAPSHOT_BYTES,
                )
                raise ConnectionError("snapshot too large")
            log.info(
                "node %s epoch %d: sending a snapshot (index %d, %d bytes) to %s",
                repl.node_id,
                repl.epoch,
                index,
                total,
                self.dst,
            )
            sent = 0
            next_report = total // 4
            with path.open("rb") as f:
                while True:
                    data = await asyncio.to_thread(f.read, SNAPSHOT_CHUNK)
                    sent += len(data)
                    last = sent >= total
                    chunk = pb.SnapshotChunk(
                        data=data,
                        last=last,
                        pos=pb.LogPos(epoch=epoch, index=index),
                        total_bytes=total,
                    )
                    await call.write(
                        pb.AcceptUpdatesRequest(
                            node_id=repl.node_id, epoch=repl.epoch, snapshot=chunk
                        )
                    )
                    if sent >= next_report and not last:
                        log.info("snapshot to %s: %d%% sent", self.dst, 100 * sent // total)
                        next_report += total // 4
                    if last:
                        break
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
