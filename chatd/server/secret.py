"""The cluster secret: metadata every cluster RPC carries, and the server
interceptor that refuses a call without it before its request is parsed."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from chatd.contract import SECRET_HEADER

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]

CLUSTER_PREFIXES = ("/MasterService/", "/SlaveService/", "/NodeAdmin/")


class SecretInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses cluster RPCs that do not carry the cluster secret. (Under
    mutual TLS every caller already showed a certificate of the cluster CA
    at the handshake; without a secret, that is all the cluster services
    ask for.)"""

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
