"""What a node says about its cluster secret: the placeholder of
.env.example is refused (whoever copied the file and forgot to edit it would
let anyone who reaches the client port take a backup), a short one is
warned about once; where a secret file that cannot be read was named; and
what a client-only install says a node needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chatd.config import PLACEHOLDER_SECRET
from chatd.tools.localcluster import NodeProcess, free_port
from tests import test_cli_usage as cli_usage
from tests.conftest import logged

ROOT = Path(__file__).resolve().parent.parent


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    return {**base, "PYTHONPATH": str(ROOT), **extra}


def chatd(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return cli_usage.chatd(*args, env=environ)


def example_secret() -> str:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("CHATD_CLUSTER_SECRET="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(".env.example sets no CHATD_CLUSTER_SECRET")


def test_the_placeholder_of_env_example_is_refused(tmp_path: Path) -> None:
    assert example_secret() == PLACEHOLDER_SECRET
    serve = ["serve", "--role", "master", "--listen", f"127.0.0.1:{free_port()}"]
    serve += ["--peer-listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d")]
    secret_file = tmp_path / "secret"
    secret_file.write_text(example_secret() + "\n")
    for extra, environ, named in (
        ([], env(CHATD_CLUSTER_SECRET=example_secret()), "CHATD_CLUSTER_SECRET"),
        (["--cluster-secret", example_secret()], env(), "--cluster-secret"),
        ([], env(CHATD_CLUSTER_SECRET_FILE=str(secret_file)), "CHATD_CLUSTER_SECRET_FILE"),
    ):
        got = chatd(*serve, *extra, environ=environ)
        assert got.returncode == 2, (named, got.stderr)
        lines = got.stderr.strip().splitlines()
        assert len(lines) == 1 and "placeholder" in lines[0] and named in lines[0], lines
        assert not (tmp_path / "d").exists()


def test_a_short_secret_is_warned_about_once(tmp_path: Path) -> None:
    port = free_port()
    node = NodeProcess.serve(
        tmp_path,
        "n1",
        f"127.0.0.1:{port}",
        f"127.0.0.1:{free_port()}",
        env=env(CHATD_CLUSTER_SECRET="a"),
    ).start()
    try:
        logged(node, "serving")
        time.sleep(1)  # (a while serving: the warning is not said again)
        assert node.running, node.log()
    finally:
        node.kill(signal.SIGTERM)
    warned = [line for line in node.log().splitlines() if "cluster secret is 1 char" in line]
    assert len(warned) == 1 and "WARNING" in warned[0], node.log()


def test_a_secret_file_that_cannot_be_read_names_where_it_was_named(tmp_path: Path) -> None:
    for args in (["status"], ["serve", "--data-dir", str(tmp_path / "d")]):
        got = chatd(*args, environ=env(CHATD_CLUSTER_SECRET_FILE="/nonexistent"))
        assert got.returncode == 2, got.stderr
        assert "CHATD_CLUSTER_SECRET_FILE=/nonexistent" in got.stderr, got.stderr
        assert "--cluster-secret-file" not in got.stderr, got.stderr
    got = chatd("status", "--cluster-secret-file", "/nonexistent", environ=env())
    assert "--cluster-secret-file /nonexistent" in got.stderr, got.stderr


def test_a_client_only_install_names_the_install_script(tmp_path: Path) -> None:
    """`chatd serve` without the server's extra (grpc_health missing, as
    `scripts/install client` leaves it) says how the README installs it,
    not a bare pip install that an externally managed Python refuses."""
    script = "import sys; sys.modules['grpc_health'] = None; from chatd import cli; cli.run()"
    got = subprocess.run(
        [sys.executable, "-c", script, "serve", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
        cwd=ROOT,
    )
    assert got.returncode == 1, got.stderr
    assert "./scripts/install" in got.stderr, got.stderr
    assert "python3 -m pip install" not in got.stderr, got.stderr
