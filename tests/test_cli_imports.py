"""`chatd` imports only the module of the subcommand it runs: parsing loads
nothing heavy, `serve` does not load the terminal client, `chat` does not
load the server, and the health check (run every few seconds by
docker-compose) loads neither. Each case runs in a fresh interpreter and
reads `sys.modules` at its end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What a run of the subcommand does in the child: "parse" only parses,
# "command" also imports the subcommand's module (cli.command), "run" runs it.
SCRIPT = """
import json, sys
from chatd import cli
args = cli.build_parser().parse_args(json.loads(sys.argv[1]))
rc = None
if sys.argv[2] != "parse":
    entry = cli.command(args)
    if sys.argv[2] == "run":
        rc = entry(args)
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""

SERVER = "chatd.server"
TERMINAL = ("prompt_toolkit", "chatd.client")
ADMIN_SERVER_MODULES: set[str] = set()  # the admin commands load no server code
BACKUP_MODULES = {
    "chatd.server",
    "chatd.server.storage",
    "chatd.server.storage.backup",
    "chatd.server.errors",
    "chatd.server.storage.statedigest",
}


def imported(argv: list[str], mode: str, cwd: Path) -> tuple[int | None, set[str]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(argv), mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.splitlines()[-1])
    return doc["rc"], set(doc["modules"])


def loaded(modules: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in modules if m.startswith(prefixes))


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["status"],
        ["health"],
        ["chat"],
        ["gui"],
        ["bench"],
        ["demo"],
        ["members", "remove", "n2"],
    ],
)
def test_parsing_imports_no_subcommand(argv: list[str], tmp_path: Path) -> None:
    _, modules = imported(argv, "parse", tmp_path)
    assert not loaded(modules, "grpc", "chatd.server", "chatd.core", "chatd.tools", *TERMINAL)


def test_serve_loads_the_server_and_no_client(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    # a data dir that is a file: the node is built, fails to start, exit 1
    argv = ["serve", "--listen", "127.0.0.1:0", "--data-dir", str(not_a_dir)]
    rc, modules = imported(argv, "run", tmp_path)
    assert rc == 1
    assert "chatd.server.node" in modules
    assert not loaded(modules, *TERMINAL, "chatd.tools")


@pytest.mark.parametrize(
    "argv",
    [
        ["health", "--server", "127.0.0.1:1", "--timeout", "0.1"],
        ["status", "--server", "127.0.0.1:1", "--timeout", "0.1"],
        ["members", "remove", "n2", "--server", "127.0.0.1:1", "--timeout", "0.1"],
        ["users", "list", "--server", "127.0.0.1:1", "--timeout", "0.1"],
        ["backup", "out.sqlite3", "--server", "127.0.0.1:1", "--timeout", "0.1"],
    ],
)
def test_operator_commands_load_neither_server_nor_terminal(
    argv: list[str], tmp_path: Path
) -> None:
    rc, modules = imported(argv, "run", tmp_path)
    assert rc == 1  # nothing listens there
    assert not loaded(modules, *TERMINAL)
    # (backup checks the file it wrote as a store does: the backup file's
    # module and the state digest, nothing of the node)
    allowed = BACKUP_MODULES if argv[0] == "backup" else ADMIN_SERVER_MODULES
    assert set(loaded(modules, "chatd.server", "chatd.core")) <= allowed
    if argv[0] == "health":  # every few seconds: grpc and the health messages only
        assert not loaded(modules, "chatd.tools.admin", "grpc_health.v1")
        assert set(loaded(modules, "chatd.proto")) == {
            "chatd.proto",
            "chatd.proto.health_check_pb2",
        }


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["chat"], "chatd.client.terminal"),
        (["gui"], "chatd.client.gui"),
        (["bench"], "chatd.tools.bench"),
        (["demo"], "chatd.tools.demo"),
    ],
)
def test_clients_and_tools_do_not_load_the_server(
    argv: list[str], module: str, tmp_path: Path
) -> None:
    _, modules = imported(argv, "command", tmp_path)
    assert module in modules
    assert not loaded(modules, SERVER, "chatd.core")
    if module != "chatd.client.terminal":
        assert not loaded(modules, "prompt_toolkit")
