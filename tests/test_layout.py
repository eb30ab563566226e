"""The server's layout by layer, and the rule of who may import whom.

    node.py, build.py         build and wire everything
    web/      -> api, chat, storage   the web client: page, WebSocket, JSON
    api/      -> chat, storage   servicers, streams, health, metrics
    chat/     -> storage         the chat rules, throttles, the hub
    cluster/  -> storage         replication driver, transport, peer services
    storage/                     SQLite, tables, the writer, backups
    errors.py, protocol.py       shared by every layer; import no other

Every layer may import chatd.core (which imports nothing of chatd.server
nor gRPC); storage and chat know no gRPC. Each module's imports are read
with ast (those under TYPE_CHECKING and inside functions too), so a type
annotation counts as a dependency like any other import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SERVER = "chatd.server"
SHARED = {"chatd.server.errors", "chatd.server.protocol"}
NODE = {"chatd.server.node", "chatd.server.build"}  # they build and wire the layers
LAYERS = ("web", "api", "chat", "cluster", "storage")
# what each layer of chatd.server may import of chatd.server (besides itself)
MAY_IMPORT: dict[str, set[str]] = {
    "node": {"web", "api", "chat", "cluster", "storage", "shared"},
    "web": {"api", "chat", "storage", "shared"},
    "api": {"chat", "storage", "shared"},
    "chat": {"storage", "shared"},
    "cluster": {"storage", "shared"},
    "storage": {"shared"},
    "shared": set(),
    "core": set(),
}
NO_GRPC = {"storage", "chat", "shared", "core"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer a module of chatd.server or chatd.core is on; None for
    others; "?" for a module of chatd.server on no layer."""
    if module == "chatd.core" or module.startswith("chatd.core."):
        return "core"
    if module == SERVER:
        return "shared"  # the package itself: a docstring
    if not module.startswith(SERVER + "."):
        return None
    if module in SHARED:
        return "shared"
    if module in NODE:
        return "node"
    first = module.split(".")[2]
    return first if first in LAYERS else "?"


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module imported) for each import in the file, relative ones
    resolved; `from p import m` counts as p.m (m may be a module)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def broken(root: Path) -> list[str]:
    """Every import under root/chatd/server and root/chatd/core that the rule
    forbids, as "file:line: importer (layer) imports target (layer)"."""
    out: list[str] = []
    files = sorted((root / "chatd" / "server").rglob("*.py"))
    files += sorted((root / "chatd" / "core").rglob("*.py"))
    for path in files:
        module = module_name(path, root)
        layer = layer_of(module)
        assert layer is not None
        where = f"{path.relative_to(root)}"
        if layer == "?":
            out.append(f"{where}: {module} is on no layer (put it in one of {LAYERS})")
            continue
        told: set[int] = set()  # one line each: `from p import m` is read as p and p.m
        for line, target in imports_of(path, module):
            if line in told:
                continue
            if target.split(".")[0] in ("grpc", "grpc_health", "grpc_reflection"):
                if layer in NO_GRPC:
                    out.append(f"{where}:{line}: {module} ({layer}) imports {target}")
                    told.add(line)
                continue
            other = layer_of(target)
            if other is None or other == "?" or other == layer:
                continue  # not the server's; a name of a package, not a module; its own layer
            if other == "core" and layer != "core":
                continue
            if other not in MAY_IMPORT[layer]:
                out.append(f"{where}:{line}: {module} ({layer}) imports {target} ({other})")
                told.add(line)
    return out


def test_every_import_of_the_server_keeps_the_rule() -> None:
    assert broken(ROOT) == []


def test_each_layer_says_what_it_owns_and_may_import() -> None:
    for layer in LAYERS:
        init = ROOT / "chatd" / "server" / layer / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc is not None, init
        assert "May import:" in doc and "Never" in doc, init


