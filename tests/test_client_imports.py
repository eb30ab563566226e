"""The client package has no import cycle: each module of chatd/client
imports only modules below it, counting every import a module makes
(inside functions and under TYPE_CHECKING too), read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

import chatd.client

PACKAGE = "chatd.client"
ROOT = Path(chatd.client.__file__).parent


def imported(path: Path, modules: set[str]) -> set[str]:
    """The modules of the package that the file at `path` imports
    ("__init__" for the package itself)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from chatd.client import errors` imports the module errors;
            # `from chatd.client import ChatClient`, the package itself
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.removeprefix(PACKAGE + ".").split(".")
            if not name.startswith(PACKAGE + "."):
                continue
            out.add(parts[0] if parts[0] in modules else "__init__")
    return out


def graph() -> dict[str, set[str]]:
    modules = {p.stem for p in ROOT.glob("*.py")}
    return {m: imported(ROOT / f"{m}.py", modules) - {m} for m in sorted(modules)}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it (None: there is none)."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []

    def walk(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (found := walk(n)) is not None:
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := walk(m)) is not None:
            return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_only_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == ["a", "b", "a"]


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import chatd.client.errors\n"
        "from chatd.client import terminal\n"
        "from chatd.client import ChatClient\n"
        "if TYPE_CHECKING:\n"
        "    from chatd.client.api import ChatClient\n"
        "def later():\n"
        "    from chatd.client.rooms import Room\n"
    )
    (tmp_path / "m.py").write_text(source + "import chatd.contract\nfrom chatd import tls\n")
    modules = {"errors", "terminal", "api", "rooms", "gui"}
    assert imported(tmp_path / "m.py", modules) == {
        "errors",
        "terminal",
        "api",
        "rooms",
        "__init__",
    }


def test_the_client_package_has_no_import_cycle() -> None:
    edges = graph()
    assert {"api", "connection", "rooms", "failover"} <= set(edges)
    found = cycle(edges)
    assert found is None, "import cycle in chatd/client: " + " -> ".join(found or [])
