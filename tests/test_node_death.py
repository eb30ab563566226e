"""What a node's death leaves in the survivors' logs: an ERROR line means
something is wrong that an operator must act on, so a node killed (a slave,
then the master) gives none, and in particular not the line that names a
member of an older protocol (tests/test_upgrade.py has the genuine one).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.cluster import Cluster

pytestmark = pytest.mark.timeout(120)

ERROR = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) .*$", re.M)
OLDER = re.compile(r"speaks protocol \d+ and this cluster is at")
REDIALS_S = 3.0  # the master dials a dead member again every tick: many times in this


def errors(log: str) -> list[str]:
    return [m.group(0) for m in ERROR.finditer(log)]


def test_a_slave_then_the_master_killed_leave_no_error_line(tmp_path: Path) -> None:
    c = Cluster.start(tmp_path)
    try:
        master = c.master()
        assert master is not None
        slaves = sorted(n for n in c.nodes if n != master)
        c.kill(slaves[0])
        c.wait(lambda: c.in_sync_count() == 2, f"{slaves[0]} out of the in-sync set")
        time.sleep(REDIALS_S)
        assert not OLDER.search(c.nodes[master].log())
        assert not errors(c.nodes[master].log())
        c.kill(master)
        c.wait(lambda: c.master() == slaves[1], f"{slaves[1]} the master")
        time.sleep(REDIALS_S)
        assert not OLDER.search(c.nodes[slaves[1]].log())
        assert not errors(c.nodes[slaves[1]].log())
    finally:
        c.stop_all()


def test_a_cold_start_of_the_whole_cluster_leaves_no_error_line(tmp_path: Path) -> None:
    """All three nodes killed and started again at once (as `docker compose
    up` does): the master dials members that are not listening yet, which
    is no error."""
    c = Cluster.start(tmp_path)
    try:
        for name in c.nodes:
            c.kill(name)
        seen = {n: len(p.log()) for n, p in c.nodes.items()}
        for name in c.nodes:
            c.restart(name)
        c.wait(lambda: c.in_sync_count() == 3, "3 nodes in sync again", 60)
        time.sleep(REDIALS_S)
        for name, proc in c.nodes.items():
            assert not errors(proc.log()[seen[name] :]), name
    finally:
        c.stop_all()
