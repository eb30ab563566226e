"""A node as chatd.server.build hands it: every part made before it serves,
a stop that releases the data dir whether or not it served, and its
housekeeping loops under one task group (one that fails stops the node)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chatd.server.build import build
from chatd.server.errors import StartupError
from tests.conftest import node_config


async def test_a_built_node_has_its_parts_before_it_serves(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "n", node_id="n1"))
    try:
        assert node.log_context() == ("n1", 0)  # the role core runs from start() on
        assert node.port and node.peer_port
        assert node.address == f"127.0.0.1:{node.port}"
        assert node.peer_address == f"127.0.0.1:{node.peer_port}"
    finally:
        await node.stop()  # never started: it still lets go of the data dir
    again = await build(node_config(tmp_path / "n"))
    await again.start()
    try:
        assert again.node_id == "n1" and again.log_context()[0] == "n1"
    finally:
        await again.stop()


async def test_a_housekeeping_loop_that_fails_stops_the_node(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "n"))

    async def broken() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("the digest watcher broke")

    node.digests.run = broken  # type: ignore[method-assign]
    await node.start()
    try:
        await asyncio.wait_for(node.wait_stopped(), 10.0)
        assert "the digest watcher broke" in repr(node.fatal)
    finally:
        await node.stop()


async def test_a_build_that_fails_leaves_the_data_dir_free(tmp_path: Path) -> None:
    first = await build(node_config(tmp_path / "n", node_id="n1"))
    await first.stop()
    with pytest.raises(StartupError, match="belongs to node n1, not n2"):
        await build(node_config(tmp_path / "n", node_id="n2"))
    again = await build(node_config(tmp_path / "n", node_id="n1"))  # at once: not locked
    await again.stop()
