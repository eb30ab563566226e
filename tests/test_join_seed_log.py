"""A node that has never joined and whose seed does not answer says so: it
looks for the master via its seeds, and each seed refuses connections or
does not answer; at a bounded rate, never an empty in-sync set or name."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Callable

import pytest

from chatd.tools.localcluster import NodeProcess, free_port
from tests.conftest import logged

SAID = "has not joined a cluster yet"
FAILOVER_S = 1.0


def stalled_lines(spawn: Callable[..., NodeProcess], seed: str, watch_s: float) -> list[str]:
    node = spawn(
        "n4", "--join", seed, "--node-id", "n4", "--heartbeat-interval", "0.2s",
        "--failover-timeout", f"{FAILOVER_S:g}s",
    )  # fmt: skip
    logged(node, SAID)
    time.sleep(watch_s)  # (what is tested: what it says meanwhile, at what rate)
    node.kill(signal.SIGTERM)
    log = node.log()
    assert "start  again" not in log and "in-sync set []" not in log, log
    return [line for line in log.splitlines() if "WARNING" in line]


def test_a_seed_that_refuses_connections_is_named(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    seed = f"127.0.0.1:{free_port()}"  # nothing listens there
    lines = stalled_lines(spawn_node, seed, 5 * FAILOVER_S)
    assert lines and all(SAID in line for line in lines), lines
    assert f"looking for the master via its seeds {seed}" in lines[0], lines[0]
    assert f"{seed} refuses connections" in lines[0], lines[0]
    # the first after a failover timeout, then once every ten while it lasts
    assert len(lines) == 1, lines


def test_a_seed_that_does_not_answer_is_named(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), answers nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        seed = f"127.0.0.1:{silent.getsockname()[1]}"
        lines = stalled_lines(spawn_node, seed, 1.0)
    said = [line for line in lines if SAID in line]
    assert said, lines
    if "refuses connections" in said[0]:
        pytest.fail(f"a silent seed is not one that refuses: {said[0]}")
    assert re.search(re.escape(seed) + r" does not answer", said[0]), said[0]
