"""Seed destinations (a node known by its address only) are spelled in one
place: chatd.core.types's seed_dst and seed_address."""

from __future__ import annotations

import ast
from pathlib import Path

import chatd
from chatd.core.types import seed_address, seed_dst

PACKAGE = Path(chatd.__file__).resolve().parent


def test_a_seed_destination_names_its_address_and_a_node_id_none() -> None:
    assert seed_address(seed_dst("10.0.0.7:50052")) == "10.0.0.7:50052"
    assert seed_address(seed_dst("[::1]:50052")) == "[::1]:50052"
    assert seed_address("n1") is None
    assert seed_dst("h:1") != "h:1"


def test_no_module_spells_the_seed_prefix_itself() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        # (the clients know no seeds, and write "@" for people: "@bob")
        if path == PACKAGE / "core" / "types.py" or {"proto", "client"} & set(path.parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value == "@":
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert found == [], found
