"""`--join` at a node's client listener (in the compose setup the host's
port 50052 is chatd2's client port, while 50052 inside the network is the
peer port): the joining node says so within seconds, in one ERROR line
naming the address and the peer listener to join instead, and goes on
looking (it does not wait in silence)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.cluster import Cluster

SECRET = "join-test-secret"
SAID_WITHIN_S = 5.0


def test_join_at_a_client_listener_says_so_within_seconds(tmp_path: Path) -> None:
    c = Cluster(tmp_path, SECRET)
    try:
        c.add("n1", "--cluster-secret", SECRET)
        c.wait_role("n1", "master")
        wrong, right = c.addresses["n1"], c.peers["n1"]
        started = time.monotonic()
        c.add("n2", "--cluster-secret", SECRET, join=wrong)

        def errors() -> list[str]:
            return [line for line in c.nodes["n2"].log().splitlines() if " ERROR " in line]

        c.wait(lambda: errors(), "an ERROR line", timeout=SAID_WITHIN_S)
        print(f"said after {time.monotonic() - started:.2f} s: {errors()[0]}")
        (line,) = errors()
        assert f"the seed {wrong} is node n1's client listener, not its peer listener" in line
        assert f"its peer listener, {right} (--join takes that)" in line
        time.sleep(2.0)  # it goes on looking, and says it once
        assert c.nodes["n2"].running and len(errors()) == 1, errors()
        assert (c.status("n2") or {}).get("role") != "slave"
    finally:
        c.stop_all()
