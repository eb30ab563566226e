"""TLS material: server credentials for the node's port, and the channel
credentials nodes (mutual TLS), the client library and the operator tools use
(read here only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc


class TlsError(ValueError):
    """A certificate, key or CA file cannot be read: a bad argument, on either
    side (the node reports it as a StartupError; `ChatClient()` raises it as
    it raises ValueError for a bad address list)."""


def _read(path: str | Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def server_credentials(
    cert: str | Path, key: str | Path, ca: str | Path | None
) -> grpc.ServerCredentials:
    """With a CA, mutual TLS: every caller (node or client) must show a
    certificate the CA signed. (gRPC Python cannot ask for a certificate
    without requiring it, so there is no half-way mode.)"""
    chain, private = _read(cert, "certificate"), _read(key, "key")
    assert chain is not None and private is not None
    root = _read(ca, "CA")
    return grpc.ssl_server_credentials(
        [(private, chain)], root_certificates=root, require_client_auth=root is not None
    )


def channel_credentials(
    ca: str | Path | None, cert: str | Path | None = None, key: str | Path | None = None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "CA"),
        private_key=_read(key, "key"),
        certificate_chain=_read(cert, "certificate"),
    )


def open_channel(
    address: str,
    credentials: grpc.ChannelCredentials | None,
    options: Sequence[tuple[str, Any]],
) -> grpc.aio.Channel:
    """A channel to `address`: TLS with `credentials`, plaintext without."""
    if credentials is not None:
        return grpc.aio.secure_channel(address, credentials, options=options)
    return grpc.aio.insecure_channel(address, options=options)