def test_no_module_imports_itself_back_through_another() -> None:
    """No import cycle among the server's modules (counting every import,
    TYPE_CHECKING ones too)."""
    server = ROOT / "chatd" / "server"
    graph: dict[str, set[str]] = {}
    for path in server.rglob("*.py"):
        module = module_name(path, ROOT)
        graph[module] = set()
    for path in server.rglob("*.py"):
        module = module_name(path, ROOT)
        graph[module] = {t for _, t in imports_of(path, module) if t in graph and t != module}
    for path in server.rglob("__init__.py"):
        graph.pop(module_name(path, ROOT), None)  # packages hold docstrings only
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return [*trail, m, n]
            if n not in state and (cycle := visit(n, [*trail, m])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            assert visit(m, []) is None


MAX_LINES = 400  # a module of the server owns one thing, named for it
SIZED = ("web", "api", "chat", "storage")  # the layers held to it so far (each joins once split)


@pytest.mark.parametrize("layer", SIZED)
def test_each_module_of_a_layer_is_small(layer: str) -> None:
    modules = sorted((ROOT / "chatd" / "server" / layer).glob("*.py"))
    lines = {p.name: len(p.read_text().splitlines()) for p in modules}
    assert not {name: n for name, n in lines.items() if n > MAX_LINES}, f"over {MAX_LINES} lines"


# -- the rule catches a bad import: a synthetic tree of each forbidden kind --

BAD = [
    ("chatd/server/storage/x.py", "from chatd.server.api import client_service"),
    ("chatd/server/storage/x.py", "from chatd.server.chat.hub import Hub"),
    ("chatd/server/storage/x.py", "import grpc"),
    ("chatd/server/storage/x.py", "from ..cluster import peers"),
    ("chatd/server/chat/x.py", "from chatd.server.api.unary import unary"),
    ("chatd/server/chat/x.py", "from chatd.server.cluster.replication import Replicator"),
    ("chatd/server/chat/x.py", "import chatd.server.node"),
    ("chatd/server/api/x.py", "from chatd.server.build import build"),
    ("chatd/server/cluster/x.py", "from chatd.server.chat import rules"),
    ("chatd/server/cluster/x.py", "from chatd.server.api.metrics import Metrics"),
    ("chatd/server/api/x.py", "from chatd.server.cluster.peers import Peers"),
    ("chatd/server/api/x.py", "from ..cluster.replication import Replicator"),
    ("chatd/server/errors.py", "from chatd.server.storage.store import Store"),
    ("chatd/core/x.py", "from chatd.server.storage import store"),
    ("chatd/core/x.py", "import grpc"),
    ("chatd/server/loose.py", "import json"),
]
GOOD = [
    ("chatd/server/api/x.py", "from chatd.server.chat.rules import Chat"),
    ("chatd/server/api/x.py", "from chatd.server.storage.store import StoredMessage"),
    ("chatd/server/chat/x.py", "from chatd.server.storage.store import Store"),
    ("chatd/server/cluster/x.py", "from ..storage import backup"),
    ("chatd/server/cluster/x.py", "import grpc"),
    ("chatd/server/storage/x.py", "from chatd.server.errors import StoreError"),
    ("chatd/server/storage/x.py", "from chatd.core.log import EpochRuns"),
    ("chatd/server/node.py", "from chatd.server.cluster.peers import Peers"),
    ("chatd/server/build.py", "from chatd.server.api.health import Health"),
]


def synthetic(tmp_path: Path, file: str, line: str) -> Path:
    for layer in LAYERS:
        (tmp_path / "chatd" / "server" / layer).mkdir(parents=True, exist_ok=True)
        (tmp_path / "chatd" / "server" / layer / "__init__.py").write_text('"""."""\n')
    (tmp_path / "chatd" / "core").mkdir(parents=True, exist_ok=True)
    (tmp_path / "chatd" / "server" / "__init__.py").write_text("")
    (tmp_path / "chatd" / "core" / "__init__.py").write_text("")
    target = tmp_path / file
    target.write_text(f"from __future__ import annotations\n\n{line}\n")
    return tmp_path


@pytest.mark.parametrize(("file", "line"), BAD)
def test_a_bad_import_breaks_the_rule(tmp_path: Path, file: str, line: str) -> None:
    found = broken(synthetic(tmp_path, file, line))
    assert len(found) == 1 and found[0].startswith(file), found


def test_a_bad_import_under_type_checking_breaks_it_too(tmp_path: Path) -> None:
    line = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from chatd.server.api import x"
    found = broken(synthetic(tmp_path, "chatd/server/cluster/x.py", line))
    assert found == [
        "chatd/server/cluster/x.py:5: chatd.server.cluster.x (cluster) imports "
        "chatd.server.api (api)"
    ]


@pytest.mark.parametrize(("file", "line"), GOOD)
def test_an_allowed_import_keeps_it(tmp_path: Path, file: str, line: str) -> None:
    assert broken(synthetic(tmp_path, file, line)) == []
