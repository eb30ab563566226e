"""The NodeAdmin service: an operator's calls (status, members, users,
backups, resends), each answered by the node (`NodeView`, which node.py
implements): a slave carries it to the master, once (FORWARDED_HEADER).

node.py puts it behind the cluster secret's interceptor
(`chatd.server.cluster.secret`) on both listeners.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from chatd.contract import FORWARDED_HEADER
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.server.api.status import abort
from chatd.server.errors import NodeError

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]


class NodeView(Protocol):
    """What the admin service reads and asks of the node."""

    def status(self) -> cluster_pb2.NodeStatus: ...

    async def cluster_status(self, forwarded: bool = False) -> cluster_pb2.NodeStatus: ...

    async def remove_member(self, node_id: str, forwarded: bool = False) -> tuple[bool, str]: ...

    def backup(self, forwarded: bool = False) -> AsyncIterator[cluster_pb2.BackupChunk]: ...

    async def manage_user(
        self, request: cluster_pb2.UserAdminRequest, forwarded: bool = False
    ) -> cluster_pb2.UserAdminResponse: ...

    async def resend(
        self, request: cluster_pb2.ResendRequest, forwarded: bool = False
    ) -> cluster_pb2.ResendResponse: ...


def _forwarded(context: Ctx) -> bool:
    """Asked by another node that took this one for the master (carried no further)."""
    return any(k == FORWARDED_HEADER for k, _ in context.invocation_metadata() or ())


class NodeAdminServicer(cluster_pb2_grpc.NodeAdminServicer):
    def __init__(self, node: NodeView) -> None:
        self.node = node

    async def Status(
        self, request: cluster_pb2.StatusRequest, context: Ctx
    ) -> cluster_pb2.NodeStatus:
        forwarded = _forwarded(context)
        return await self.node.cluster_status(forwarded)

    async def RemoveMember(
        self, request: cluster_pb2.RemoveMemberRequest, context: Ctx
    ) -> cluster_pb2.RemoveMemberResponse:
        forwarded = _forwarded(context)
        ok, error = await self.node.remove_member(request.node_id, forwarded)
        return cluster_pb2.RemoveMemberResponse(ok=ok, error=error)

    async def ManageUser(
        self, request: cluster_pb2.UserAdminRequest, context: Ctx
    ) -> cluster_pb2.UserAdminResponse:
        forwarded = _forwarded(context)
        return await self.node.manage_user(request, forwarded)

    async def Resend(
        self, request: cluster_pb2.ResendRequest, context: Ctx
    ) -> cluster_pb2.ResendResponse:
        return await self.node.resend(request, _forwarded(context))

    async def Backup(
        self, request: cluster_pb2.BackupRequest, context: Ctx
    ) -> AsyncIterator[cluster_pb2.BackupChunk]:
        forwarded = _forwarded(context)
        try:
            async for chunk in self.node.backup(forwarded):
                yield chunk
        except NodeError as exc:
            await abort(context, exc)
