"""The NodeAdmin service: an operator's calls (status, members, users,
backups, resends). The master answers them; a slave carries each to the
master's NodeAdmin, once (FORWARDED_HEADER), in one place: `at_master`.

build.py puts it behind the cluster secret's interceptor
(`chatd.server.cluster.secret`) on both listeners.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc

from chatd.config import Config
from chatd.contract import FORWARDED_HEADER
from chatd.core.types import Role
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.server.api.ports import Cluster, Links
from chatd.server.api.router import Router
from chatd.server.api.status import abort
from chatd.server.api.user_admin import UserAdmin
from chatd.server.errors import NodeError, NoMaster
from chatd.server.storage import backup
from chatd.server.storage.rollback import Tally
from chatd.server.storage.store import Store

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

BACKUP_CHUNK = 1 << 20
CARRIED_TIMEOUT_S = 30.0  # an operator's call carried to the master
STATUS_TIMEOUT_S = 1.0  # a slave's status asks the master for its members


class Replication(Cluster, Protocol):
    """The replication driver, as the operator's calls read and change it."""

    rolled_back: Tally

    def refusal(self) -> str: ...

    def remove_member(self, node_id: str) -> bool: ...


class Floors(Protocol):
    def of(self, node: str) -> int: ...


class WebOrigins(Protocol):
    own: str

    def of(self, node_id: str) -> str: ...


class Digests(Protocol):
    def status(self) -> list[cluster_pb2.StateDivergence]: ...


@dataclass(frozen=True, slots=True)
class Place:
    """This node: its id and where clients and the other nodes reach it."""

    node_id: str
    address: str
    peer_address: str


def _forwarded(context: Ctx) -> bool:
    """Asked by another node that took this one for the master (carried no further)."""
    return any(k == FORWARDED_HEADER for k, _ in context.invocation_metadata() or ())


async def _ready(value: T) -> T:
    return value


async def _once(answer: Awaitable[T]) -> AsyncGenerator[T]:
    yield await answer


