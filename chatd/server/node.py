"""The node, as chatd.server.build hands it: every part made, opened and
wired, nothing served yet.

Reads top to bottom: `start` (the writer, both listeners, the role core, then
the housekeeping loops under one task group), what the role core tells it,
the housekeeping loops, and a graceful shutdown (stop accepting, end
streams, finish in-flight calls, drain the writer, close the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from chatd.config import Config, is_loopback, parse_address
from chatd.core.quorum import IN_SYNC
from chatd.core.types import InSyncChanged, Role, RoleChanged
from chatd.logs import Repeated
from chatd.proto import log_pb2
from chatd.server import protocol
from chatd.server.api.health import Health
from chatd.server.api.metrics import Metrics
from chatd.server.api.router import Router
from chatd.server.chat.hub import Hub
from chatd.server.chat.rules import Chat
from chatd.server.cluster.digests import DigestWatcher
from chatd.server.cluster.peers import Peers
from chatd.server.cluster.replication import Replicator
from chatd.server.cluster.web_origins import WebOrigins
from chatd.server.errors import ServerError
from chatd.server.errors import StartupError as StartupError  # (its import place of old)
from chatd.server.storage.dirlock import DataDirLock
from chatd.server.storage.store import Store
from chatd.server.storage.writer import GroupCommitWriter

if TYPE_CHECKING:  # (aiohttp is imported only by a node that serves pages)
    from chatd.server.web.app import WebServer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0
CHECKPOINT_EVERY_S = 0.1
CHECKPOINT_WARN_EVERY_S = 60.0


class Stopping:
    """Why the node stops: asked to (a signal), or a part failed (`fatal`)."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.fatal: BaseException | None = None

    async def fail(self, exc: BaseException) -> None:
        self.fatal = exc
        self.asked.set()


@dataclass(frozen=True, slots=True)
class Threads:
    """The node's thread pools: the database's one writer thread, a reader,
    the background checkpoints, password hashing, an upload's image."""

    db: ThreadPoolExecutor
    reader: ThreadPoolExecutor
    checkpoint: ThreadPoolExecutor
    hasher: ThreadPoolExecutor
    images: ThreadPoolExecutor  # one: an image decoded at a time (chatd.server.chat.images)

    @classmethod
    def make(cls) -> Threads:
        return cls(
            ThreadPoolExecutor(1, thread_name_prefix="chatd-db"),
            ThreadPoolExecutor(1, thread_name_prefix="chatd-read"),
            ThreadPoolExecutor(1, thread_name_prefix="chatd-checkpoint"),
            ThreadPoolExecutor(2, thread_name_prefix="chatd-hash"),
            ThreadPoolExecutor(1, thread_name_prefix="chatd-image"),
        )

    def shutdown(self) -> None:
        for pool in (self.db, self.reader, self.hasher, self.checkpoint, self.images):
            pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class Listeners:
    """The two gRPC servers, bound: clients' and the other nodes'."""

    client: grpc.aio.Server
    peer: grpc.aio.Server
    port: int
    peer_port: int
    address: str  # where clients reach this node
    peer_address: str  # where the other nodes do


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """How the role core starts: found a cluster, or look for its members."""

    found: bool
    seeds: tuple[str, ...]
    quorum: str = IN_SYNC
    members_stored: bool = False  # the data dir holds a cluster's members


