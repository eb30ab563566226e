"""The node: opens the store, wires chat, writer, replication and services.

Reads top to bottom: startup (store, identity, services, listen, role core),
the main wait, and a graceful shutdown (stop accepting, end streams, finish
in-flight calls, drain the writer, close the database).

Restart is not bootstrap: a data dir that holds a node rejoins the members it
has stored, whatever the flags; `--role master` founds a cluster only in an
empty data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chatd import private, tls
from chatd.config import Config, parse_address
from chatd.contract import FORWARDED_HEADER, KEEPALIVE_SERVER_OPTIONS
from chatd.core.quorum import IN_SYNC
from chatd.core.types import InSyncChanged, Role, RoleChanged, Timing
from chatd.logs import Repeated
from chatd.proto import chat_pb2, cluster_pb2, cluster_pb2_grpc, log_pb2
from chatd.server import protocol
from chatd.server.api.admin_service import NodeAdminServicer
from chatd.server.api.client_service import ClientAccountServicer
from chatd.server.api.handlers import add_service
from chatd.server.api.health import Health
from chatd.server.api.metrics import Metrics
from chatd.server.api.router import Router
from chatd.server.api.user_admin import UserAdmin
from chatd.server.chat.hub import Hub
from chatd.server.chat.limits import ChatLimits
from chatd.server.chat.rules import Chat
from chatd.server.cluster.digests import DigestWatcher
from chatd.server.cluster.floors import Floors
from chatd.server.cluster.peer_service import MasterServicer, SlaveServicer
from chatd.server.cluster.peers import CLUSTER_MESSAGE_LIMIT, Peers
from chatd.server.cluster.replication import Replicator
from chatd.server.cluster.secret import ADMIN_PREFIXES, PEER_PREFIXES, SecretInterceptor
from chatd.server.errors import DataDirBusy, NoMaster, ServerError
from chatd.server.errors import StartupError as StartupError  # chatd.cli imports it here
from chatd.server.storage import backup
from chatd.server.storage.backup import BackupError
from chatd.server.storage.dirlock import DataDirLock
from chatd.server.storage.store import Store
from chatd.server.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)

Q = TypeVar("Q")
R = TypeVar("R")

DB_FILE = "chatd.sqlite3"
BACKUP_CHUNK = 1 << 20
SHUTDOWN_GRACE_S = 5.0
CHECKPOINT_EVERY_S = 0.1
CHECKPOINT_WARN_EVERY_S = 60.0


def _joined(host: str, port: int) -> str:
    return f"{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Node:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.node_id = ""
        self.address = ""  # where clients reach this node
        self.peer_address = ""  # where the other nodes do (the peer listener)
        self.port = 0
        self.peer_port = 0
        self.hub = Hub(config.subscriber_queue)
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="chatd-db")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="chatd-read")
        self._checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="chatd-checkpoint")
        self._hasher = ThreadPoolExecutor(2, thread_name_prefix="chatd-hash")
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._noops: set[asyncio.Task[None]] = set()
        self._backup_slot = asyncio.Lock()
        self.fatal: BaseException | None = None
        self.metrics: Metrics | None = Metrics() if config.metrics_port is not None else None
        self.metrics_port = 0
        self._dir_lock = DataDirLock(config.data_dir)

    # -- startup --

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._refuse_unreachable_in_a_container()
        try:
            private.data_dir(cfg.data_dir)  # 0700, its files 0600, whatever the umask
        except OSError as exc:
            raise StartupError(f"cannot use data dir {cfg.data_dir}: {exc}") from exc
        try:  # before anything in the dir is touched
            await loop.run_in_executor(self._db_thread, self._dir_lock.acquire)
        except DataDirBusy as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:
            raise StartupError(f"cannot lock data dir {cfg.data_dir}: {exc}") from exc
        try:
            await self._start_locked()
        except BaseException:
            self._dir_lock.release()  # (an in-process caller may try again)
            raise

    async def _start_locked(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        for pattern in ("backup-*.tmp*", "snapshot-*.tmp*"):  # (a run killed midway left them)
            for leftover in cfg.data_dir.glob(pattern):
                leftover.unlink(missing_ok=True)
        if cfg.restore is not None:
            await loop.run_in_executor(self._db_thread, self._restore, cfg.restore)
        self.store = await loop.run_in_executor(
            self._db_thread,
            lambda: Store(cfg.data_dir / DB_FILE, synchronous=cfg.sync.upper()),
        )
        await loop.run_in_executor(self._db_thread, self._load_identity)
        # a restored store holds data but belongs to no cluster yet: it founds one
        no_cluster = not self.store.get_meta("membership") and not self.store.get_meta("epoch")
        restored = no_cluster and self.store.get_meta("restored_from") is not None
        has_data = not no_cluster or (self.store.last_index > 0 and not restored)
        self._wire()
        self.server, self.peer_server = self._build_servers()
        self.address = cfg.advertise or self.address
        self.peer_address = cfg.peer_advertise or self._peer_default()
        self.router.client_address = self.address
        self.writer.start()
        await self.server.start()
        await self.peer_server.start()
        found = not has_data and not cfg.join
        if has_data and cfg.join:
            log.info("node %s has data: rejoining its stored members", self.node_id)
        stored = self.repl.durable().membership
        if has_data and cfg.quorum and stored.members and cfg.quorum != stored.quorum:
            raise StartupError(
                f"--quorum {cfg.quorum}: this node's cluster was founded with quorum"
                f" {stored.quorum}, which cannot change"
            )
        self.repl.start(
            peers=self.peers,
            writer=self.writer,
            address=self.peer_address,
            found=found,
            seeds=cfg.join,
            quorum=cfg.quorum or IN_SYNC,
        )
        self._start_background_tasks()
        log.info(
            "node %s serving clients on %s, peers on %s (applied index %d%s)%s",
            self.node_id,
            self.address,
            self.peer_address,
            self.store.last_index,
            f"; quorum {self.repl.status().membership.quorum}" if found or stored.members else "",
            "" if found else f"; looking for the master via {self._known_members()}",
        )

    def _wire(self) -> None:
        """Builds the replication driver, its peers, the writer and the chat
        rules over the open store."""
        cfg = self.config
        self.store_lock = asyncio.Lock()
        ticks = max(2, round(cfg.failover_timeout / cfg.heartbeat_interval))
        lag_ticks = round(cfg.max_lag_time / cfg.heartbeat_interval)
        self.repl = Replicator(
            self.node_id,
            self.store,
            self.store_lock,
            self._db_thread,
            self.hub,
            Timing(
                failover=ticks,
                election=max(2, ticks // 2),
                retry=max(2, ticks // 2),
                max_lag=lag_ticks,
            ),
            cfg.heartbeat_interval,
            cfg.data_dir,
            self._fail,
            self._count_elections,
            self._count_in_sync_drops,
            min_in_sync=cfg.min_in_sync,
        )
        try:
            creds = (
                tls.channel_credentials(cfg.tls_ca, cfg.tls_cert, cfg.tls_key) if cfg.tls else None
            )
        except tls.TlsError as exc:
            raise StartupError(str(exc)) from exc
        self.peers = Peers(self.repl, cfg.cluster_secret, cfg.data_dir, creds)
        mismatch = self.metrics.state_digest_mismatches.inc if self.metrics is not None else None
        self.floors = Floors(self.node_id, cfg.min_in_sync)
        self.digests = DigestWatcher(
            self.node_id, self.store, self.store_lock, self.repl, self.peers, mismatch, self.floors
        )
        self.writer = GroupCommitWriter(
            self.store, self.hub, self._db_thread, self.repl, self._fail, self.store_lock
        )
        # each chat limit is the setting of its name
        limits = ChatLimits(**{f.name: getattr(cfg, f.name) for f in fields(ChatLimits)})
        self.chat = Chat(self.store, self.writer, self.hub, limits, self._hasher, self._reader)
        self.user_admin = UserAdmin(self.chat)

    def _start_background_tasks(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._expire_sessions(), name="session-expiry"))
        self._tasks.append(loop.create_task(self._retain_log(), name="log-retention"))
        self._tasks.append(loop.create_task(self._checkpoint(), name="wal-checkpoint"))
        self._tasks.append(loop.create_task(self.digests.run(), name="state-digests"))
        self._tasks.append(loop.create_task(self._follow_protocol(), name="cluster-protocol"))
        self._tasks.append(loop.create_task(self.health.run(cfg.heartbeat_interval), name="health"))
        if self.metrics is not None:
            self.metrics_port = self.metrics.serve(cfg.metrics_port or 0, cfg.listen_host)
            self._tasks.append(loop.create_task(self._refresh_metrics(), name="metrics"))
            log.info("metrics on http://%s:%d/metrics", cfg.listen_host, self.metrics_port)

    def _known_members(self) -> str:
        members = self.repl.status().membership.addresses
        others = [a for n, a in members.items() if n != self.node_id]
        return ", ".join(others or self.config.join) or "no one"

    def _restore(self, source: Path) -> None:
        try:
            info = backup.place_for_restore(source, self.config.data_dir / DB_FILE)
        except (BackupError, OSError) as exc:
            raise StartupError(f"cannot restore from {source}: {exc}") from exc
        if info is None:
            log.info("the data dir holds the restore of %s already: going on from it", source)
        else:
            log.info("restored %s into %s: %s", source, self.config.data_dir, info.line())

    def _load_identity(self) -> None:
        """The node id lives in the data dir; a given id must match it."""
        stored = self.store.get_meta("node_id")
        wanted = self.config.node_id
        if stored is not None and wanted is not None and stored != wanted:
            raise StartupError(
                f"data dir {self.config.data_dir} belongs to node {stored}, not {wanted}"
            )
        self.node_id = str(stored or wanted or uuid.uuid4().hex[:12])
        self.store.set_meta("node_id", self.node_id)

    def _refuse_unreachable_in_a_container(self) -> None:
        """Without a secret (or --tls-ca) a node serves on loopback only; in
        a container (chatd's image sets CHATD_IN_CONTAINER) loopback is
        reachable from nowhere else, so asked for another address it does
        not start rather than serve where no one can reach it."""
        cfg = self.config
        in_container = os.environ.get("CHATD_IN_CONTAINER", "").lower() in ("1", "true", "yes")
        wanted = [h for h in (cfg.listen_host, cfg.peer_host) if not is_loopback(h)]
        if in_container and wanted and cfg.cluster_secret is None and cfg.tls_ca is None:
            raise StartupError(
                "no cluster secret: without one a node serves on loopback only, which "
                "nothing outside this container can reach; set CHATD_CLUSTER_SECRET "
                "(or --cluster-secret-file FILE, e.g. a Docker secret)"
            )

    def _build_servers(self) -> tuple[grpc.aio.Server, grpc.aio.Server]:
        """Two listeners (etcd's client/peer split). Clients get --listen, where
        gRPC refuses a request above --max-request-bytes before buffering it;
        the other nodes get --peer-listen, with the cluster's large limit and
        every call but health checks behind the secret (mutual TLS with
        --tls-ca). NodeAdmin (status, members) is on both, for operators."""
        cfg = self.config
        client_host, peer_host = cfg.listen_host, cfg.peer_host
        if cfg.cluster_secret is None and cfg.tls_ca is None:
            for what, host in (("clients", client_host), ("peers", peer_host)):
                if not is_loopback(host):
                    log.warning(
                        "no cluster secret configured: serving %s on loopback only, not on %s",
                        what,
                        host,
                    )
            client_host = client_host if is_loopback(client_host) else "127.0.0.1"
            peer_host = peer_host if is_loopback(peer_host) else "127.0.0.1"
        router = Router(self.repl, self.peers)
        servicer = ClientAccountServicer(self.chat, router, cfg.max_request_bytes)
        relays = ClientAccountServicer(self.chat, router, cfg.max_request_bytes, relays=True)
        if self.metrics is not None:
            for s in (servicer, relays):
                self.metrics.instrument(s, chat_pb2.DESCRIPTOR.services_by_name["ClientAccount"])
        self.router = router
        self.health = Health(self.repl)
        admin = NodeAdminServicer(self)
        # clients: NodeAdmin behind the secret; under mutual TLS without one,
        # the peer listener alone serves it (this one asks no certificate)
        client = grpc.aio.server(
            interceptors=[
                SecretInterceptor(
                    cfg.cluster_secret, ADMIN_PREFIXES, refuse_unguarded=cfg.tls_ca is not None
                )
            ],
            options=[
                ("grpc.max_receive_message_length", cfg.max_request_bytes),
                ("grpc.so_reuseport", 0),
                *KEEPALIVE_SERVER_OPTIONS,  # what every chatd channel's pings respect
            ],
        )
        add_service(client, servicer, chat_pb2, "ClientAccount")
        add_service(client, admin, cluster_pb2, "NodeAdmin")
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, client)
        peer = grpc.aio.server(
            interceptors=[SecretInterceptor(cfg.cluster_secret, PEER_PREFIXES)],
            options=[
                # cluster batches and snapshot chunks are large
                ("grpc.max_receive_message_length", CLUSTER_MESSAGE_LIMIT),
                ("grpc.so_reuseport", 0),
                *KEEPALIVE_SERVER_OPTIONS,
            ],
        )
        add_service(peer, relays, chat_pb2, "ClientAccount")  # relayed calls
        add_service(peer, MasterServicer(self.repl, self.digests), cluster_pb2, "MasterService")
        slave = SlaveServicer(self.repl, self.peers)
        # (AcceptUpdates reads its frames itself: one that does not parse ends it)
        add_service(peer, slave, cluster_pb2, "SlaveService", malformed_frames=False)
        add_service(peer, admin, cluster_pb2, "NodeAdmin")
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, peer)
        if cfg.reflection:
            chat_name = chat_pb2.DESCRIPTOR.services_by_name["ClientAccount"].full_name
            health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
            services = cluster_pb2.DESCRIPTOR.services_by_name
            cluster_names = [s.full_name for s in services.values()]
            admin_name = services["NodeAdmin"].full_name
            reflection.enable_server_reflection(
                [chat_name, admin_name, health_name, reflection.SERVICE_NAME], client
            )
            reflection.enable_server_reflection(
                [chat_name, *cluster_names, health_name, reflection.SERVICE_NAME], peer
            )
        self.port = self._listen(client, client_host, cfg.listen_port, with_ca=False)
        self.peer_port = self._listen(peer, peer_host, cfg.peer_port, with_ca=True)
        self.address = _joined(client_host, self.port)
        self.peer_address = _joined(peer_host, self.peer_port)
        return client, peer

    def _peer_default(self) -> str:
        """Without --peer-advertise: the peer listener's address, its host
        taken from --advertise when it listens on every interface (0.0.0.0
        reaches no one)."""
        host = self.config.peer_host
        if self.config.advertise and host in ("0.0.0.0", "::", ""):
            return _joined(parse_address(self.config.advertise)[0], self.peer_port)
        return self.peer_address

    def _listen(self, server: grpc.aio.Server, host: str, port: int, with_ca: bool) -> int:
        cfg = self.config
        bind = _joined(host if ":" not in host else f"[{host}]", port)
        try:
            if cfg.tls_cert is not None and cfg.tls_key is not None:
                ca = cfg.tls_ca if with_ca else None
                creds = tls.server_credentials(cfg.tls_cert, cfg.tls_key, ca)
                return server.add_secure_port(bind, creds)
            return server.add_insecure_port(bind)
        except tls.TlsError as exc:
            raise StartupError(str(exc)) from exc
        except RuntimeError as exc:
            raise StartupError(f"cannot listen on {bind}: {exc}") from exc

    def log_context(self) -> tuple[str, int]:
        """(node id, epoch) for every log line."""
        repl = getattr(self, "repl", None)
        return (
            self.node_id or "-",
            repl.epoch if repl is not None and hasattr(repl, "core") else 0,
        )

    # -- what the admin service reads and does --

    def status(self) -> cluster_pb2.NodeStatus:
        c = self.repl.status()
        members = []
        for nid, addr in sorted(c.membership.addresses.items()):
            p = c.followers.get(nid)
            me = nid == self.node_id
            unknown = not me and (p is None or not p.heard)
            applied = self.store.last_index if me else (p.match if p is not None else 0)
            members.append(
                cluster_pb2.MemberStatus(
                    node_id=nid,
                    address=addr,
                    role="master" if nid == c.master else "slave",
                    in_sync=nid in c.membership.in_sync,
                    applied_index=applied,
                    lag=0 if unknown else max(0, c.last.index - applied),
                    applied_unknown=unknown,
                    alive=me or (p is not None and p.alive),
                    left_reason=p.left if p is not None else "",
                    min_in_sync=self.floors.of(nid) if me or c.role is Role.MASTER else 0,
                )
            )
        return cluster_pb2.NodeStatus(
            node_id=self.node_id,
            role=c.role.value,
            epoch=c.epoch,
            master=self.router.for_clients(self.repl.route()),
            master_peer_address=c.master_address,
            master_id=c.master,
            address=self.address,
            peer_address=self.peer_address,
            applied_index=self.store.last_index,
            commit_index=c.commit,
            log_digest=self.store.digest.hex(),
            state_digest=self.store.state_digest.hex(),
            members=members,
            quorum=c.membership.quorum,
            min_in_sync=self.config.min_in_sync,
            writes_refused=bool(self.repl.refusal()),
            rolled_back=self.repl.rolled_back.entries,
            rollback_files=self.repl.rolled_back.files,
            diverged=self.digests.status() if c.role is Role.MASTER else [],
        )

    async def cluster_status(self, forwarded: bool = False) -> cluster_pb2.NodeStatus:
        """This node's status; the members as the master sees them (a slave
        asks the master: only the master keeps their progress)."""
        own = self.status()
        if own.role == Role.MASTER.value:
            own.members_seen_by = self.node_id
            return own
        for m in own.members:  # what a node that is not master knows by itself
            m.alive = m.node_id == self.node_id or (
                own.role == Role.SLAVE.value and m.node_id == own.master_id
            )
        if own.role != Role.SLAVE.value or forwarded:
            return own
        try:
            theirs = await self._master_admin(False).Status(
                cluster_pb2.StatusRequest(), metadata=self._forwarded_metadata, timeout=1.0
            )
        except (NoMaster, grpc.aio.AioRpcError):
            return own
        if theirs.role == Role.MASTER.value and theirs.node_id == own.master_id:
            self.router.heard(own.master_peer_address, theirs.address)
            own.master = self.router.for_clients(self.repl.route())
        seen = {m.node_id: m for m in theirs.members}
        for m in own.members:
            if (t := seen.get(m.node_id)) is not None:
                m.alive, m.applied_index, m.lag = t.alive, t.applied_index, t.lag
                m.applied_unknown = t.applied_unknown
                m.left_reason = t.left_reason
                m.min_in_sync = t.min_in_sync
        own.members_seen_by = theirs.node_id
        return own

    def _master_admin(self, forwarded: bool) -> cluster_pb2_grpc.NodeAdminAsyncStub:
        """The master's NodeAdmin, for a call asked of this slave: carried
        over the peer listener (an address only the nodes may reach).
        `forwarded`: the call came from another node, which took this one
        for the master; it is not carried on again."""
        c = self.repl.status()
        if forwarded or c.role is not Role.SLAVE or not c.master_address:
            raise NoMaster("no master is reachable right now; try again shortly")
        return cluster_pb2_grpc.NodeAdminStub(self.peers.channel(c.master_address))

    @property
    def _forwarded_metadata(self) -> tuple[tuple[str, str], ...]:
        return (*self.peers.metadata, (FORWARDED_HEADER, "1"))

    async def manage_user(
        self, request: cluster_pb2.UserAdminRequest, forwarded: bool = False
    ) -> cluster_pb2.UserAdminResponse:
        """`chatd users`: at the master; a slave carries it there."""
        answer = cluster_pb2.UserAdminResponse
        handle = self.user_admin.handle
        return await self._at_master("ManageUser", request, handle, answer, forwarded)

    async def resend(
        self, request: cluster_pb2.ResendRequest, forwarded: bool = False
    ) -> cluster_pb2.ResendResponse:
        """`chatd rollback resend`: at the master; a slave carries it there."""
        answer = cluster_pb2.ResendResponse
        return await self._at_master("Resend", request, self.user_admin.resend, answer, forwarded)

    async def _at_master(
        self,
        rpc: str,
        request: Q,
        here: Callable[[Q], Awaitable[R]],
        answer: Callable[..., R],
        forwarded: bool,
    ) -> R:
        """An operator's request answered by the master (`here`, on it;
        else carried there); `answer(ok=False, error=...)` when it cannot."""
        if self.repl.status().role is Role.MASTER:
            return await here(request)
        try:
            stub = self._master_admin(forwarded)
            call = getattr(stub, rpc)
            got: R = await call(request, metadata=self._forwarded_metadata, timeout=30.0)
            return got
        except NoMaster as exc:
            return answer(ok=False, error=str(exc))
        except grpc.aio.AioRpcError as exc:
            error = f"the master did not answer: {exc.code().name}: {exc.details()}"
            return answer(ok=False, error=error)

    async def remove_member(self, node_id: str, forwarded: bool = False) -> tuple[bool, str]:
        """`forwarded`: asked by another node, which took this one for the
        master (it is not carried on again)."""
        c = self.repl.status()
        if c.role is not Role.MASTER:
            try:
                stub = self._master_admin(forwarded)
                r = await stub.RemoveMember(
                    cluster_pb2.RemoveMemberRequest(node_id=node_id),
                    metadata=self._forwarded_metadata,
                    timeout=30.0,
                )
            except NoMaster as exc:
                return False, str(exc)
            except grpc.aio.AioRpcError as exc:
                return False, f"the master did not answer: {exc.code().name}: {exc.details()}"
            return r.ok, r.error
        if node_id == self.node_id:
            return False, "the master cannot remove itself"
        if node_id not in c.membership.addresses:
            return False, f"{node_id} is not a member"
        ok = False
        for _ in range(50):  # bounded: wait for a membership change under way
            ok = self.repl.remove_member(node_id)
            if ok:
                break
            await asyncio.sleep(self.config.heartbeat_interval)
        return (True, "") if ok else (False, "a membership change is under way; try again")

    async def backup(self, forwarded: bool = False) -> AsyncIterator[cluster_pb2.BackupChunk]:
        """A backup of the master's store, in chunks; a slave carries the
        stream from the master (over the peer listener). `forwarded`: asked
        by another node, which took this one for the master."""
        c = self.repl.status()
        if c.role is not Role.MASTER:
            stub = self._master_admin(forwarded)
            call = stub.Backup(cluster_pb2.BackupRequest(), metadata=self._forwarded_metadata)
            try:
                async for chunk in call:
                    yield chunk
            except grpc.aio.AioRpcError as exc:
                raise NoMaster(f"the master: {exc.code().name}: {exc.details()}") from exc
            finally:
                call.cancel()
            return
        path = self.config.data_dir / f"backup-{uuid.uuid4().hex[:8]}.tmp"
        try:
            async with self._backup_slot:  # one copy of the store at a time
                await asyncio.to_thread(self.store.snapshot_to, path)
                info = await asyncio.to_thread(backup.recorded, path)  # (the reader checks it)
            log.info("node %s: backup taken: %s", self.node_id, info.line())
            with path.open("rb") as f:
                sent = 0
                while True:
                    data = await asyncio.to_thread(f.read, BACKUP_CHUNK)
                    sent += len(data)
                    yield cluster_pb2.BackupChunk(
                        data=data,
                        index=info.index,
                        epoch=info.epoch,
                        state_digest=info.state_digest,
                        total_bytes=info.size,
                        last=sent >= info.size,
                    )
                    if sent >= info.size:
                        break
        finally:
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)

    # -- background work --

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

    async def _fail(self, exc: BaseException) -> None:
        self.fatal = exc
        self._stopped.set()

    # -- main wait and shutdown --

    def request_stop(self) -> None:
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def _count_elections(self, change: RoleChanged) -> None:
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

    async def _write_noop(self) -> None:
        entry = log_pb2.Entry(noop=log_pb2.Noop(), time_us=time.time_ns() // 1000)
        try:
            await self.writer.submit(entry)
        except ServerError as exc:  # stepped down meanwhile, or stopping
            log.info("node %s: the first entry of its epoch was not written: %s", self.node_id, exc)

    def _count_in_sync_drops(self, change: InSyncChanged) -> None:
        if self.metrics is not None:
            for _, why in change.left:
                self.metrics.in_sync_drops.labels(why.split(":")[0]).inc()

    async def _refresh_metrics(self) -> None:
        assert self.metrics is not None
        while True:
            self.metrics.refresh(self)
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
                await loop.run_in_executor(self._checkpoint_thread, self.store.checkpoint)
            except Exception as exc:  # the commits still checkpoint; say so, not too often
                if loop.time() - warned >= CHECKPOINT_WARN_EVERY_S:
                    warned = loop.time()
                    log.warning("background checkpoint failed: %s", exc)

    async def stop(self) -> None:
        log.info("node %s stopping", self.node_id)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.health.stop()
        # A node that failed sends nothing more and ends every call at once:
        # its master sees the log stream end and learns of the crash in a
        # round trip instead of a failover timeout
        grace = 0.0 if self.fatal is not None else SHUTDOWN_GRACE_S
        stopping = asyncio.gather(self.server.stop(grace), self.peer_server.stop(grace))
        await asyncio.sleep(0)  # the server refuses new calls from here on
        self.hub.end_all("the node is shutting down")
        await stopping
        await self.writer.close()
        await self.repl.stop()
        await self.peers.close()
        if self.metrics is not None:
            self.metrics.stop()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._db_thread, self.store.close)
        self._dir_lock.release()
        for pool in (self._db_thread, self._reader, self._hasher, self._checkpoint_thread):
            pool.shutdown(wait=False, cancel_futures=True)
        log.info("node %s stopped", self.node_id)
