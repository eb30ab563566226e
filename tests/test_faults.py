"""Fault injection on real 3-node clusters: a full disk (tmpfs), a slave starved
of CPU (a cgroup quota), a paused master or slave (SIGSTOP), a store edited or
damaged under a stopped node.

Each test makes the mechanism it needs and removes it in `finally` (umount,
pids moved back and the cgroup removed, SIGCONT); where the mechanism is not
there (not root, no tmpfs mount, no cgroup cpu controller) it skips and says
why. Writers run through every fault, each Send with its own request id, and
every test ends the same way: writes resumed (the stall is printed), every
acknowledged write stored exactly once, all nodes at the same applied index
and digest. The recipes are in FAULTS.md of the design notes; the README's
testing section says what the suite needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatd.tools import faults
from tests.cluster import Cluster, Load, check_no_loss
from tests.waiting import eventually_async

pytestmark = pytest.mark.timeout(180)

FAILOVER_TIMEOUT_S = 0.5  # --failover-timeout given to every node here
TIMING = (
    "--heartbeat-interval",
    "100ms",
    "--failover-timeout",
    f"{int(FAILOVER_TIMEOUT_S * 1000)}ms",
)
# A slave that stops itself ends its calls at once; the master sees its log
# stream end, asks it directly, is refused, and drops it without waiting out
# the failover timeout (10-15 ms of stalled writes measured; 450-490 ms when
# the master waited out the silence). Below a failover timeout, so that a
# master waiting it out again fails the test.
STALL_BOUND_S = 0.8 * FAILOVER_TIMEOUT_S
DB_FILE = "chatd.sqlite3"


def say(what: str) -> None:
    """A measured figure: printed (shown with -s, and on failure)."""
    print(f"[faults] {what}", flush=True)


@contextlib.contextmanager
def skip_if_unavailable() -> Iterator[None]:
    """A fault this machine cannot inject skips the test, saying why."""
    try:
        yield
    except faults.Unavailable as exc:
        pytest.skip(str(exc))


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    with skip_if_unavailable(), faults.tmpfs(directory, size) as mounted:
        yield mounted


@contextlib.contextmanager
def cpu_group(name: str) -> Iterator[faults.CpuGroup]:
    with skip_if_unavailable(), faults.cpu_group(name) as group:
        yield group


@contextlib.contextmanager
def paused(c: Cluster, name: str) -> Iterator[None]:
    c.nodes[name].kill(signal.SIGSTOP)
    try:
        yield
    finally:
        c.nodes[name].kill(signal.SIGCONT)


# -- the cluster, the load, the final checks --


@dataclass
class Run:
    c: Cluster
    load: Load
    alice: str
    tasks: list[asyncio.Task[None]]

    @classmethod
    async def start(cls, c: Cluster, writers: int = 4, body_chars: int = 0) -> Run:
        load = Load(list(c.addresses.values()), body_chars=body_chars)
        alice = await load.session("alice")
        await load.session("bob")
        tasks = [asyncio.create_task(load.writer(alice, "bob", f"w{i}")) for i in range(writers)]
        return cls(c, load, alice, tasks)

    async def acked_at_least(self, n: int, timeout: float = 30.0) -> None:
        def acked() -> int:
            for t in self.tasks:  # a writer that gave up fails the test now
                if t.done():
                    t.result()
            return len(self.load.acked)

        await eventually_async(acked, f"{n} writes", until=lambda k: k >= n, timeout=timeout)

    async def more(self, n: int, timeout: float = 30.0) -> None:
        await self.acked_at_least(len(self.load.acked) + n, timeout)

    async def finish(self) -> dict[str, object]:
        """Stops the writers; every node converges; nothing acknowledged is
        lost or stored twice."""
        self.load.stop.set()
        async with asyncio.timeout(60):
            await asyncio.gather(*self.tasks)
        state = await asyncio.to_thread(self.c.converged, None, 60.0)
        master = await asyncio.to_thread(self.c.master)
        assert master is not None
        await check_no_loss(self.c.addresses[master], self.alice, "bob", self.load)
        say(
            f"{len(self.load.acked)} writes acknowledged, none lost or doubled; "
            f"{len(self.c.alive())} nodes at index {state['applied_index']}"
        )
        return state


def first_ack_after(load: Load, t0: float) -> float:
    """Seconds from t0 to the first acknowledgement of a Send made after t0."""
    return min(e for s, e in load.ack_log if s > t0) - t0


def longest_stall(load: Load, since: float, until: float) -> float:
    """The longest time between two acknowledgements in [since, until]."""
    ends = sorted(e for _, e in load.ack_log if since <= e <= until)
    return max((b - a for a, b in itertools.pairwise(ends)), default=0.0)


async def started(base: Path, *extra: str) -> Cluster:
    return await asyncio.to_thread(Cluster.start, base, 3, *TIMING, *extra)


async def wait(c: Cluster, pred: object, what: str, timeout: float = 20.0) -> None:
    await asyncio.to_thread(c.wait, pred, what, timeout)


def role(c: Cluster, name: str) -> object:
    return (c.status(name, timeout=0.5) or {}).get("role")


def in_sync(c: Cluster) -> list[str]:
    m = c.master()
    s = c.status(m) if m else None
    return list(s["in_sync"]) if s else []  # type: ignore[call-overload]


# -- a. a full disk --


async def test_a_slave_whose_disk_fills_stops_and_writes_go_on(tmp_path: Path) -> None:
    """n3's data dir is a 4 MB tmpfs; 2 KB messages fill it. n3 must stop
    (non-zero exit, a line saying the disk is full) and the others keep
    acknowledging after about one failover timeout. With the disk grown, n3
    restarted with its own command line catches up."""
    with tmpfs(tmp_path / "n3", "4m") as disk:
        c = await started(tmp_path)
        try:
            run = await Run.start(c, writers=8, body_chars=2048)
            t0 = time.monotonic()
            n3 = c.nodes["n3"]
            await eventually_async(
                lambda: not n3.running, "n3 to stop, its disk full", timeout=60, interval=0.05
            )
            await run.acked_at_least(1)  # (a writer that gave up fails the test here)
            exited = time.monotonic()
            assert n3.proc is not None and n3.proc.returncode not in (0, None)
            await run.more(100)
            stall = longest_stall(run.load, t0, time.monotonic())
            say(
                f"disk full: n3 exited {n3.proc.returncode} {exited - t0:.1f} s into the load; "
                f"writes stalled {stall * 1000:.0f} ms at most"
                f" (bound {STALL_BOUND_S * 1000:.0f} ms)"
            )
            said = n3.log().splitlines()
            critical = [ln for ln in said if " CRITICAL " in ln]
            assert len(critical) == 1 and "disk" in critical[0], said[-40:]
            assert said[-1].startswith("chatd: fatal:") and "disk" in said[-1], said[-40:]
            assert stall < STALL_BOUND_S
            assert c.master() == "n1" and sorted(in_sync(c)) == ["n1", "n2"]
            # the operator frees space and restarts the node unchanged
            faults.resize(disk, "256m")
            c.restart("n3")
            await wait(c, lambda: len(in_sync(c)) == 3, "n3 back in sync", 30)
            await run.more(50)
            await run.finish()
        finally:
            c.stop_all()


# -- b. a slave starved of CPU --


async def test_a_slave_held_at_2_percent_cpu(tmp_path: Path) -> None:
    """n3 in a cgroup with 2 ms of CPU each 100 ms: the master drops it from
    the in-sync set for lagging (saying so in `chatd status`) within a few
    seconds, and writes go on at the two others' pace; with the quota gone,
    n3 catches up and rejoins after its hold-off (10 s by default)."""
    with cpu_group(f"chatd-test-{os.getpid()}") as group:
        c = await started(tmp_path)
        try:
            run = await Run.start(c, writers=8)
            await run.acked_at_least(100)
            t = time.monotonic()
            await asyncio.sleep(2)  # (a rate measured over 2 s)
            rate_before = sum(1 for _, e in run.load.ack_log if e > t) / 2
            group.limit(2)
            group.add(c.nodes["n3"].pid)
            t0 = time.monotonic()
            await eventually_async(
                lambda: asyncio.to_thread(in_sync, c),
                "n3 at 2 % CPU dropped from the in-sync set",
                until=lambda nodes: "n3" not in nodes,
                timeout=10,
                interval=0.25,
            )
            dropped = time.monotonic() - t0
            master = c.master()
            assert master is not None
            doc = await asyncio.to_thread(c.cli_status, master)
            members = doc["members"]
            assert isinstance(members, list)
            why = next(m["left_reason"] for m in members if m["node_id"] == "n3")
            # (at 2 % it may also miss heartbeats for a failover timeout)
            assert why.startswith(("lagging:", "silent", "catching up (dropped when silent)")), why
            t1 = time.monotonic()
            await asyncio.sleep(3)  # (a rate measured over 3 s)
            rate_after = sum(1 for _, e in run.load.ack_log if e > t1) / (time.monotonic() - t1)
            say(
                f"n3 at 2 % CPU: dropped after {dropped:.2f} s ({why}); then "
                f"{rate_after:.0f} writes/s (before: {rate_before:.0f}/s, "
                f"{rate_after / rate_before:.2f})"
            )
            assert rate_after >= 0.5 * rate_before
            group.release()
            t2 = time.monotonic()
            await wait(c, lambda: len(in_sync(c)) == 3, "n3 back in sync", 40)
            say(f"quota removed: n3 in sync {time.monotonic() - t2:.2f} s later")
            await run.more(50)
            await run.finish()
        finally:
            c.stop_all()


# -- c. a pause --


async def test_a_paused_master_is_replaced_and_rejoins(tmp_path: Path) -> None:
    c = await started(tmp_path)
    try:
        run = await Run.start(c)
        await run.acked_at_least(50)
        old = c.master()
        assert old is not None
        with paused(c, old):
            t0 = time.monotonic()
            await wait(
                c,
                lambda: any(role(c, n) == "master" for n in c.nodes if n != old),
                "a new master",
                10,
            )
            elected = time.monotonic() - t0
            await run.more(30, timeout=10)
            # the writers' calls to the paused master wait out Load's 1 s timeout
            say(
                f"master {old} paused: a new master after {elected:.2f} s, writes again "
                f"after {first_ack_after(run.load, t0):.2f} s"
            )
            # (paused for 2.5 s at least: the pause's length is the test)
            await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
        await wait(c, lambda: role(c, old) == "slave", f"{old} to rejoin as a slave")
        await wait(c, lambda: len(in_sync(c)) == 3, f"{old} back in sync", 30)
        await run.more(30)
        await run.finish()
    finally:
        c.stop_all()


async def test_a_paused_slave_is_dropped_and_rejoins(tmp_path: Path) -> None:
    c = await started(tmp_path)
    try:
        run = await Run.start(c)
        await run.acked_at_least(50)
        with paused(c, "n3"):
            t0 = time.monotonic()
            await wait(c, lambda: "n3" not in in_sync(c), "n3 dropped from the in-sync set", 10)
            await run.more(30, timeout=10)
            say(f"slave n3 paused: writes again after {first_ack_after(run.load, t0):.2f} s")
            # (paused for 2.5 s at least: the pause's length is the test)
            await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
        t1 = time.monotonic()
        await wait(c, lambda: len(in_sync(c)) == 3, "n3 back in sync", 30)
        say(f"n3 resumed: in sync again after {time.monotonic() - t1:.2f} s")
        assert c.master() == "n1"
        await run.more(30)
        await run.finish()
    finally:
        c.stop_all()


# -- d. a store changed under a stopped node --


def edit_a_row(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        (rowid,) = con.execute(
            "SELECT rowid FROM messages ORDER BY rowid LIMIT 1 OFFSET 10"
        ).fetchone()
        con.execute("UPDATE messages SET body = 'edited by hand' WHERE rowid = ?", (rowid,))
    return f"message row {rowid}'s body changed with sqlite3"


def overwrite_bytes(db: Path) -> str:
    size = db.stat().st_size
    at = size // 2
    with db.open("r+b") as f:
        f.seek(at)
        f.write(b"\xa5" * 4096)
    return f"4096 bytes at offset {at} of {size} overwritten"


def back_in_sync(c: Cluster, name: str) -> bool:
    """`name` answers as a slave and the master counts it in sync (a node
    killed a moment ago may still be counted: wait for it to leave first)."""
    return role(c, name) == "slave" and name in in_sync(c)


@pytest.mark.parametrize("damage", [edit_a_row, overwrite_bytes], ids=["row", "bytes"])
async def test_a_store_changed_under_a_stopped_node(tmp_path: Path, damage: object) -> None:
    """n3, stopped, gets its SQLite file changed. Restarted unchanged it must
    refuse to start, saying so, rather than rejoin with divergent data (it
    would catch up from the log: few writes are missed meanwhile). The
    operator's way back: move the data dir aside and start the node again
    with --join on an empty one; the log no longer reaches back to index 1,
    so it catches up by snapshot."""
    c = await started(tmp_path, "--log-retention", "200")
    try:
        run = await Run.start(c)
        await run.acked_at_least(400)
        n3 = c.nodes["n3"]
        n3.kill(signal.SIGTERM)
        assert n3.proc is not None and n3.proc.returncode == 0
        what = damage(tmp_path / "n3" / DB_FILE)  # type: ignore[operator]
        say(f"n3 stopped; {what}")
        await wait(c, lambda: "n3" not in in_sync(c), "n3 to leave the in-sync set")
        await run.more(20)
        log_before = len(n3.log())
        c.restart("n3")
        await wait(c, lambda: not n3.running or back_in_sync(c, "n3"), "n3 to stop or rejoin", 30)
        code = n3.proc.poll()
        said = n3.log()[log_before:].strip().splitlines()
        assert code is not None, "n3 started on a changed store and rejoined"
        say(f"n3 refused to start (exit {code}): {said[-1] if said else ''}")
        assert code != 0
        assert said and said[-1].startswith(("chatd: error:", "chatd: fatal:")), said[-40:]
        assert "--join" in said[-1], said[-1]  # it names the way back
        # the way back of docs/operations.md, "State digests": the data dir
        # aside, an empty one, --join
        (tmp_path / "n3").rename(tmp_path / "n3.damaged")
        assert "--join" in n3.args  # its first command line joined through n1
        log_before = len(n3.log())
        t0 = time.monotonic()
        c.restart("n3")
        await wait(c, lambda: back_in_sync(c, "n3"), "n3 back in sync", 30)
        say(f"n3 on an empty data dir: in sync after {time.monotonic() - t0:.2f} s")
        assert "installed a snapshot" in n3.log()[log_before:]
        await run.more(30)
        await run.finish()
    finally:
        c.stop_all()
