"""A TLS cluster with certificates made in the test: mutual TLS between the
nodes on their peer listeners (no secret), TLS clients without a
certificate of their own on the client listeners, plaintext refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from chatd.client import ChatClient, Unavailable
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from tests.certs import make_ca, make_cert
from tests.cluster import Cluster
from tests.conftest import PASSWORD
from tests.waiting import eventually


def test_tls_cluster(tmp_path: Path) -> None:
    ca, ca_key, ca_cert = make_ca(tmp_path)
    client_cert, client_key = make_cert(tmp_path, "operator", ca_key, ca_cert)
    c = Cluster(tmp_path, tls=(ca, client_cert, client_key))
    try:
        for name in ("n1", "n2", "n3"):
            cert, key = make_cert(tmp_path, name, ca_key, ca_cert)
            flags = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca)]
            c.add(name, *flags, join=None if name == "n1" else c.peers["n1"])
            if name == "n1":
                c.wait_role("n1", "master")
        c.wait(lambda: c.in_sync_count() == 3, "3 nodes in sync")
        addresses = list(c.addresses.values())

        user_cert, user_key = make_cert(tmp_path, "alice", ca_key, ca_cert)

        async def chat() -> None:
            alice = ChatClient(addresses, tls_ca=ca, tls_cert=user_cert, tls_key=user_key)
            await alice.create_account("alice", PASSWORD)
            await alice.login("alice", PASSWORD)
            mid = await alice.send("alice", "over TLS")
            assert [m.id for m in await alice.get_messages()] == [mid]
            await alice.close()
            bob = ChatClient(addresses, tls_ca=ca)  # a client shows no certificate
            assert [u.name for u in await bob.list_users()] == ["alice"]
            await bob.close()
            peers = list(c.peers.values())
            for refused in (
                ChatClient(addresses, retry_for=1.0),  # plaintext
                ChatClient(peers, retry_for=1.0, tls_ca=ca),  # the peers' listener, no certificate
            ):
                with pytest.raises(Unavailable):
                    await refused.list_users()
                await refused.close()

        asyncio.run(chat())
        # a certificate from another CA is refused at the handshake
        _, other_key, other_ca = make_ca(tmp_path, "another CA")
        stranger_cert, stranger_key = make_cert(tmp_path, "stranger", other_key, other_ca)
        creds = grpc.ssl_channel_credentials(
            ca.read_bytes(), stranger_key.read_bytes(), stranger_cert.read_bytes()
        )
        with grpc.secure_channel(c.peers["n2"], creds) as ch:
            with pytest.raises(grpc.RpcError) as info:
                cluster_pb2_grpc.MasterServiceStub(ch).CheckMaster(
                    cluster_pb2.CheckMasterRequest(), timeout=5
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        # an operator with a certificate of the cluster's CA sees the cluster
        out = c.cli(
            "status",
            "--server",
            c.peers["n2"],
            "--json",
            "--tls-ca",
            str(ca),
            "--tls-cert",
            str(client_cert),
            "--tls-key",
            str(client_key),
        )
        assert out.returncode == 0, out.stderr
        # the client listener serves no cluster service without a secret
        out = c.cli("status", "--server", c.addresses["n2"], "--tls-ca", str(ca))
        assert out.returncode == 1 and "peer listener only" in out.stderr, out.stderr
    finally:
        c.stop_all()


def test_clients_verify_against_the_system_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node with a certificate from a CA the system trusts (here: the test
    CA, made the system's roots with SSL_CERT_FILE, as OpenSSL reads it):
    `--tls` in the commands and `tls=True` in the library verify against
    those roots; with other roots, or plaintext, the node is not reached."""
    ca, ca_key, ca_cert = make_ca(tmp_path)
    cert, key = make_cert(tmp_path, "n1", ca_key, ca_cert)
    c = Cluster(tmp_path)
    secret = "system-roots-secret"
    try:
        c.add("n1", "--tls-cert", str(cert), "--tls-key", str(key), "--cluster-secret", secret)
        address = c.addresses["n1"]

        def chatd(*args: str, roots: Path | None = ca) -> subprocess.CompletedProcess[str]:
            env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
            env["CHATD_CLUSTER_SECRET"] = secret
            if roots is not None:
                env["SSL_CERT_FILE"] = str(roots)
            return subprocess.run(
                [sys.executable, "-m", "chatd", *args],
                capture_output=True, text=True, timeout=30, env=env,
            )  # fmt: skip

        out = eventually(
            lambda: chatd("health", "--tls", "--server", address),
            "chatd health --tls: SERVING",
            until=lambda out: out.returncode == 0,
            timeout=20,
            interval=0.1,
        )
        assert out.stdout == "SERVING\n"
        assert chatd("users", "list", "--tls", "--server", address).returncode == 0
        other_roots, _, _ = make_ca(tmp_path, "another CA")
        for refused in (
            chatd("health", "--tls", "--server", address, roots=other_roots),
            chatd("health", "--server", address),  # plaintext
        ):
            assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr
        # plaintext at a TLS listener: gRPC says only that the socket closed
        assert "if the node talks TLS: add --tls-ca CA_FILE" in refused.stderr, refused.stderr
        # a client certificate without its key: one line, exit 2
        out = chatd("chat", "--server", address, "--tls-cert", str(cert))
        assert out.returncode == 2 and "go together" in out.stderr, out.stderr

        monkeypatch.setenv("SSL_CERT_FILE", str(ca))

        async def library() -> None:
            async with ChatClient([address], tls=True) as alice:
                await alice.create_account("alice", PASSWORD)
                await alice.login("alice", PASSWORD)
                assert await alice.send("alice", "over TLS, system roots") > 0

        asyncio.run(library())
    finally:
        c.stop_all()