class Node:
    """A node, every part of it given (chatd.server.build makes them)."""

    def __init__(
        self,
        *,
        config: Config,
        node_id: str,
        dir_lock: DataDirLock,
        threads: Threads,
        stopping: Stopping,
        store: Store,
        store_lock: asyncio.Lock,
        hub: Hub,
        repl: Replicator,
        peers: Peers,
        digests: DigestWatcher,
        web_origins: WebOrigins,
        writer: GroupCommitWriter,
        chat: Chat,
        router: Router,
        health: Health,
        metrics: Metrics | None,
        listeners: Listeners,
        web: WebServer | None,
        how: Start,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.store = store
        self.store_lock = store_lock  # held by a batch, a snapshot, a digest
        self.hub = hub
        self.repl = repl
        self.peers = peers
        self.digests = digests
        self.web_origins = web_origins  # the members' web origins, as known here
        self.writer = writer
        self.chat = chat
        self.router = router
        self.health = health
        self.metrics = metrics
        self.metrics_port = 0
        self.server, self.peer_server = listeners.client, listeners.peer
        self.port, self.peer_port = listeners.port, listeners.peer_port
        self.address, self.peer_address = listeners.address, listeners.peer_address
        self.web = web
        self._dir_lock = dir_lock
        self._threads = threads
        self._stopping = stopping
        self._how = how
        self._replicating = False  # the role core runs (from start on)
        self._housekeeping: asyncio.Task[None] | None = None  # (from start on)
        self._noops: set[asyncio.Task[None]] = set()

    @property
    def fatal(self) -> BaseException | None:
        return self._stopping.fatal

    def web_origins_now(self) -> list[str]:
        """Where browsers reach the current members' web clients: this node's
        own first (if it serves one), then the others' known to it."""
        members = self.repl.status().membership.addresses if self._replicating else ()
        return self.web_origins.origins([self.node_id, *members])

    def log_context(self) -> tuple[str, int]:
        """(node id, epoch) for every log line."""
        return self.node_id, self.repl.epoch if self._replicating else 0

    # -- serving --

    async def start(self) -> None:
        how = self._how
        try:
            self.writer.start()
            await self.server.start()
            await self.peer_server.start()
            self.repl.start(
                peers=self.peers,
                writer=self.writer,
                address=self.peer_address,
                found=how.found,
                seeds=how.seeds,
                quorum=how.quorum,
            )
            self._replicating = True
            if self.web is not None:
                await self._serve_web(self.web)
            if self.metrics is not None:
                cfg = self.config
                self.metrics_port = self.metrics.serve(cfg.metrics_port or 0, cfg.listen_host)
                log.info("metrics on http://%s:%d/metrics", cfg.listen_host, self.metrics_port)
        except BaseException:
            self._dir_lock.release()  # (an in-process caller may try again)
            raise
        self._housekeeping = asyncio.get_running_loop().create_task(
            self._keep_house(), name="housekeeping"
        )
        log.info(
            "node %s serving clients on %s, peers on %s (applied index %d%s)%s",
            self.node_id,
            self.address,
            self.peer_address,
            self.store.last_index,
            f"; quorum {self.repl.status().membership.quorum}"
            if how.found or how.members_stored
            else "",
            "" if how.found else f"; looking for the master via {self._known_members()}",
        )

    def _known_members(self) -> str:
        members = self.repl.status().membership.addresses
        others = [a for n, a in members.items() if n != self.node_id]
        return ", ".join(others or self.config.join) or "no one"

    def request_stop(self) -> None:
        self._stopping.asked.set()

    async def wait_stopped(self) -> None:
        await self._stopping.asked.wait()

    # -- what the role core tells --

    def role_changed(self, change: RoleChanged) -> None:
        if self.metrics is not None and change.elected:
            self.metrics.elections.inc()
        majority = self.repl.status().membership.majority
        if change.role is Role.MASTER and majority and self.config.min_in_sync > 1:
            log.warning(
                "node %s: --min-in-sync %d is ignored: this cluster is in majority mode, "
                "where a write needs a majority of the voters",
                self.node_id,
                self.config.min_in_sync,
            )
        if change.elected and self.repl.status().membership.majority:
            # a majority master commits older entries only with one of its
            # own epoch after them (chatd/core/leader.py): it writes one now
            # rather than at the first client write
            self._noops.add(task := asyncio.get_running_loop().create_task(self._write_noop()))
            task.add_done_callback(self._noops.discard)

    async def _write_noop(self) -> None:
        entry = log_pb2.Entry(noop=log_pb2.Noop(), time_us=time.time_ns() // 1000)
        try:
            await self.writer.submit(entry)
        except ServerError as exc:  # stepped down meanwhile, or stopping
            log.info("node %s: the first entry of its epoch was not written: %s", self.node_id, exc)

    def in_sync_changed(self, change: InSyncChanged) -> None:
        if self.metrics is not None:
            for _, why in change.left:
                self.metrics.in_sync_drops.labels(why.split(":")[0]).inc()

    # -- housekeeping --

    async def _keep_house(self) -> None:
        """The node's background loops, under one task group: stop() cancels
        them all; one that fails stops the node (its fatal error)."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._expire_sessions(), name="session-expiry")
                tg.create_task(self._retain_log(), name="log-retention")
                tg.create_task(self._checkpoint(), name="wal-checkpoint")
                tg.create_task(self.digests.run(), name="state-digests")
                tg.create_task(self._follow_protocol(), name="cluster-protocol")
                tg.create_task(self.health.run(self.config.heartbeat_interval), name="health")
                if self.metrics is not None:
                    tg.create_task(self._refresh_metrics(self.metrics), name="metrics")
        except Exception as exc:  # (an ExceptionGroup of the loops that failed)
            log.error("node %s: a housekeeping loop failed: %r", self.node_id, exc)
            await self._stopping.fail(exc)

    async def _expire_sessions(self) -> None:
        every = max(1.0, min(self.config.session_ttl / 10, 60.0))
        while True:
            await asyncio.sleep(every)
            try:
                n = await self.chat.expire_idle_sessions()
            except Exception as exc:  # the writer is closing or failed
                log.debug("session expiry skipped: %s", exc)
                continue
            if n:
                log.info("expired %d idle sessions", n)

    async def _follow_protocol(self) -> None:
        """At the master, every heartbeat: once every member (this node, and
        each other member as its log stream's headers said) speaks a newer
        protocol than the cluster's, it writes that version into the log
        (chatd.server.protocol); entries of it are written from then on."""
        said = Repeated()  # why it was not written, said once (and each minute)
        while self.store.cluster_version < protocol.VERSION:  # (then: never again)
            c = self.repl.status()
            if c.role is Role.MASTER:
                others = [n for n in c.membership.addresses if n != self.node_id]
                version = min([protocol.VERSION, *(self.peers.protocols.get(n, 1) for n in others)])
                if version > self.store.cluster_version:
                    op = log_pb2.SetClusterVersion(version=version)
                    entry = log_pb2.Entry(set_cluster_version=op)
                    try:
                        await self.writer.submit(entry)
                        log.info(
                            "node %s: the cluster speaks protocol %d now (every member does)",
                            self.node_id,
                            version,
                        )
                    except ServerError as exc:  # stepped down, stopping, too few in sync
                        why = f"node {self.node_id}: protocol {version} not written: {exc}"
                        if said.due(why):
                            log.info("%s (trying again each heartbeat)", why)
            await asyncio.sleep(self.config.heartbeat_interval)

    async def _refresh_metrics(self, metrics: Metrics) -> None:
        while True:
            metrics.refresh(self)
            await asyncio.sleep(self.config.heartbeat_interval)

    async def _retain_log(self) -> None:
        keep = self.config.log_retention
        while True:
            await asyncio.sleep(1.0)
            if self.store.last_index - self.repl.status().log_start > keep + keep // 10:
                await self.repl.truncate_log(keep)

    async def _checkpoint(self) -> None:
        """Copies the write-ahead log into the database file in the
        background, so a commit seldom does the copy itself (and the copy
        leaves the write path: benchmarks/ANALYSIS.md, "Background
        checkpoints", has the measurement)."""
        loop = asyncio.get_running_loop()
        done = self.store.commits
        warned = -CHECKPOINT_WARN_EVERY_S
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            if self.store.commits == done:
                continue
            done = self.store.commits
            try:
                await loop.run_in_executor(self._threads.checkpoint, self.store.checkpoint)
            except Exception as exc:  # the commits still checkpoint; say so, not too often
                if loop.time() - warned >= CHECKPOINT_WARN_EVERY_S:
                    warned = loop.time()
                    log.warning("background checkpoint failed: %s", exc)

    # -- the web client --

    async def _serve_web(self, web: WebServer) -> None:
        """Listens for pages (--web-listen): without a cluster secret on
        loopback only, as the client listener."""
        cfg = self.config
        assert cfg.web_listen is not None
        host, port = parse_address(cfg.web_listen)
        if cfg.cluster_secret is None and cfg.tls_ca is None and not is_loopback(host):
            log.warning("no cluster secret configured: serving pages on loopback only: %s", host)
            host = "127.0.0.1"
        try:
            port = await web.start(host, port)
        except OSError as exc:
            raise StartupError(f"cannot serve the web client on {host}:{port}: {exc}") from exc
        self.web_origins.own = cfg.web_origin_at(host, port)  # (the port bound, for a port 0)
        web.origins = self.web_origins_now
        web.hello = self.web_hello
        log.info("web client on %s/", self.web_origin)

    @property
    def web_origin(self) -> str:
        """Where browsers reach this node's page ("" until it listens)."""
        return self.web_origins.own

    def web_hello(self) -> dict[str, object]:
        """What a page is told first: this node, its role, where to go, and
        how long it may leave the page's calls unanswered before the page
        goes elsewhere."""
        role, _ = self.router.route()
        return {
            "node_id": self.node_id,
            "role": role.value,
            "web": self.web_origins_now(),
            "answer_timeout_ms": round(self.config.web_answer_timeout * 1000),
        }

    # -- shutdown --

    async def stop(self) -> None:
        log.info("node %s stopping", self.node_id)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self.health.stop()
        if self.web is not None:
            await self.web.stop()  # the pages go elsewhere at once
        # A node that failed sends nothing more and ends every call at once:
        # its master sees the log stream end and learns of the crash in a
        # round trip instead of a failover timeout
        grace = 0.0 if self.fatal is not None else SHUTDOWN_GRACE_S
        stopping = asyncio.gather(self.server.stop(grace), self.peer_server.stop(grace))
        await asyncio.sleep(0)  # the server refuses new calls from here on
        self.hub.end_all("the node is shutting down")
        self.peers.end_inbound()  # its master's log stream too: it would hold the grace
        await stopping
        await self.writer.close()
        await self.repl.stop()
        await self.peers.close()
        if self.metrics is not None:
            self.metrics.stop()
        await asyncio.get_running_loop().run_in_executor(self._threads.db, self.store.close)
        self._dir_lock.release()
        self._threads.shutdown()
        log.info("node %s stopped", self.node_id)
