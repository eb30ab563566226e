"""The node: opens the store, wires chat, writer and services, serves, stops.

Reads top to bottom: startup (store, identity, services, listen), the main
wait, and a graceful shutdown (stop accepting, end streams, finish in-flight
calls, drain the writer, close the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc

from chatd.chat import Chat, Limits
from chatd.cluster import MasterServicer, NodeAdminServicer, SecretInterceptor
from chatd.config import Config
from chatd.hub import Hub
from chatd.proto import chat_pb2_grpc, cluster_pb2, cluster_pb2_grpc
from chatd.service import ClientAccountServicer
from chatd.store import Store
from chatd.writer import GroupCommitWriter

log = logging.getLogger(__name__)

DB_FILE = "chatd.sqlite3"
SHUTDOWN_GRACE_S = 5.0


class StartupError(Exception):
    """The node cannot start as configured (a clear, one-line reason)."""


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
        self.role = "master"
        self.epoch = 0
        self.node_id = ""
        self.address = ""
        self.port = 0
        self.hub = Hub(config.subscriber_queue)
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="chatd-db")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="chatd-read")
        self._hasher = ThreadPoolExecutor(2, thread_name_prefix="chatd-hash")
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.fatal: BaseException | None = None

    # -- startup --

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        try:
            cfg.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot use data dir {cfg.data_dir}: {exc}") from exc
        self.store = await loop.run_in_executor(
            self._db_thread,
            lambda: Store(cfg.data_dir / DB_FILE, synchronous=cfg.sync.upper()),
        )
        await loop.run_in_executor(self._db_thread, self._load_identity)
        self.writer = GroupCommitWriter(
            self.store, self.hub, self._db_thread, lambda: self.epoch, self._fail
        )
        limits = Limits(
            min_password_chars=cfg.min_password_length,
            max_message_chars=cfg.max_message_chars,
            session_ttl_s=cfg.session_ttl,
            password_hash_cost=cfg.password_hash_cost,
        )
        self.chat = Chat(self.store, self.writer, self.hub, limits, self._hasher, self._reader)
        self.server = self._build_server()
        self.writer.start()
        await self.server.start()
        self._tasks.append(loop.create_task(self._expire_sessions(), name="session-expiry"))
        log.info(
            "node %s serving on %s as %s at epoch %d (applied index %d)",
            self.node_id,
            self.address,
            self.role,
            self.epoch,
            self.store.last_index,
        )

    def _load_identity(self) -> None:
        """Node id and epoch live in the data dir; a given id must match it."""
        stored = self.store.get_meta("node_id")
        wanted = self.config.node_id
        if stored is not None and wanted is not None and stored != wanted:
            raise StartupError(
                f"data dir {self.config.data_dir} belongs to node {stored}, not {wanted}"
            )
        self.node_id = str(stored or wanted or uuid.uuid4().hex[:12])
        self.store.set_meta("node_id", self.node_id)
        self.epoch = int(self.store.get_meta("epoch", 0)) or 1
        self.store.set_meta("epoch", self.epoch)

    def _build_server(self) -> grpc.aio.Server:
        cfg = self.config
        host, port = cfg.listen_host, cfg.listen_port
        if cfg.cluster_secret is None and not is_loopback(host):
            log.warning("no cluster secret configured: listening on loopback only, not on %s", host)
            host = "127.0.0.1"
        server = grpc.aio.server(
            interceptors=[SecretInterceptor(cfg.cluster_secret)],
            options=[
                ("grpc.max_receive_message_length", cfg.max_request_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        chat_pb2_grpc.add_ClientAccountServicer_to_server(ClientAccountServicer(self.chat), server)
        cluster_pb2_grpc.add_MasterServiceServicer_to_server(MasterServicer(self), server)
        cluster_pb2_grpc.add_NodeAdminServicer_to_server(NodeAdminServicer(self), server)
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = server.add_insecure_port(bind)
        except RuntimeError as exc:
            raise StartupError(f"cannot listen on {bind}: {exc}") from exc
        self.address = f"{host}:{self.port}"
        return server

    # -- what the cluster services read --

    def check_master(self) -> cluster_pb2.CheckMasterResponse:
        return cluster_pb2.CheckMasterResponse(
            node_id=self.node_id,
            role=self.role,
            epoch=self.epoch,
            master_id=self.node_id,
            master_address=self.address,
            last_index=self.store.last_index,
            last_epoch=self.store.last_epoch,
        )

    def status(self) -> cluster_pb2.NodeStatus:
        me = cluster_pb2.MemberStatus(
            node_id=self.node_id,
            address=self.address,
            role=self.role,
            in_sync=True,
            applied_index=self.store.last_index,
            lag=0,
            alive=True,
        )
        return cluster_pb2.NodeStatus(
            node_id=self.node_id,
            role=self.role,
            epoch=self.epoch,
            master=self.address,
            master_id=self.node_id,
            address=self.address,
            applied_index=self.store.last_index,
            commit_index=self.store.last_index,
            digest=self.store.digest.hex(),
            members=[me],
        )

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

    async def stop(self) -> None:
        log.info("node %s stopping", self.node_id)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stopping = asyncio.get_running_loop().create_task(self.server.stop(SHUTDOWN_GRACE_S))
        await asyncio.sleep(0)  # the server refuses new calls from here on
        self.hub.end_all("the node is shutting down")
        await stopping
        await self.writer.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._db_thread, self.store.close)
        for pool in (self._db_thread, self._reader, self._hasher):
            pool.shutdown(wait=False, cancel_futures=True)
        log.info("node %s stopped", self.node_id)
