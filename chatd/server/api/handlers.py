"""A service's gRPC method handlers, built from its descriptor, with
requests that do not parse refused as INVALID_ARGUMENT (every service a node
serves: the client's, the peers' and the operators').

grpc's generated `add_*Servicer_to_server` parses a request with
the message's `FromString`; bytes that do not parse then end the call with
UNKNOWN and Python's decode error as its text, and grpc logs a traceback for
each one (3.5 MB of log from 5,000 junk requests). Here a request that does
not parse reaches the handler as `Malformed`, which refuses it with
INVALID_ARGUMENT and a plain message, and logs one line at debug level.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)


class Malformed:
    """A request whose bytes are not a `type_name` message."""

    def __init__(self, type_name: str, size: int) -> None:
        self.type_name = type_name
        self.size = size


def _parser(message: Any) -> Callable[[bytes], Any]:
    name = message.DESCRIPTOR.name

    def parse(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except DecodeError:
            return Malformed(name, len(data))

    return parse


async def _refuse(method: str, request: Malformed, context: Any) -> None:
    log.debug("%s: %d bytes that are not a %s: refused", method, request.size, request.type_name)
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{method}: the request is not a valid {request.type_name}",
    )


def _encoder(message: Any) -> Callable[[Any], bytes]:
    """A streamed response's serializer: a message is encoded, bytes (a
    frame encoded once for several streams) pass as they are."""
    encode = message.SerializeToString

    def serialize(response: Any) -> bytes:
        return response if type(response) is bytes else encode(response)

    return serialize


def _unary(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    async def call(request: Any, context: Any) -> Any:
        if isinstance(request, Malformed):
            await _refuse(method, request, context)
        return await behavior(request, context)

    return call


def _streaming(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    async def call(request: Any, context: Any) -> AsyncIterator[Any]:
        if isinstance(request, Malformed):
            await _refuse(method, request, context)
        async for item in behavior(request, context):
            yield item

    return call


def add_service(
    server: Any, servicer: Any, module: ModuleType, service: str, malformed_frames: bool = True
) -> None:
    """Registers `servicer`'s methods for the methods of `service` (its
    messages in `module`, a generated *_pb2): unary, server-streaming, and
    client-streaming and bidirectional, whose behavior gets the request frames (a frame that does
    not parse arrives as a `Malformed`, unless `malformed_frames` is False:
    then grpc's own parsing ends the call) and answers with its own."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for m in module.DESCRIPTOR.services_by_name[service].methods:
        request = getattr(module, m.input_type.name)
        response = getattr(module, m.output_type.name)
        behavior = getattr(servicer, m.name)
        if m.client_streaming:
            if not m.server_streaming:  # (its behavior gets Malformed frames too)
                handlers[m.name] = grpc.stream_unary_rpc_method_handler(
                    behavior,
                    request_deserializer=_parser(request),
                    response_serializer=response.SerializeToString,
                )
                continue
            handlers[m.name] = grpc.stream_stream_rpc_method_handler(
                behavior,
                request_deserializer=_parser(request) if malformed_frames else request.FromString,
                response_serializer=_encoder(response),
            )
        elif m.server_streaming:
            handlers[m.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(m.name, behavior),
                request_deserializer=_parser(request),
                response_serializer=response.SerializeToString,
            )
        else:
            handlers[m.name] = grpc.unary_unary_rpc_method_handler(
                _unary(m.name, behavior),
                request_deserializer=_parser(request),
                response_serializer=response.SerializeToString,
            )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)
