"""The `chatd` command as a user and an operator see it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from chatd.config import Config
from chatd.proto import chat_pb2, chat_pb2_grpc
from tests.conftest import NodeProcess, free_port, wait_serving


def chatd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--no-such-flag"],
        ["serve", "--listen", "nonsense"],
        ["serve", "--session-ttl", "abc"],
        ["serve", "--min-password-length", "0"],
        ["serve", "--role", "slave"],
        ["serve", "--role", "master", "--join", "127.0.0.1:1"],
        ["serve", "--heartbeat-interval", "1s", "--failover-timeout", "1s"],
        ["status", "--server", "no-port"],
        ["chat", "--retry-for", "0"],
        ["chat", "--retry-for", "soon"],
        ["gui", "--retry-for", "-1"],
        ["gui", "--retry-for", "nan"],
        ["frobnicate"],
    ],
)
def test_bad_flags_one_line_exit_2(args: list[str]) -> None:
    out = chatd(*args)
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_the_clients_retry_for_is_a_positive_number_of_seconds() -> None:
    """`chatd chat` and `chatd gui` --retry-for SECONDS: how long a call goes
    on trying the nodes (default 30, the client library's); in --help."""
    from chatd.cli import build_parser

    parser = build_parser()
    for command in ("chat", "gui"):
        assert parser.parse_args([command]).retry_for == 30.0
        assert parser.parse_args([command, "--retry-for", "2.5"]).retry_for == 2.5
        shown = chatd(command, "--help")
        assert shown.returncode == 0, shown.stderr
        text = " ".join(shown.stdout.split())  # (as argparse wraps it)
        assert "--retry-for SECONDS" in text and "(default 30.0)" in text
    refused = chatd("chat", "--retry-for", "0")
    assert "--retry-for: not a positive number of seconds: '0'" in refused.stderr


def test_serve_status_sigterm_and_identity(
    spawn_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    node = spawn_node("n1")
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    out = chatd("status", "--server", address, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["role"] == "master" and doc["epoch"] >= 1 and doc["master"] == address
    assert len(doc["digest"]) == 64 and int(doc["digest"], 16) >= 0
    assert doc["log_digest"] == doc["digest"]  # "digest" is the log digest's name of old
    assert len(doc["state_digest"]) == 64 and int(doc["state_digest"], 16) >= 0
    assert doc["diverged"] == []
    assert isinstance(doc["applied_index"], int)
    (me,) = doc["members"]
    assert me["node_id"] == doc["node_id"] and me["in_sync"] and me["role"] == "master"
    assert doc["quorum"] == "in-sync"  # the default
    human = chatd("status", "--server", address)
    assert doc["node_id"] in human.stdout and "IN SYNC" in human.stdout
    assert "quorum   in-sync" in human.stdout
    node.kill(signal.SIGTERM)
    assert node.proc is not None and node.proc.returncode == 0
    assert "Traceback" not in node.log()
    # the same data dir keeps its node id
    node.start()
    wait_serving(address)
    again = json.loads(chatd("status", "--server", address, "--json").stdout)
    assert again["node_id"] == doc["node_id"]
    node.kill(signal.SIGTERM)
    # a data dir belongs to one node
    other = chatd(
        "serve",
        "--data-dir",
        str(tmp_path / "n1"),
        "--node-id",
        "someone-else",
        "--listen",
        f"127.0.0.1:{free_port()}",
    )
    assert other.returncode != 0 and "belongs to node" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_environment_variables_configure_serve(tmp_path: Path) -> None:
    port = free_port()
    env = dict(
        os.environ,
        CHATD_LISTEN=f"127.0.0.1:{port}",
        CHATD_DATA_DIR=str(tmp_path / "d"),
        CHATD_PASSWORD_HASH_COST="8",
        CHATD_NODE_ID="from-env",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatd", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_serving(f"127.0.0.1:{port}")
        doc = json.loads(chatd("status", "--server", f"127.0.0.1:{port}", "--json").stdout)
        assert doc["node_id"] == "from-env"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_cluster_secret(spawn_node: Callable[..., NodeProcess]) -> None:
    node = spawn_node("n1", "--cluster-secret", "s3cret")
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    refused = chatd("status", "--server", address)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert chatd("status", "--server", address, "--cluster-secret", "s3cret").returncode == 0
    env = dict(os.environ, CHATD_CLUSTER_SECRET="s3cret")
    assert chatd("status", "--server", address, env=env).returncode == 0
    with grpc.insecure_channel(address) as ch:  # the client API needs no secret
        users = chat_pb2_grpc.ClientAccountStub(ch).ListUsers(chat_pb2.Empty(), timeout=5)
        assert list(users.user) == []


def test_without_a_secret_a_node_listens_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatd",
            "serve",
            "--listen",
            f"0.0.0.0:{port}",
            "--peer-listen",
            "0.0.0.0:0",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_serving(f"127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    assert "serving clients on loopback only, not on 0.0.0.0" in output
    assert "serving peers on loopback only, not on 0.0.0.0" in output


def test_in_a_container_without_a_secret_a_node_refuses_to_start(tmp_path: Path) -> None:
    """In chatd's image (CHATD_IN_CONTAINER=1, as its Dockerfile sets) loopback
    is reachable from nowhere else: asked for 0.0.0.0 without a secret, the
    node says so in one line and exits 1 instead of serving there."""
    env = dict(os.environ, CHATD_IN_CONTAINER="1")
    env.pop("CHATD_CLUSTER_SECRET", None)
    got = chatd(
        "serve", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "d"), env=env
    )  # fmt: skip
    assert got.returncode == 1
    lines = got.stderr.strip().splitlines()
    assert (
        lines[-1].startswith("chatd: error: no cluster secret: ")
        and "CHATD_CLUSTER_SECRET" in lines[-1]
    )
    assert not (tmp_path / "d").exists()


def test_a_majority_cluster_says_so(spawn_node: Callable[..., NodeProcess]) -> None:
    """--quorum majority is kept by the node and shown: its in-sync set is
    the set of voters; a restart with the other mode is refused."""
    node = spawn_node("n1", "--quorum", "majority")
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    doc = json.loads(chatd("status", "--server", address, "--json").stdout)
    assert doc["quorum"] == "majority"
    assert [m["voter"] for m in doc["members"]] == [True]  # beside in_sync, for scripts
    human = chatd("status", "--server", address).stdout
    assert "quorum   majority" in human and "VOTER" in human
    assert "quorum majority" in node.log()  # the first log line says it
    node.kill(signal.SIGTERM)
    node.args = [*node.args[: node.args.index("--quorum")], "--quorum", "in-sync"]
    node.start()
    assert node.proc is not None and node.proc.wait(timeout=30) != 0
    assert "founded with quorum majority, which cannot change" in node.log()


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("CHATD_SYNC", "off", "expected one of full, normal"),  # a choice
        ("CHATD_SYNC", "bogus", "expected one of full, normal"),
        ("CHATD_NO_REFLECTION", "False-ish", "expected one of 1, true"),  # a switch
        ("CHATD_SESSION_TTL", "forever", "not a duration"),  # a duration
        ("CHATD_MAX_REQUEST_BYTES", "5", "not in 1024.."),  # a whole number in a range
        ("CHATD_SEND_RATE", "-1", "negative"),  # a number
        ("CHATD_LISTEN", "nonsense", "not a HOST:PORT"),  # an address
        ("CHATD_JOIN", ",", "expected HOST:PORT"),  # a list of addresses
        ("CHATD_NODE_ID", "a b", "node id must match"),
        ("CHATD_WEB_ANSWER_TIMEOUT", "500ms", "not in 1s..1h"),  # a duration in a range
    ],
)
def test_a_bad_environment_variable_is_refused_like_its_flag(
    tmp_path: Path, variable: str, value: str, said: str
) -> None:
    """CHATD_* values are checked exactly as their flags are: exit code 2 and
    one line naming the variable, before anything is opened."""
    env = dict(os.environ, **{variable: value})
    got = chatd("serve", "--data-dir", str(tmp_path / "d"), env=env)
    assert got.returncode == 2, got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and said in lines[0], lines
    assert not (tmp_path / "d").exists()


def test_environment_switches_and_choices_mean_what_they_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatd.cli import build_parser
    from chatd.config import config_from_args

    def config(**env: str) -> Config:
        for name in ("CHATD_NO_REFLECTION", "CHATD_SYNC", "CHATD_SESSION_TTL"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return config_from_args(build_parser().parse_args(["serve"]))

    assert config().reflection and config().sync == "full"
    assert config().session_ttl == 30 * 86400.0
    assert config(CHATD_NO_REFLECTION="False").reflection  # "False" means false
    assert config(CHATD_NO_REFLECTION="0").reflection
    assert not config(CHATD_NO_REFLECTION="true").reflection
    assert config(CHATD_SYNC="normal").sync == "normal"
    assert config(CHATD_SESSION_TTL="12h").session_ttl == 12 * 3600.0
    # a flag on the command line wins over the environment
    monkeypatch.setenv("CHATD_SYNC", "normal")
    assert config_from_args(build_parser().parse_args(["serve", "--sync", "full"])).sync == "full"


def test_status_on_a_slave_names_the_master_before_it_knows_its_client_address() -> None:
    from chatd.proto import cluster_pb2
    from chatd.tools.admin import format_status, status_document

    st = cluster_pb2.NodeStatus(
        node_id="n2", role="slave", epoch=1, master_id="n1", master_peer_address="10.0.0.1:50052"
    )
    assert "master   n1 (peers at 10.0.0.1:50052)" in format_status(status_document(st))
    st.master = "chat.example:50051"
    assert "master   n1 at chat.example:50051" in format_status(status_document(st))


def test_a_config_file_under_the_environment_under_the_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config FILE (TOML, keys named as the flags): a flag wins over
    CHATD_*, which wins over the file, which wins over the defaults; each
    value checked as its flag is; a secret read from a file."""
    from chatd.cli import build_parser
    from chatd.config import config_from_args

    for name in ("CHATD_SYNC", "CHATD_SESSION_TTL", "CHATD_CONFIG", "CHATD_CLUSTER_SECRET"):
        monkeypatch.delenv(name, raising=False)
    secret = tmp_path / "secret"
    secret.write_text("from-a-docker-secret\n")
    conf = tmp_path / "chatd.toml"
    conf.write_text(
        'listen = "0.0.0.0:6000"\n'
        'data_dir = "/var/lib/chatd"\n'
        'session-ttl = "12h"\n'
        "send-rate = 5\n"
        'sync = "normal"\n'
        "no-reflection = true\n"
        'join = ["10.0.0.1:50052", "10.0.0.2:50052"]\n'
        f'cluster-secret-file = "{secret}"\n'
    )

    def config(*flags: str) -> Config:
        return config_from_args(build_parser().parse_args(["serve", "--config", str(conf), *flags]))

    c = config()
    assert (c.listen, str(c.data_dir), c.session_ttl, c.send_rate) == (
        "0.0.0.0:6000", "/var/lib/chatd", 12 * 3600.0, 5.0,
    )  # fmt: skip
    assert c.sync == "normal" and not c.reflection
    assert c.join == ("10.0.0.1:50052", "10.0.0.2:50052")
    assert c.cluster_secret == "from-a-docker-secret"
    monkeypatch.setenv("CHATD_SYNC", "full")
    assert config().sync == "full"  # the environment over the file
    assert config("--session-ttl", "1h").session_ttl == 3600.0  # a flag over both
    monkeypatch.setenv("CHATD_CONFIG", str(conf))  # the file named by the environment
    assert config_from_args(build_parser().parse_args(["serve"])).listen == "0.0.0.0:6000"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('sync = "off"', "sync: expected one of full, normal"),
        ('session-ttl = "forever"', "session-ttl: not a duration"),
        ("no-reflection = 1", "no-reflection: expected true or false"),
        ('colour = "blue"', "'colour' is not a serve setting"),
        ("listen = ", "not TOML"),
        ('cluster-secret-file = "/nonexistent/secret"', "--cluster-secret-file /nonexistent"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it(tmp_path: Path, text: str, said: str) -> None:
    conf = tmp_path / "chatd.toml"
    conf.write_text(text + "\n")
    got = chatd("serve", "--config", str(conf), "--data-dir", str(tmp_path / "d"))
    assert got.returncode == 2, got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], lines
    assert not (tmp_path / "d").exists()
