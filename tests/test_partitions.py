"""Real network partitions in majority mode (chatd/tools/partitions.py):
three nodes, each in a network namespace of its own on one bridge, a writer
inside each namespace sending to its own node; the master cut off, a slave
cut off, a bridge, the master paused. No acknowledged write may be lost or
stored twice, no id given twice, no write acknowledged on a cut-off side,
and the majority side must keep taking writes (its longest wait printed).

Needs root and ip(8): skips, saying why, otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.tools import faults, partitions


@pytest.fixture
def net() -> Iterator[faults.Network]:
    try:
        with faults.network(3) as n:
            yield n
    except faults.Unavailable as exc:
        pytest.skip(f"no network namespaces here: {exc}")


async def test_majority_mode_under_partitions(net: faults.Network, tmp_path: Path) -> None:
    report = await partitions.run(net, tmp_path, "majority")
    for line in report.lines():
        print(f"[partitions] {line}", flush=True)
    assert report.acked > 1000
    assert (report.lost, report.doubled, report.shared_ids) == (0, 0, 0)
    assert report.digests_equal
    for p in report.phases:
        assert p.minority_acks == 0, f"{p.what}: the cut-off side acknowledged writes"
        # the master cut off or paused: the others elect within a failover
        # timeout (500 ms) and a round of questions; 1.5 s leaves CI room
        assert p.longest_wait < 1.5, f"{p.what}: the majority side waited {p.longest_wait:.2f} s"
        assert p.majority_acks > 0