class NodeAdminServicer(cluster_pb2_grpc.NodeAdminServicer):
    def __init__(
        self,
        place: Place,
        config: Config,
        store: Store,
        repl: Replication,
        links: Links,
        router: Router,
        users: UserAdmin,
        floors: Floors,
        digests: Digests,
        web_origins: WebOrigins,
    ) -> None:
        self.place = place
        self.config = config
        self.store = store
        self.repl = repl
        self.links = links
        self.router = router
        self.users = users
        self.floors = floors
        self.digests = digests
        self.web_origins = web_origins
        self._backup_slot = asyncio.Lock()

    # -- the one way to the master --

    async def at_master(
        self,
        rpc: str,
        request: Any,
        context: Ctx,
        here: Callable[[], AsyncIterator[T]],
        within: float | None = CARRIED_TIMEOUT_S,
    ) -> AsyncGenerator[T]:
        """The answers to an operator's call: this node's (`here`) when it is
        the master; else the master's, the call carried there over the peer
        listener (an address only the nodes may reach) with the forwarded
        header, its answer awaited `within` seconds. NoMaster when there is
        no master to carry it to (or the call came from another node, which
        took this one for the master: it is not carried on again), or the
        master did not answer."""
        c = self.repl.status()
        if c.role is Role.MASTER:
            async for answer in here():
                yield answer
            return
        if _forwarded(context) or c.role is not Role.SLAVE or not c.master_address:
            raise NoMaster("no master is reachable right now; try again shortly")
        stub = cluster_pb2_grpc.NodeAdminStub(self.links.channel(c.master_address))
        metadata = (*self.links.metadata, (FORWARDED_HEADER, "1"))
        call = getattr(stub, rpc)(request, metadata=metadata, timeout=within)
        try:
            if isinstance(call, grpc.aio.UnaryStreamCall):
                async for answer in call:
                    yield answer
            else:
                yield await call
        except grpc.aio.AioRpcError as exc:
            error = f"the master did not answer: {exc.code().name}: {exc.details()}"
            raise NoMaster(error) from exc
        finally:
            call.cancel()

    async def _one(
        self,
        rpc: str,
        request: Any,
        context: Ctx,
        here: Callable[[], Awaitable[R]],
        within: float = CARRIED_TIMEOUT_S,
    ) -> R:
        """A unary call's answer, at the master (NoMaster: none)."""
        answers = self.at_master(rpc, request, context, lambda: _once(here()), within)
        async with aclosing(answers) as a:
            return await anext(a)

    async def _answer(
        self,
        rpc: str,
        request: Any,
        context: Ctx,
        here: Callable[[], Awaitable[R]],
        refused: Callable[..., R],
    ) -> R:
        """A unary call at the master; `refused(ok=False, error=...)` when it cannot be."""
        try:
            return await self._one(rpc, request, context, here)
        except NoMaster as exc:
            return refused(ok=False, error=str(exc))

    # -- the calls --

    async def Status(
        self, request: cluster_pb2.StatusRequest, context: Ctx
    ) -> cluster_pb2.NodeStatus:
        """This node's status; the members as the master sees them (a slave
        asks the master: only the master keeps their progress)."""
        own = self.status()
        theirs: cluster_pb2.NodeStatus | None
        try:
            theirs = await self._one(
                "Status", request, context, lambda: _ready(own), STATUS_TIMEOUT_S
            )
        except NoMaster:
            theirs = None
        return self._seen_by_master(own, theirs)

    async def RemoveMember(
        self, request: cluster_pb2.RemoveMemberRequest, context: Ctx
    ) -> cluster_pb2.RemoveMemberResponse:
        answer = cluster_pb2.RemoveMemberResponse
        here = self._remove_member
        return await self._answer("RemoveMember", request, context, lambda: here(request), answer)

    async def ManageUser(
        self, request: cluster_pb2.UserAdminRequest, context: Ctx
    ) -> cluster_pb2.UserAdminResponse:
        """`chatd users`."""
        answer = cluster_pb2.UserAdminResponse
        here = self.users.handle
        return await self._answer("ManageUser", request, context, lambda: here(request), answer)

    async def Resend(
        self, request: cluster_pb2.ResendRequest, context: Ctx
    ) -> cluster_pb2.ResendResponse:
        """`chatd rollback resend`."""
        answer = cluster_pb2.ResendResponse
        here = self.users.resend
        return await self._answer("Resend", request, context, lambda: here(request), answer)

    async def Backup(
        self, request: cluster_pb2.BackupRequest, context: Ctx
    ) -> AsyncIterator[cluster_pb2.BackupChunk]:
        """A backup of the master's store, in chunks."""
        try:
            async with aclosing(
                self.at_master("Backup", request, context, self._backup, within=None)
            ) as chunks:
                async for chunk in chunks:
                    yield chunk
        except NodeError as exc:
            await abort(context, exc)

    # -- answered here --

    def status(self) -> cluster_pb2.NodeStatus:
        c = self.repl.status()
        me = self.place
        members = []
        for nid, addr in sorted(c.membership.addresses.items()):
            p = c.followers.get(nid)
            mine = nid == me.node_id
            unknown = not mine and (p is None or not p.heard)
            applied = self.store.last_index if mine else (p.match if p is not None else 0)
            members.append(
                cluster_pb2.MemberStatus(
                    node_id=nid,
                    address=addr,
                    role="master" if nid == c.master else "slave",
                    in_sync=nid in c.membership.in_sync,
                    applied_index=applied,
                    lag=0 if unknown else max(0, c.last.index - applied),
                    applied_unknown=unknown,
                    alive=mine or (p is not None and p.alive),
                    left_reason=p.left if p is not None else "",
                    min_in_sync=self.floors.of(nid) if mine or c.role is Role.MASTER else 0,
                    web_origin=self.web_origins.of(nid),
                )
            )
        return cluster_pb2.NodeStatus(
            node_id=me.node_id,
            role=c.role.value,
            epoch=c.epoch,
            master=self.router.for_clients(self.repl.route()),
            master_peer_address=c.master_address,
            master_id=c.master,
            address=me.address,
            peer_address=me.peer_address,
            applied_index=self.store.last_index,
            commit_index=c.commit,
            log_digest=self.store.digest.hex(),
            state_digest=self.store.state_digest.hex(),
            members=members,
            quorum=c.membership.quorum,
            min_in_sync=self.config.min_in_sync,
            web_origin=self.web_origins.own,
            writes_refused=bool(self.repl.refusal()),
            rolled_back=self.repl.rolled_back.entries,
            rollback_files=self.repl.rolled_back.files,
            diverged=self.digests.status() if c.role is Role.MASTER else [],
        )

    def _seen_by_master(
        self, own: cluster_pb2.NodeStatus, theirs: cluster_pb2.NodeStatus | None
    ) -> cluster_pb2.NodeStatus:
        """`own`, its members as the master (`theirs`, when it answered) sees them."""
        if own.role == Role.MASTER.value:
            own.members_seen_by = own.node_id
            return own
        for m in own.members:  # what a node that is not master knows by itself
            m.alive = m.node_id == own.node_id or (
                own.role == Role.SLAVE.value and m.node_id == own.master_id
            )
        if theirs is None:
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
                m.web_origin = m.web_origin or t.web_origin
        own.members_seen_by = theirs.node_id
        return own

    async def _remove_member(
        self, request: cluster_pb2.RemoveMemberRequest
    ) -> cluster_pb2.RemoveMemberResponse:
        node_id = request.node_id
        refused = cluster_pb2.RemoveMemberResponse
        if node_id == self.place.node_id:
            return refused(ok=False, error="the master cannot remove itself")
        if node_id not in self.repl.status().membership.addresses:
            return refused(ok=False, error=f"{node_id} is not a member")
        for _ in range(50):  # bounded: wait for a membership change under way
            if self.repl.remove_member(node_id):
                return cluster_pb2.RemoveMemberResponse(ok=True)
            await asyncio.sleep(self.config.heartbeat_interval)
        return refused(ok=False, error="a membership change is under way; try again")

    async def _backup(self) -> AsyncIterator[cluster_pb2.BackupChunk]:
        path = self.config.data_dir / f"backup-{uuid.uuid4().hex[:8]}.tmp"
        try:
            async with self._backup_slot:  # one copy of the store at a time
                await asyncio.to_thread(self.store.snapshot_to, path)
                info = await asyncio.to_thread(backup.recorded, path)  # (the reader checks it)
            log.info("node %s: backup taken: %s", self.place.node_id, info.line())
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
