"""A condition that lasts is said once, not at every heartbeat: a founding
master with --min-in-sync 2 and no slave cannot write the cluster's
protocol version, and says so once."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from chatd.tools.localcluster import NodeProcess
from tests.conftest import logged


def test_a_lone_master_under_min_in_sync_says_why_once(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    node = spawn_node(
        "n1", "--role", "master", "--min-in-sync", "2", "--heartbeat-interval", "0.1s",
        "--failover-timeout", "1s",
    )  # fmt: skip
    logged(node, "not written")
    time.sleep(3)  # 30 heartbeats (what is tested: the line is not said again meanwhile)
    assert node.running, node.log()
    node.kill(signal.SIGTERM)
    said = [line for line in node.log().splitlines() if "not written" in line]
    assert len(said) == 1, said[:5]
