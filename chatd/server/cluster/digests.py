"""Compares the followers' state digests with the master's: gray failures.

A node whose tables were changed outside chatd after it started, or that
installed a forged snapshot, applies the same log as the others and reports
the same log digest; only the state digest (chatd.server.storage.statedigest) tells.
Every REPORT_EVERY_S a slave sends its master its applied index with its log
and state digests there (`MasterService.ReportDigest`). The master looks up
its own at that index (the store keeps the last DIGEST_HISTORY indexes);
when the log digests agree but the state digests do not, the follower holds
other data than the master from the same log. The master then raises the
alarm once per divergence: one ERROR line, the metrics
(`chatd_state_digest_mismatch{node}`, `chatd_state_digest_mismatches_total`)
and the follower in `chatd status`'s `diverged` list, until it reports
agreement again (after it was rebuilt). Logs that differ at the index (a
rejoining node's tail the core has yet to replace) are not compared.

It is a watcher beside the replication, not part of it: the role core knows
nothing of it, and it changes nothing but what it reports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from chatd.core.types import Role
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.server.cluster.floors import Floors
from chatd.server.cluster.web_origins import WebOrigins
from chatd.server.cluster.wire import DigestReport
from chatd.server.storage.store import Store

if TYPE_CHECKING:
    from chatd.server.cluster.peers import Peers
    from chatd.server.cluster.replication import Replicator

log = logging.getLogger(__name__)

REPORT_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Divergence:
    """A follower's state digest at `index`, and the master's, where they differ."""

    node_id: str
    index: int
    theirs: bytes
    mine: bytes


class DigestWatcher:
    """The slave's periodic report, and the master's comparison of reports."""

    def __init__(
        self,
        node_id: str,
        store: Store,
        store_lock: asyncio.Lock,
        repl: Replicator,
        peers: Peers,
        on_mismatch: Callable[[], None] | None,
        floors: Floors,
        web_origins: WebOrigins,
        every: float = REPORT_EVERY_S,
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.store_lock = store_lock
        self.repl = repl
        self.peers = peers
        self.on_mismatch = on_mismatch  # (counts it in the metrics)
        self.floors = floors  # each member's --min-in-sync, carried in the report
        self.web_origins = web_origins  # each member's web origin: the report and the ack
        self.every = every
        self.diverged: dict[str, Divergence] = {}

    # -- the slave's side --

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            role, address = self.repl.route()
            if role is not Role.MASTER:
                self.diverged.clear()  # what a master saw is no longer this node's to say
            else:
                members = self.repl.status().membership.addresses
                for gone in [n for n in self.diverged if n not in members]:
                    del self.diverged[gone]
            if role is Role.SLAVE and address:
                try:
                    await self.report(address)
                except Exception as exc:  # a watcher: the next report may do
                    log.warning("digest report to %s failed: %r", address, exc)

    async def report(self, address: str) -> cluster_pb2.DigestAck | None:
        """Sends the master this node's digests at its applied index."""
        async with self.store_lock:  # not in the middle of a batch or a snapshot
            index = self.store.last_index
            digests = self.store.digests_at(index)
        if digests is None:
            return None
        stub = cluster_pb2_grpc.MasterServiceStub(self.peers.channel(address))
        request = cluster_pb2.DigestReport(
            node_id=self.node_id,
            epoch=self.repl.epoch,
            index=index,
            log_digest=digests[0],
            state_digest=digests[1],
            min_in_sync=self.floors.own,
            web_origin=self.web_origins.own,
        )
        try:
            ack: cluster_pb2.DigestAck = await stub.ReportDigest(
                request, timeout=self.repl.rpc_timeout, metadata=self.peers.metadata
            )
        except grpc.aio.AioRpcError as exc:  # the master is away: the next report will do
            log.debug("digest report to %s failed: %s", address, exc.code().name)
            return None
        # the master's table of web origins (none from an older master, nor
        # from a node that answers as master no longer: then kept as known)
        if ack.web_origins and ack.node_id == self.repl.status().master:
            self.web_origins.learned((w.node_id, w.origin) for w in ack.web_origins)
        return ack

    # -- the master's side --

    def receive(self, r: DigestReport) -> cluster_pb2.DigestAck:
        """Compares a follower's report (checked by chatd.server.cluster.wire) with
        this master's digests."""
        st = self.repl.status()
        ack = cluster_pb2.DigestAck(node_id=self.node_id, epoch=st.epoch)
        if (
            st.role is not Role.MASTER
            or r.node_id == self.node_id
            or r.node_id not in st.membership.addresses
        ):
            return ack
        self.floors.told(r.node_id, r.min_in_sync)
        self.web_origins.told(r.node_id, r.web_origin)
        ack.web_origins.extend(
            cluster_pb2.WebOrigin(node_id=n, origin=o)
            for n, o in self.web_origins.table(st.membership.addresses)
        )
        mine = self.store.digests_at(r.index)
        if mine is None or mine[0] != r.log_digest:
            return ack  # too old (or ahead) to compare, or not the same log there
        ack.compared = True
        ack.agrees = mine[1] == r.state_digest
        if ack.agrees:
            if self.diverged.pop(r.node_id, None) is not None:
                log.warning(
                    "node %s: the state digest of %s agrees with this master's again at index %d",
                    self.node_id,
                    r.node_id,
                    r.index,
                )
            return ack
        seen = self.diverged.get(r.node_id)
        self.diverged[r.node_id] = Divergence(r.node_id, r.index, r.state_digest, mine[1])
        if seen is None:
            log.error(
                "node %s: the state digest of %s differs from this master's at index %d "
                "(%s there, %s here) while their logs agree: its data was changed outside "
                "chatd or came from a forged snapshot; move its data dir aside and rejoin it",
                self.node_id,
                r.node_id,
                r.index,
                r.state_digest.hex(),
                mine[1].hex(),
            )
            if self.on_mismatch is not None:
                self.on_mismatch()
        return ack

    def status(self) -> list[cluster_pb2.StateDivergence]:
        return [
            cluster_pb2.StateDivergence(
                node_id=d.node_id,
                index=d.index,
                state_digest=d.theirs.hex(),
                master_state_digest=d.mine.hex(),
            )
            for _, d in sorted(self.diverged.items())
        ]
