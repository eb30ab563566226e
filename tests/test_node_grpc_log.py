"""A node keeps gRPC's own log lines (plain text, whatever --log-format) to
errors, unless its user set GRPC_VERBOSITY or GRPC_TRACE: plaintext
connections to a TLS node's client port, a port scan's, are each a failed
handshake gRPC would log at INFO."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from chatd.tools.localcluster import NodeProcess, free_port
from tests.certs import make_ca, make_cert
from tests.waiting import eventually

GRPC_LINE = re.compile(r"[EWI]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\.cc:\d+\]")
CONNECTS = 50


def scanned_node_log(tmp_path: Path, env: dict[str, str]) -> str:
    """The log of a TLS node (JSON) after CONNECTS plaintext connections to
    its client port."""
    tmp_path.mkdir()
    _ca, ca_key, ca_cert = make_ca(tmp_path)
    cert, key = make_cert(tmp_path, "n1", ca_key, ca_cert)
    port = free_port()
    node = NodeProcess.serve(
        tmp_path,
        "n1",
        f"127.0.0.1:{port}",
        f"127.0.0.1:{free_port()}",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--log-format",
        "json",
        env=env,
    ).start()
    try:

        def listening() -> bool:
            if not node.running:
                pytest.fail(f"the node exited: {node.log()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        eventually(listening, f"the node listening on {port}", timeout=30, interval=0.1)
        for _ in range(CONNECTS):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                s.settimeout(5)
                with contextlib.suppress(OSError):
                    s.recv(100)
        time.sleep(1)  # (what is tested: the node goes on, and logs no gRPC line meanwhile)
        assert node.running, node.log()
    finally:
        node.kill(signal.SIGTERM)
    return node.log()


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("GRPC_VERBOSITY", "GRPC_TRACE")}


def test_a_node_logs_no_grpc_handshake_lines(tmp_path: Path) -> None:
    # what the user asks for is what they get: this gRPC does log them
    chatty = scanned_node_log(tmp_path / "a", {**base_env(), "GRPC_VERBOSITY": "info"})
    if not re.search(r"[Hh]andshake failed", chatty):
        pytest.skip("this gRPC logs no failed handshakes even at INFO: nothing to keep quiet")
    log = scanned_node_log(tmp_path / "b", base_env())
    assert not GRPC_LINE.search(log), GRPC_LINE.search(log)
    # every line is JSON
    assert all(line.startswith("{") for line in log.splitlines() if line.strip()), log[:2000]
