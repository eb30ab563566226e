"""TLS material: server credentials for the node's port, and the channel
credentials nodes (mutual TLS), the client library and the operator tools use
(read here only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (imported where used: `chatd` imports TlsError before any grpc)
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
    import grpc

    root = _read(ca, "CA")
    return grpc.ssl_server_credentials(
        [(private, chain)], root_certificates=root, require_client_auth=root is not None
    )


def channel_credentials(
    ca: str | Path | None, cert: str | Path | None = None, key: str | Path | None = None
) -> grpc.ChannelCredentials:
    """Verifying the server against `ca`, or (None) the system's roots;
    with `cert` and `key`, showing a client certificate."""
    import grpc

    if (cert is None) != (key is None):
        raise TlsError("a client certificate and its key go together (--tls-cert, --tls-key)")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "CA") if ca is not None else system_roots(),
        private_key=_read(key, "key"),
        certificate_chain=_read(cert, "certificate"),
    )


def client_credentials(
    tls: bool,
    ca: str | Path | None = None,
    cert: str | Path | None = None,
    key: str | Path | None = None,
) -> grpc.ChannelCredentials | None:
    """A client's channel credentials: TLS when `tls` or any of the files is
    given (None: plaintext)."""
    if not (tls or ca is not None or cert is not None or key is not None):
        return None
    return channel_credentials(ca, cert, key)


# Where Debian/Ubuntu, Fedora/RHEL, Alpine and macOS keep the system's roots,
# after what Python's ssl module was built with (and SSL_CERT_FILE).
_ROOT_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


def system_roots() -> bytes | None:
    """The system's trusted roots (PEM), as OpenSSL finds them; None where
    none is found, and gRPC uses the roots it ships with."""
    import ssl

    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_ROOT_BUNDLES):
        if candidate and Path(candidate).is_file():
            return _read(candidate, "system roots")
    return None


def open_channel(
    address: str,
    credentials: grpc.ChannelCredentials | None,
    options: Sequence[tuple[str, Any]],
) -> grpc.aio.Channel:
    """A channel to `address`: TLS with `credentials`, plaintext without."""
    import grpc

    if credentials is not None:
        return grpc.aio.secure_channel(address, credentials, options=options)
    return grpc.aio.insecure_channel(address, options=options)


def credentials_of(args: Any) -> grpc.ChannelCredentials | None:
    """A command's channel credentials from its --tls flags (TlsError if a
    file cannot be read, or a certificate comes without its key)."""
    return client_credentials(
        getattr(args, "tls", False),
        getattr(args, "tls_ca", None),
        getattr(args, "tls_cert", None),
        getattr(args, "tls_key", None),
    )


def tls_options(args: Any) -> dict[str, Any]:
    """ChatClient's TLS keywords from a client command's --tls flags."""
    names = ("tls", "tls_ca", "tls_cert", "tls_key")
    return {k: v for k in names if (v := getattr(args, k, None))}
