"""`chatd health`: the node's gRPC health, for a container's health check
every few seconds. It loads grpc and the health check's messages and
nothing else of chatd's (no asyncio, no server): about 0.1 s of CPU a run.

The messages are chatd's own copy of grpc.health.v1's (protos/chatd/proto/
health_check.proto), so that the client-only install, which has no
grpcio-health-checking, runs it too; the call is the standard one.
"""

from __future__ import annotations

import argparse

import grpc

from chatd.contract import secret_metadata
from chatd.proto.health_check_pb2 import HealthCheckRequest, HealthCheckResponse
from chatd.tls import credentials_of
from chatd.tools.secret import refused, secret_of

CHECK = "/grpc.health.v1.Health/Check"
SERVICES = '"" (the node, the default) and "ClientAccount"'


def _said(service: str, plaintext: bool, code: grpc.StatusCode, details: str) -> str:
    """The refusal's text, with what gRPC leaves unsaid: the health service
    names no unknown service, and a plaintext call to a TLS listener ends
    with the connection (`Socket closed`), not with a word about TLS."""
    if code is grpc.StatusCode.NOT_FOUND:
        return f"no service named {service!r} here; a node answers for {SERVICES}"
    if code is grpc.StatusCode.UNAVAILABLE and plaintext and "refused" not in details.lower():
        return (
            f"{details} (if the node talks TLS: add --tls-ca CA_FILE, or --tls for the "
            "system's roots)"
        )
    return details


def main(args: argparse.Namespace) -> int:
    """Exit 0 when the node is SERVING, 1 otherwise (or unreachable)."""
    credentials = credentials_of(args)
    if credentials is None:
        channel = grpc.insecure_channel(args.server)
    else:
        channel = grpc.secure_channel(args.server, credentials)
    with channel:
        check = channel.unary_unary(
            CHECK,
            request_serializer=HealthCheckRequest.SerializeToString,
            response_deserializer=HealthCheckResponse.FromString,
        )
        try:
            r = check(
                HealthCheckRequest(service=args.service),
                metadata=secret_metadata(secret_of(args)),
                timeout=args.timeout,
            )
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call):
                code = exc.code()
                return refused(
                    args.server,
                    code.name,
                    _said(args.service, credentials is None, code, exc.details() or ""),
                )
            return refused(args.server, "ERROR", str(exc))
    status = HealthCheckResponse.ServingStatus.Name(r.status)
    print(status)
    return 0 if status == "SERVING" else 1
