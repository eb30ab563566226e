"""The cluster secret: metadata every cluster RPC carries, and the server
interceptor that refuses a call without it before its request is parsed."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2

from chatd.contract import SECRET_HEADER
from chatd.proto import cluster_pb2

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]


def _prefix(service: Any) -> str:
    """The method paths of a service (its descriptor) begin with this."""
    return f"/{service.full_name}/"


# every service of the cluster protos (a service added there is guarded too)
CLUSTER_PREFIXES = tuple(_prefix(s) for s in cluster_pb2.DESCRIPTOR.services_by_name.values())
# what the client listener guards
ADMIN_PREFIXES = (_prefix(cluster_pb2.DESCRIPTOR.services_by_name["NodeAdmin"]),)
# the peer listener: every call (a slave's relayed client calls carry the
# secret like every other call between nodes) but the health checks
PEER_PREFIXES = ("/",)
# never behind the secret: a health check tells SERVING or NOT_SERVING only,
# and a container platform or load balancer asks it on either listener
OPEN_PREFIXES = (_prefix(health_pb2.DESCRIPTOR.services_by_name["Health"]),)


class SecretInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses the calls to methods under `prefixes` that do not carry the
    cluster secret, before their request is parsed. Without a secret: under
    mutual TLS every caller already showed a certificate of the cluster CA
    at the handshake, and that is all they are asked for, unless this
    listener asks no certificate (`refuse_unguarded`: then they are refused)."""

    def __init__(
        self,
        secret: str | None,
        prefixes: tuple[str, ...] = CLUSTER_PREFIXES,
        refuse_unguarded: bool = False,
    ) -> None:
        self._secret = secret.encode() if secret else None
        self._prefixes = prefixes
        self._refuse_unguarded = refuse_unguarded

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        method = details.method or ""
        if not method.startswith(self._prefixes) or method.startswith(OPEN_PREFIXES):
            return await continuation(details)
        if self._secret is None:
            if self._refuse_unguarded:
                return _refusal(UNGUARDED)
            return await continuation(details)
        given = b""
        for key, value in details.invocation_metadata or ():
            if key == SECRET_HEADER:
                given = value.encode() if isinstance(value, str) else value
        if hmac.compare_digest(given, self._secret):
            return await continuation(details)
        return _refusal(WRONG)


WRONG = "wrong or missing cluster secret"
UNGUARDED = (
    "no cluster secret is configured: the cluster services are served on the "
    "peer listener only (--peer-listen, with a certificate of the cluster CA)"
)


def _refusal(why: str) -> Handler:
    """A handler that refuses without reading the request: served as a
    stream whatever the method's kind, it never asks gRPC for a message, so
    a large one is not buffered (the caller is told at once and the rest of
    its bytes are dropped with the stream)."""

    async def refuse(requests: Any, context: Ctx) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, why)
        yield  # pragma: no cover - makes this an async generator

    return grpc.stream_stream_rpc_method_handler(refuse)
