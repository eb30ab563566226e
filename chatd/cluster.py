"""Cluster-internal services (MasterService, NodeAdmin) and their guard.

Every RPC here requires the cluster secret as the `x-chatd-secret` metadata
value, compared in constant time, and is refused with UNAUTHENTICATED before
its request is even parsed. With no secret configured the node listens on
loopback only, and these services are open to local callers.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from chatd.proto import cluster_pb2, cluster_pb2_grpc

SECRET_HEADER = "x-chatd-secret"
CLUSTER_PREFIXES = ("/MasterService/", "/SlaveService/", "/NodeAdmin/")

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]


def secret_metadata(secret: str | None) -> tuple[tuple[str, str], ...]:
    return ((SECRET_HEADER, secret),) if secret else ()


class SecretInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses cluster RPCs that do not carry the cluster secret."""

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
    """What the cluster services read of the node."""

    def check_master(self) -> cluster_pb2.CheckMasterResponse: ...

    def status(self) -> cluster_pb2.NodeStatus: ...


class MasterServicer(cluster_pb2_grpc.MasterServiceServicer):
    def __init__(self, node: NodeView) -> None:
        self.node = node

    async def CheckMaster(
        self, request: cluster_pb2.CheckMasterRequest, context: Ctx
    ) -> cluster_pb2.CheckMasterResponse:
        return self.node.check_master()


class NodeAdminServicer(cluster_pb2_grpc.NodeAdminServicer):
    def __init__(self, node: NodeView) -> None:
        self.node = node

    async def Status(
        self, request: cluster_pb2.StatusRequest, context: Ctx
    ) -> cluster_pb2.NodeStatus:
        return self.node.status()
