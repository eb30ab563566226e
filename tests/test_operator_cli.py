"""The operator commands as an operator meets them: what a refused call
says, where `--server` comes from, `chatd health` on either listener of a
node with a secret and from the client-only install, and `chatd status`
about a killed master."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.conftest import NodeProcess, wait_serving
from tests.waiting import eventually

SECRET = "s3cret"


def chatd(
    *args: str, env: dict[str, str] | None = None, python: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    return subprocess.run(
        [sys.executable, *(python or ["-m", "chatd"]), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**base, **(env or {})},
    )


@pytest.fixture
def guarded(spawn_node: Callable[..., NodeProcess]) -> NodeProcess:
    node = spawn_node("n1", "--cluster-secret", SECRET)
    wait_serving(node.address)  # type: ignore[attr-defined]
    return node


@pytest.mark.parametrize(
    "command",
    [["status"], ["members", "remove", "n9"], ["users", "list"], ["backup", "FILE"]],
)
def test_a_missing_secret_names_where_it_is_given(
    guarded: NodeProcess, command: list[str], tmp_path: Path
) -> None:
    args = [a if a != "FILE" else str(tmp_path / "b.db") for a in command]
    out = chatd(*args, "--server", guarded.address)  # type: ignore[attr-defined]
    assert out.returncode == 1, out
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1, out.stderr
    assert "UNAUTHENTICATED" in line
    assert "--cluster-secret" in line and "CHATD_CLUSTER_SECRET" in line, line


@pytest.mark.parametrize(
    "command", [["status"], ["health"], ["members", "remove"], ["users", "list"], ["backup"]]
)
def test_an_operator_commands_server_help_names_chatd_server(command: list[str]) -> None:
    out = chatd(*command, "--help")
    assert out.returncode == 0, out
    text = " ".join(out.stdout.split())  # (argparse wraps the help)
    options = text[text.index("options:") :]
    server_help = options[options.index("--server SERVER") :]
    assert "CHATD_SERVER" in server_help[: server_help.index(" --", 3)], out.stdout


def test_chatd_server_picks_an_operator_commands_node(guarded: NodeProcess) -> None:
    env = {"CHATD_SERVER": guarded.address, "CHATD_CLUSTER_SECRET": SECRET}  # type: ignore[attr-defined]
    out = chatd("status", env=env)
    assert out.returncode == 0, out.stderr
    assert guarded.address in out.stdout  # type: ignore[attr-defined]


def test_health_on_either_listener_of_a_node_with_a_secret(guarded: NodeProcess) -> None:
    """`serve --help`: every call but health checks behind the secret on the
    peer listener. Without the secret, with it as a flag, in the variable."""
    for address in (guarded.address, guarded.peer_address):  # type: ignore[attr-defined]
        out = chatd("health", "--server", address)
        assert (out.returncode, out.stdout.strip()) == (0, "SERVING"), (address, out)
        out = chatd("health", "--server", address, "--cluster-secret", SECRET)
        assert (out.returncode, out.stdout.strip()) == (0, "SERVING"), (address, out)
        out = chatd("health", "--server", address, env={"CHATD_CLUSTER_SECRET": SECRET})
        assert (out.returncode, out.stdout.strip()) == (0, "SERVING"), (address, out)
    # the rest of the peer listener stays behind it
    out = chatd("status", "--server", guarded.peer_address)  # type: ignore[attr-defined]
    assert out.returncode == 1 and "UNAUTHENTICATED" in out.stderr, out


def test_health_of_a_service_the_node_does_not_have(guarded: NodeProcess) -> None:
    out = chatd("health", "--server", guarded.address, "--service", "bogus")  # type: ignore[attr-defined]
    assert out.returncode == 1
    assert out.stderr.strip().endswith(
        "NOT_FOUND: no service named 'bogus' here; a node answers for "
        '"" (the node, the default) and "ClientAccount"'
    ), out.stderr
    assert "TLS" not in out.stderr  # (a plaintext node that answered)
    out = chatd("health", "--server", guarded.address, "--service", "ClientAccount")  # type: ignore[attr-defined]
    assert (out.returncode, out.stdout.strip()) == (0, "SERVING"), out


BLOCK_HEALTH = (
    "import sys; sys.modules['grpc_health'] = None; "  # import grpc_health: ModuleNotFoundError
    "from chatd.cli import main; rc = main(sys.argv[1:]); "
    "assert 'grpc_health' not in sys.modules or sys.modules['grpc_health'] is None; "
    "sys.exit(rc)"
)


def test_health_without_grpc_health_installed(guarded: NodeProcess) -> None:
    """The client-only install has no grpcio-health-checking."""
    out = chatd("health", "--server", guarded.address, python=["-c", BLOCK_HEALTH])  # type: ignore[attr-defined]
    assert (out.returncode, out.stdout.strip()) == (0, "SERVING"), out
    assert out.stderr == ""
    out = chatd("health", "--server", "127.0.0.1:1", "--timeout", "1", python=["-c", BLOCK_HEALTH])
    assert out.returncode == 1 and "UNAVAILABLE" in out.stderr, out
    assert len(out.stderr.strip().splitlines()) == 1


def test_status_says_which_address_was_asked(guarded: NodeProcess) -> None:
    """The addresses a node reports are the ones it advertises (in a
    container network, not the one the operator used): the one asked is
    shown when it is not among them."""
    asked = guarded.peer_address  # type: ignore[attr-defined]
    out = chatd("status", "--server", asked, "--cluster-secret", SECRET)
    assert out.returncode == 0, out
    assert f"asked    at {asked}" not in out.stdout  # (the node's own peer address)
    port = asked.rsplit(":", 1)[1]
    other = f"localhost:{port}"
    out = chatd("status", "--server", other, "--cluster-secret", SECRET)
    assert out.returncode == 0, out
    assert f"asked    at {other}" in out.stdout, out.stdout


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster.start(tmp_path, 3, "--failover-timeout", "1s")
    try:
        yield c
    finally:
        c.stop_all()


def test_status_tells_why_a_killed_master_is_out_of_sync(cluster: Cluster) -> None:
    cluster.converged()  # a healthy cluster, settled
    old = cluster.master()
    assert old is not None
    cluster.kill(old)
    cluster.wait(lambda: cluster.master() not in (None, old), "a new master")
    new = cluster.master()
    assert new is not None
    at_once = {m["node_id"]: m for m in cluster.cli_status(new)["members"]}[old]  # type: ignore[attr-defined]
    assert not at_once["in_sync"] and at_once["left_reason"], at_once

    # the failover timeout (1 s) passes with the old master still silent
    def row_of(doc: dict[str, object]) -> dict[str, object]:
        return {m["node_id"]: m for m in doc["members"]}[old]  # type: ignore[attr-defined, no-any-return]

    doc = eventually(
        lambda: cluster.cli_status(new),
        f"{old} not alive, with a reason",
        until=lambda d: not row_of(d)["alive"] and row_of(d)["left_reason"],
        timeout=20,
        interval=0.2,
    )
    row = row_of(doc)
    assert (row["in_sync"], row["alive"]) == (False, False), row
    assert row["left_reason"] == "not heard from since this master took over", row
    text = cluster.cli("status", "--server", cluster.addresses[new]).stdout
    line = next(line for line in text.splitlines() if line.startswith(old + " "))
    assert line.endswith("not heard from since this master took over"), text
    # what it had applied is not known here: `?`, not 0 (the others' are)
    assert (row["applied_known"], row["applied_index"], row["lag"]) == (False, 0, 0), row
    heading = next(h for h in text.splitlines() if h.startswith("NODE "))
    assert line[heading.index("APPLIED") :].split()[:2] == ["?", "?"], text
    others = [m for m in doc["members"] if m["node_id"] != old]  # type: ignore[attr-defined]
    assert all(m["applied_known"] and m["applied_index"] > 0 for m in others), others


def test_a_slave_no_client_went_through_names_the_masters_client_address(
    cluster: Cluster,
) -> None:
    """A slave learns where clients reach the master from the master's
    answers to calls it relays; with none relayed yet (a fresh join, a
    rejoin) it learns it from the master's status, which `chatd status` on
    the slave asks for anyway."""
    master = cluster.master()
    assert master is not None
    for name in (n for n in cluster.nodes if n != master):
        doc = cluster.cli_status(name)
        assert (doc["master_id"], doc["master"]) == (master, cluster.addresses[master]), doc
        text = cluster.cli("status", "--server", cluster.addresses[name]).stdout
        assert f"master   {master} at {cluster.addresses[master]}\n" in text, text
