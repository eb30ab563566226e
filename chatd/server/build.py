"""Builds a node: locks and opens its data dir, makes the replication
driver, its transport, the writer, the chat rules and the servicers, binds
both listeners, and hands a Node (chatd.server.node) with every part made.
Nothing is served until `Node.start()`.

Restart is not bootstrap: a data dir that holds a node rejoins the members it
has stored, whatever the flags; `--role master` founds a cluster only in an
empty data dir.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import uuid
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chatd import private, tls
from chatd.config import Config, is_loopback, parse_address
from chatd.contract import KEEPALIVE_SERVER_OPTIONS
from chatd.core.quorum import IN_SYNC
from chatd.core.types import Timing
from chatd.logs import NodeContext
from chatd.proto import chat_pb2, cluster_pb2
from chatd.server.api.admin_service import NodeAdminServicer, Place
from chatd.server.api.client_service import ClientAccountServicer
from chatd.server.api.handlers import add_service
from chatd.server.api.health import Health
from chatd.server.api.metrics import Metrics
from chatd.server.api.router import Router
from chatd.server.api.user_admin import UserAdmin
from chatd.server.chat.file_ops import FileOps
from chatd.server.chat.hub import Hub
from chatd.server.chat.limits import ChatLimits
from chatd.server.chat.rules import Chat
from chatd.server.cluster.digests import DigestWatcher
from chatd.server.cluster.floors import Floors
from chatd.server.cluster.peer_service import MasterServicer, SlaveServicer
from chatd.server.cluster.peers import CLUSTER_MESSAGE_LIMIT, Peers
from chatd.server.cluster.persistence import membership_from_json
from chatd.server.cluster.replication import Replicator
from chatd.server.cluster.secret import ADMIN_PREFIXES, PEER_PREFIXES, SecretInterceptor
from chatd.server.cluster.web_origins import WebOrigins
from chatd.server.errors import DataDirBusy, StartupError
from chatd.server.node import Listeners, Node, Start, Stopping, Threads
from chatd.server.storage import backup
from chatd.server.storage.backup import BackupError
from chatd.server.storage.dirlock import DataDirLock
from chatd.server.storage.store import Store
from chatd.server.storage.writer import GroupCommitWriter

if TYPE_CHECKING:
    from chatd.server.web.app import WebServer

log = logging.getLogger(__name__)

DB_FILE = "chatd.sqlite3"


def _joined(host: str, port: int) -> str:
    return f"{host}:{port}"


async def build(config: Config, context: NodeContext | None = None) -> Node:
    """The node of this config, built; `context` (the log lines') is told
    its id as soon as it is known. StartupError when it cannot be: the data
    dir is left as it was found, unlocked."""
    _refuse_unreachable_in_a_container(config)
    try:
        private.data_dir(config.data_dir)  # 0700, its files 0600, whatever the umask
    except OSError as exc:
        raise StartupError(f"cannot use data dir {config.data_dir}: {exc}") from exc
    threads = Threads.make()
    dir_lock = DataDirLock(config.data_dir)
    loop = asyncio.get_running_loop()
    try:  # before anything in the dir is touched
        await loop.run_in_executor(threads.db, dir_lock.acquire)
    except DataDirBusy as exc:
        threads.shutdown()
        raise StartupError(str(exc)) from None
    except OSError as exc:
        threads.shutdown()
        raise StartupError(f"cannot lock data dir {config.data_dir}: {exc}") from exc
    try:
        return await _build_locked(config, context, dir_lock, threads)
    except BaseException:
        dir_lock.release()  # (an in-process caller may try again)
        threads.shutdown()
        raise


async def _build_locked(
    cfg: Config, context: NodeContext | None, dir_lock: DataDirLock, threads: Threads
) -> Node:
    loop = asyncio.get_running_loop()
    for pattern in ("backup-*.tmp*", "snapshot-*.tmp*"):  # (a run killed midway left them)
        for leftover in cfg.data_dir.glob(pattern):
            leftover.unlink(missing_ok=True)
    if cfg.restore is not None:
        await loop.run_in_executor(threads.db, _restore, cfg, cfg.restore)
    store = await loop.run_in_executor(
        threads.db, lambda: Store(cfg.data_dir / DB_FILE, synchronous=cfg.sync.upper())
    )
    try:
        return await _wire(cfg, context, dir_lock, threads, store)
    except BaseException:
        await loop.run_in_executor(threads.db, store.close)
        raise


async def _wire(
    cfg: Config,
    context: NodeContext | None,
    dir_lock: DataDirLock,
    threads: Threads,
    store: Store,
) -> Node:
    """The parts over the open store, wired; both listeners bound."""
    loop = asyncio.get_running_loop()
    node_id = await loop.run_in_executor(threads.db, _identity, cfg, store)
    if context is not None:
        context.source = lambda: (node_id, 0)
    how = _how_to_start(cfg, node_id, store)

    # the replication driver, its transport, the writer, the chat rules
    hub = Hub(cfg.subscriber_queue)
    store_lock = asyncio.Lock()
    stopping = Stopping()
    metrics = Metrics() if cfg.metrics_port is not None else None
    ticks = max(2, round(cfg.failover_timeout / cfg.heartbeat_interval))
    timing = Timing(
        failover=ticks,
        election=max(2, ticks // 2),
        retry=max(2, ticks // 2),
        max_lag=round(cfg.max_lag_time / cfg.heartbeat_interval),
    )
    repl = Replicator(
        node_id,
        store,
        store_lock,
        threads.db,
        hub,
        timing,
        cfg.heartbeat_interval,
        cfg.data_dir,
        stopping.fail,
        min_in_sync=cfg.min_in_sync,
    )
    try:
        creds = tls.channel_credentials(cfg.tls_ca, cfg.tls_cert, cfg.tls_key) if cfg.tls else None
    except tls.TlsError as exc:
        raise StartupError(str(exc)) from exc
    peers = Peers(repl, cfg.cluster_secret, cfg.data_dir, creds)
    mismatch = metrics.state_digest_mismatches.inc if metrics is not None else None
    floors = Floors(node_id, cfg.min_in_sync)
    web_origins = WebOrigins(node_id, cfg.web_origin)
    digests = DigestWatcher(node_id, store, store_lock, repl, peers, mismatch, floors, web_origins)
    writer = GroupCommitWriter(store, hub, threads.db, repl, stopping.fail, store_lock)
    # each chat limit is the setting of its name
    limits = ChatLimits(**{f.name: getattr(cfg, f.name) for f in fields(ChatLimits)})
    chat = Chat(store, writer, hub, limits, threads.hasher, threads.reader)

    # the servicers, on two listeners
    router = Router(repl, peers)
    health = Health(repl)
    client, peer = _servers(cfg)
    listeners = _listen(cfg, client, peer)
    router.client_address = listeners.address
    file_ops = FileOps(chat, threads.images)  # (one, for both: its limits are per user)
    clients = ClientAccountServicer(chat, router, cfg.max_request_bytes, file_ops)
    relays = ClientAccountServicer(chat, router, cfg.max_request_bytes, file_ops, relays=True)
    if metrics is not None:
        for s in (clients, relays):
            metrics.instrument(s, chat_pb2.DESCRIPTOR.services_by_name["ClientAccount"])
    place = Place(node_id, listeners.address, listeners.peer_address)
    admin = NodeAdminServicer(
        place, cfg, store, repl, peers, router, UserAdmin(chat), floors, digests, web_origins
    )
    add_service(client, clients, chat_pb2, "ClientAccount")
    add_service(peer, relays, chat_pb2, "ClientAccount")  # relayed calls
    add_service(peer, MasterServicer(repl, digests), cluster_pb2, "MasterService")
    # (AcceptUpdates reads its frames itself: one that does not parse ends it)
    slave = SlaveServicer(repl, peers)
    add_service(peer, slave, cluster_pb2, "SlaveService", malformed_frames=False)
    for server in (client, peer):
        add_service(server, admin, cluster_pb2, "NodeAdmin")
        health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)

    web = _web_server(cfg, clients)
    node = Node(
        config=cfg,
        node_id=node_id,
        dir_lock=dir_lock,
        threads=threads,
        stopping=stopping,
        store=store,
        store_lock=store_lock,
        hub=hub,
        repl=repl,
        peers=peers,
        digests=digests,
        web_origins=web_origins,
        writer=writer,
        chat=chat,
        router=router,
        health=health,
        metrics=metrics,
        listeners=listeners,
        web=web,
        how=how,
    )
    repl.on_role_change = node.role_changed
    repl.on_in_sync_change = node.in_sync_changed
    if context is not None:
        context.source = node.log_context
    return node


def _web_server(cfg: Config, clients: ClientAccountServicer) -> WebServer | None:
    """The web listener's server (--web-listen), not listening yet: it calls
    the client listener's servicer; HTTPS with the node's certificate."""
    if cfg.web_listen is None:
        return None
    from chatd.server.web.app import WebServer  # (aiohttp: only for a node that serves pages)
    from chatd.server.web.gateway import Gateway

    context = None
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(f"cannot serve the web client with --tls-cert: {exc}") from exc
    return WebServer(
        Gateway(clients),
        first_message_timeout=cfg.first_frame_timeout,
        max_message_bytes=4 * cfg.max_request_bytes,  # (JSON is larger than protobuf)
        trusted_proxies=cfg.web_trusted_proxies,
        ssl_context=context,
        max_file_bytes=cfg.max_file_bytes,
    )


def _how_to_start(cfg: Config, node_id: str, store: Store) -> Start:
    # a restored store holds data but belongs to no cluster yet: it founds one
    no_cluster = not store.get_meta("membership") and not store.get_meta("epoch")
    restored = no_cluster and store.get_meta("restored_from") is not None
    has_data = not no_cluster or (store.last_index > 0 and not restored)
    if has_data and cfg.join:
        log.info("node %s has data: rejoining its stored members", node_id)
    stored = membership_from_json(store.get_meta("membership"))
    if has_data and cfg.quorum and stored.members and cfg.quorum != stored.quorum:
        raise StartupError(
            f"--quorum {cfg.quorum}: this node's cluster was founded with quorum"
            f" {stored.quorum}, which cannot change"
        )
    return Start(
        found=not has_data and not cfg.join,
        seeds=cfg.join,
        quorum=cfg.quorum or IN_SYNC,
        members_stored=bool(stored.members),
    )


def _restore(cfg: Config, source: Path) -> None:
    try:
        info = backup.place_for_restore(source, cfg.data_dir / DB_FILE)
    except (BackupError, OSError) as exc:
        raise StartupError(f"cannot restore from {source}: {exc}") from exc
    if info is None:
        log.info("the data dir holds the restore of %s already: going on from it", source)
    else:
        log.info("restored %s into %s: %s", source, cfg.data_dir, info.line())


def _identity(cfg: Config, store: Store) -> str:
    """The node id lives in the data dir; a given id must match it."""
    stored = store.get_meta("node_id")
    wanted = cfg.node_id
    if stored is not None and wanted is not None and stored != wanted:
        raise StartupError(f"data dir {cfg.data_dir} belongs to node {stored}, not {wanted}")
    node_id = str(stored or wanted or uuid.uuid4().hex[:12])
    store.set_meta("node_id", node_id)
    return node_id


def _refuse_unreachable_in_a_container(cfg: Config) -> None:
    """Without a secret (or --tls-ca) a node serves on loopback only; in
    a container (chatd's image sets CHATD_IN_CONTAINER) loopback is
    reachable from nowhere else, so asked for another address it does
    not start rather than serve where no one can reach it."""
    in_container = os.environ.get("CHATD_IN_CONTAINER", "").lower() in ("1", "true", "yes")
    wanted = [h for h in (cfg.listen_host, cfg.peer_host) if not is_loopback(h)]
    if in_container and wanted and cfg.cluster_secret is None and cfg.tls_ca is None:
        raise StartupError(
            "no cluster secret: without one a node serves on loopback only, which "
            "nothing outside this container can reach; set CHATD_CLUSTER_SECRET "
            "(or --cluster-secret-file FILE, e.g. a Docker secret)"
        )


def _servers(cfg: Config) -> tuple[grpc.aio.Server, grpc.aio.Server]:
    """Two listeners (etcd's client/peer split). Clients get --listen, where
    gRPC refuses a request above --max-request-bytes before buffering it;
    the other nodes get --peer-listen, with the cluster's large limit and
    every call but health checks behind the secret (mutual TLS with
    --tls-ca). NodeAdmin (status, members) is on both, for operators."""
    # clients: NodeAdmin behind the secret; under mutual TLS without one,
    # the peer listener alone serves it (this one asks no certificate)
    guard = SecretInterceptor(
        cfg.cluster_secret, ADMIN_PREFIXES, refuse_unguarded=cfg.tls_ca is not None
    )
    client = grpc.aio.server(
        interceptors=[guard],
        options=[
            ("grpc.max_receive_message_length", cfg.max_request_bytes),
            ("grpc.so_reuseport", 0),
            *KEEPALIVE_SERVER_OPTIONS,  # what every chatd channel's pings respect
        ],
    )
    peer = grpc.aio.server(
        interceptors=[SecretInterceptor(cfg.cluster_secret, PEER_PREFIXES)],
        options=[
            # cluster batches and snapshot chunks are large
            ("grpc.max_receive_message_length", CLUSTER_MESSAGE_LIMIT),
            ("grpc.so_reuseport", 0),
            *KEEPALIVE_SERVER_OPTIONS,
        ],
    )
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
    return client, peer


def _listen(cfg: Config, client: grpc.aio.Server, peer: grpc.aio.Server) -> Listeners:
    """Binds both servers: without a cluster secret (or --tls-ca), on
    loopback only. Clients are told --advertise, the other nodes
    --peer-advertise (without it: the peer listener's address, its host
    taken from --advertise when it listens on every interface, as 0.0.0.0
    reaches no one)."""
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
    port = _bind(cfg, client, client_host, cfg.listen_port, with_ca=False)
    peer_port = _bind(cfg, peer, peer_host, cfg.peer_port, with_ca=True)
    peer_address = _joined(peer_host, peer_port)
    if cfg.advertise and cfg.peer_host in ("0.0.0.0", "::", ""):
        peer_address = _joined(parse_address(cfg.advertise)[0], peer_port)
    return Listeners(
        client,
        peer,
        port,
        peer_port,
        address=cfg.advertise or _joined(client_host, port),
        peer_address=cfg.peer_advertise or peer_address,
    )


def _bind(cfg: Config, server: grpc.aio.Server, host: str, port: int, with_ca: bool) -> int:
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
