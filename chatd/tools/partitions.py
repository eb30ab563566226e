"""Partition schedules on real processes, for tests/test_partitions.py and
benchmarks/partitions.py: three nodes, each in a network namespace of its
own on one bridge (chatd.tools.faults.network), a writer inside each
namespace sending to its own node (chatd.tools.nswriter). In turn, each for
`cut_s` seconds and healed before the next: the master cut off, a slave cut
off, a bridge (a slave and the master cannot see each other; the third
node sees both), the master paused (SIGSTOP). Then everything is read back
from the final master and compared with what was acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chatd.server.storage import rollback
from chatd.tools.faults import Network
from chatd.tools.localcluster import TEST_HASH_COST, Cluster, Load, NodeProcess, history

PORT = 7000
PEER_PORT = 7001
SECRET = "partition-run"  # (without one a node listens on loopback only)
TIMING = ("--heartbeat-interval", "100ms", "--failover-timeout", "500ms")


@dataclass
class Phase:
    what: str
    minority: set[int]  # nodes cut off (or paused)
    start: float = 0.0
    end: float = 0.0
    majority_acks: int = 0  # acknowledged on the other side during the cut
    longest_wait: float = 0.0  # seconds between two of those (or the cut's edges)
    minority_acks: int = 0  # acknowledged on the cut-off side 0.3 s or more into the cut
    masters: set[str] = field(default_factory=set)  # nodes seen as master during the cut


@dataclass
class Report:
    quorum: str
    phases: list[Phase]
    acked: int = 0
    lost: int = 0  # acknowledged, not stored (or stored under another id)
    doubled: int = 0  # stored twice
    shared_ids: int = 0  # one message id acknowledged for two messages
    digests_equal: bool = False
    # in-sync mode: what the nodes dropped at the heals (chatd.server.storage.rollback)
    rollback_files: list[Path] = field(default_factory=list)
    in_rollback: int = 0  # acknowledged, not stored, and in a rollback file
    rollback_entries: int = 0  # entries in the rollback files
    status_rolled_back: int = 0  # what the nodes' `chatd status` count
    resend: str = ""  # what `chatd rollback resend` said
    lost_after_resend: int = -1  # acknowledged and still nowhere after it (-1: not run)
    doubled_after_resend: int = 0

    def lines(self) -> list[str]:
        out = []
        for p in self.phases:
            out.append(
                f"{self.quorum}: {p.what}: majority side {p.majority_acks} acknowledged, "
                f"longest wait {p.longest_wait * 1000:.0f} ms; minority side {p.minority_acks}; "
                f"masters seen {sorted(p.masters)}"
            )
        out.append(
            f"{self.quorum}: {self.acked} acknowledged, {self.lost} lost, {self.doubled} doubled, "
            f"{self.shared_ids} ids given twice; digests equal at the end: {self.digests_equal}"
        )
        if self.rollback_files:
            out.append(
                f"{self.quorum}: {self.acked - self.lost} of the acknowledged kept, "
                f"{self.in_rollback} of the {self.lost} lost in {len(self.rollback_files)} "
                f"rollback files ({self.rollback_entries} entries; the nodes' status counts "
                f"{self.status_rolled_back}); after `chatd rollback resend`: "
                f"{self.lost_after_resend} lost, {self.doubled_after_resend} doubled "
                f"({self.resend})"
            )
        return out


def start(net: Network, base: Path, quorum: str) -> Cluster:
    c = Cluster(base, SECRET)
    try:
        _start_nodes(c, net, base, quorum)
    except BaseException:
        c.stop_all()  # what did start
        raise
    return c


def _start_nodes(c: Cluster, net: Network, base: Path, quorum: str) -> None:
    for k in (1, 2, 3):
        name = f"n{k}"
        address = f"{net.ip(k)}:{PORT}"
        extra = ["--quorum", quorum] if k == 1 else ["--join", f"{net.ip(1)}:{PEER_PORT}"]
        args = ["serve", "--node-id", name, "--listen", address, "--data-dir", str(base / name)]
        args += ["--peer-listen", f"{net.ip(k)}:{PEER_PORT}"]
        args += ["--password-hash-cost", str(TEST_HASH_COST), "--send-rate", "0"]
        args += ["--account-rate", "0"]
        args += ["--cluster-secret", SECRET, *TIMING, *extra]
        proc = NodeProcess(args, base / f"{name}.log", prefix=net.exec_prefix(k)).start()
        c.nodes[name] = proc
        c.addresses[name] = address
        c.peers[name] = f"{net.ip(k)}:{PEER_PORT}"
        if k == 1:
            c.wait_role("n1", "master")
    c.wait(lambda: c.in_sync_count() == 3, what="3 nodes in sync")


def spawn_writer(
    net: Network, k: int, address: str, session: str, out: Path
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "chatd.tools.nswriter", address, session, f"w{k}", str(out)]
    with out.with_suffix(".log").open("wb") as log:  # the child keeps its own copy
        return subprocess.Popen([*net.exec_prefix(k), *cmd], stdout=subprocess.DEVNULL, stderr=log)


def _longest_gap(times: list[float], start: float, end: float) -> float:
    edges = [start, *(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(edges))


async def run(net: Network, base: Path, quorum: str, cut_s: float = 5.0) -> Report:
    c = await asyncio.to_thread(start, net, base, quorum)
    writers: dict[int, subprocess.Popen[bytes]] = {}
    outs = {k: base / f"w{k}.json" for k in (1, 2, 3)}
    phases: list[Phase] = []
    try:
        load = Load([c.addresses["n1"]])
        session = await load.session("w")
        await load.session("r")
        for k in (1, 2, 3):
            writers[k] = spawn_writer(net, k, c.addresses[f"n{k}"], session, outs[k])
        await asyncio.sleep(2)

        async def phase(p: Phase, act: Callable[[], None], undo: Callable[[], None]) -> None:
            p.start = time.monotonic()
            act()
            watch = asyncio.create_task(_watch_masters(c, p, cut_s))
            await asyncio.sleep(cut_s)
            p.end = time.monotonic()
            undo()
            await watch
            phases.append(p)
            await asyncio.to_thread(c.wait, lambda: c.in_sync_count() == 3, "3 in sync", 60)
            await asyncio.sleep(1)

        m = _master_k(c)
        await phase(Phase(f"master n{m} cut off", {m}), lambda: net.cut(m), lambda: net.heal(m))
        m = _master_k(c)
        s = next(k for k in (1, 2, 3) if k != m)
        await phase(Phase(f"slave n{s} cut off", {s}), lambda: net.cut(s), lambda: net.heal(s))
        m = _master_k(c)
        s = next(k for k in (1, 2, 3) if k != m)
        await phase(
            Phase(f"bridge: n{s} and the master n{m} cannot see each other", set()),
            lambda: net.cut_pair(s, m),
            lambda: net.heal_pair(s, m),
        )
        m = _master_k(c)
        proc = c.nodes[f"n{m}"]
        await phase(
            Phase(f"master n{m} paused", {m}),
            lambda: proc.kill(signal.SIGSTOP),
            lambda: proc.kill(signal.SIGCONT),
        )
        for w in writers.values():
            w.send_signal(signal.SIGTERM)
        for w in writers.values():
            await asyncio.to_thread(w.wait, 15)
        logs = {k: _acks(outs[k]) for k in (1, 2, 3)}
        for p in phases:
            major = sorted(t for k in {1, 2, 3} - p.minority for _, t in logs[k].values())
            minor = [t for k in p.minority for _, t in logs[k].values()]
            p.majority_acks = len([t for t in major if p.start <= t <= p.end])
            p.longest_wait = _longest_gap(major, p.start, p.end)
            p.minority_acks = len([t for t in minor if p.start + 0.3 < t < p.end])
        report = Report(quorum, phases)
        acked = {b: mid for k in (1, 2, 3) for b, (mid, _) in logs[k].items()}
        report.acked = len(acked)
        ids = [mid for k in (1, 2, 3) for mid, _ in logs[k].values()]
        report.shared_ids = len(ids) - len(set(ids))
        final = await asyncio.to_thread(c.master)
        assert final is not None
        stored = await history(c.addresses[final], session, "r")
        by_body: dict[str, int] = {}
        for i, b in stored:
            report.doubled += b in by_body
            by_body[b] = i
        report.lost = sum(1 for b, mid in acked.items() if by_body.get(b) != mid)
        await _resend_rolled_back(c, base, report, acked, by_body, session)
        try:
            await asyncio.to_thread(c.converged)
            report.digests_equal = True
        except AssertionError:
            report.digests_equal = False
        return report
    finally:
        for w in writers.values():
            if w.poll() is None:
                w.kill()
                w.wait(timeout=10)
        for proc in c.nodes.values():
            if proc.running:
                proc.kill(signal.SIGCONT)
        c.stop_all()


RESENT = re.compile(r"^\[re-sent: [^\]]*\] ")  # the note of chatd.tools.rollback


async def _resend_rolled_back(
    c: Cluster,
    base: Path,
    report: Report,
    acked: dict[str, int],
    by_body: dict[str, int],
    session: str,
) -> None:
    """Finds the lost writes in the nodes' rollback files, re-sends them
    (`chatd rollback resend`, through the final master) and reads back."""
    report.rollback_files = rollback.files([base / name for name in c.nodes])
    if not report.rollback_files:
        return
    records = [r for p in report.rollback_files for r in rollback.read(p)]
    report.rollback_entries = len(records)
    for name in c.nodes:
        doc = await asyncio.to_thread(c.status, name)
        report.status_rolled_back += int(doc["rolled_back"]) if doc else 0  # type: ignore[call-overload]
    kept = {str(r.get("text")) for r in records}
    report.in_rollback = sum(1 for b, mid in acked.items() if by_body.get(b) != mid and b in kept)
    final = c.master()
    assert final is not None
    command = ["rollback", "resend", "--server", c.addresses[final], "--cluster-secret", SECRET]
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "chatd", *command, *map(str, report.rollback_files)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report.resend = (out.stdout.strip().splitlines() or [out.stderr.strip()])[-1]
    stored = await history(c.addresses[final], session, "r")
    bodies = [RESENT.sub("", b) for _, b in stored]
    report.doubled_after_resend = len(bodies) - len(set(bodies))
    report.lost_after_resend = len(acked.keys() - set(bodies))


def _master_k(c: Cluster) -> int:
    m = c.master()
    assert m is not None
    return int(m[1:])


async def _watch_masters(c: Cluster, p: Phase, seconds: float) -> None:
    """Notes every node that says it is master while the cut lasts (asked
    from outside, so a node cut off is not seen: its writer's acks tell)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in c.nodes:
            s = await asyncio.to_thread(c.status, name, 0.3)
            if s is not None and s["role"] == "master":
                p.masters.add(name)
        await asyncio.sleep(0.2)


def _acks(out: Path) -> dict[str, tuple[int, float]]:
    return {b: (int(v[0]), float(v[1])) for b, v in json.loads(out.read_text()).items()}
