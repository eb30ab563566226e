"""Real network partitions (chatd/tools/partitions.py): three nodes, each in
a network namespace of its own on one bridge, a writer inside each
namespace sending to its own node; the master cut off, a slave cut off, a
bridge, the master paused.

Majority mode: no acknowledged write may be lost or stored twice, no id
given twice, no write acknowledged on a cut-off side, and the majority side
must keep taking writes (its longest wait printed).

In-sync mode (the default): both sides acknowledge alone, and at the heal
one side's writes are dropped; none silently. Every acknowledged write is
either kept or in a rollback file of a node that dropped it (0600, in a
0700 dir, with one ERROR line in that node's log), and `chatd rollback
resend` brings every one back, none twice.

Needs root and ip(8): skips, saying why, otherwise.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.tools import faults, partitions

# Each cut lasts 2 s (the schedule's default is 5 s): four failover timeouts
# (500 ms), time for the majority side to elect and write on, and for a side
# cut off alone to drop its slaves (--max-lag-time, 1 s) and write alone
# (in-sync mode) or be refused (majority mode).
CUT_S = 2.0


@pytest.fixture
def net() -> Iterator[faults.Network]:
    try:
        with faults.network(3) as n:
            yield n
    except faults.Unavailable as exc:
        pytest.skip(f"no network namespaces here: {exc}")


async def test_majority_mode_under_partitions(net: faults.Network, tmp_path: Path) -> None:
    report = await partitions.run(net, tmp_path, "majority", CUT_S)
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


async def test_in_sync_mode_rolls_back_into_files_not_silently(
    net: faults.Network, tmp_path: Path
) -> None:
    report = await partitions.run(net, tmp_path, "in-sync", CUT_S)
    for line in report.lines():
        print(f"[partitions] {line}", flush=True)
    assert report.acked > 1000
    assert report.lost > 0, "no side acknowledged alone: the schedule tested nothing"
    assert report.rollback_files, "writes were dropped and no rollback file says so"
    assert report.in_rollback == report.lost, "acknowledged writes dropped silently"
    assert report.status_rolled_back == report.rollback_entries  # counted in `chatd status`
    assert (report.lost_after_resend, report.doubled_after_resend) == (0, 0), report.resend
    assert report.digests_equal
    for path in report.rollback_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        node_log = (path.parent.parent.parent / f"{path.parent.parent.name}.log").read_text()
        assert f"they are in {path}" in node_log
    first = report.rollback_files[0].read_text().splitlines()
    for line in first[:3]:
        print(f"[partitions] {report.rollback_files[0].name}: {line}", flush=True)
    record = json.loads(first[0])
    assert {"kind", "epoch", "index", "time", "acknowledged"} <= record.keys()
