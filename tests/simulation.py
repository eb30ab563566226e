"""A deterministic simulation of a chatd cluster's role cores.

Nodes are `Core`s over simulated durable stores; a simulated network delays,
drops and reorders messages; faults crash, restart, pause and resume nodes,
slow a node's disk, and remove members. Schedules differ in how often a
master is struck (crashed or paused) while a membership change is under
way, which is rare otherwise: with that weighting, a commit rule that
ignores a node entering the in-sync set during a change fails at 4 of the
first 1,000 seeds (211, 256, 381, 773) instead of first at seed 3,626.
In majority mode, schedules also differ in how often cuts and slow links
are aimed at the master's links and a master is struck at any time: a
claimant then decides on answers that go stale, and masters follow one
another quickly. With that, each deliberate break of the majority rules in
tests/mutations.py fails within CI's schedules (tests/test_core_mutations.py).
Everything random comes from one seeded `random.Random`, so a schedule
replays exactly from its seed. Invariants are checked after every step.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from chatd.core import Pos, Role, Timing
from chatd.core.quorum import IN_SYNC, MAJORITY
from chatd.core.roles import Master
from chatd.core.types import (
    Action,
    AppendEntries,
    CheckMaster,
    Committed,
    ElectionStalled,
    InSyncChanged,
    Message,
    Register,
    RoleChanged,
    UpdateMaster,
    UpdateSlaves,
    seed_address,
    seed_dst,
)
from tests import core_driver
from tests.core_driver import Payload

# (lag_share: with delays of whole ticks, healthy nodes trail one another far
# more often than on a real network; a slow disk here trails by 1-3 ticks)
TIMING = Timing(failover=5, election=3, retry=3, max_batch=8, max_lag=10, lag_share=0.7)
CI_SCHEDULES = 1000  # the random schedules of each kind CI runs (tests/test_core_simulation.py)
DEADLINE = 3  # ticks before a unary call to a frozen node fails
MAX_NODES = 7  # joins stop there
AIM = (0.0, 0.5, 0.9)
TOPPLE = (0.0, 0.02, 0.05)
LAG_SHARE = (0.0, 0.5)
UNARY = (CheckMaster, Register, UpdateMaster, UpdateSlaves)


class Violation(AssertionError):
    pass


@dataclass(frozen=True)
class Unreachable:
    """The network tells `dst` that its message to `peer` failed (the
    driver's `report_unreachable`)."""

    dst: str
    peer: str


@dataclass
class Node(core_driver.Node):
    paused_at: int = 0
    slow: int = 0  # ticks its disk takes to make received entries durable (a gray failure)
    writing: list[tuple[int, AppendEntries, Payload]] = field(default_factory=list)
    state: list[str] = field(default_factory=list)  # what applying the log produced

    def extend(self, entries: Payload) -> None:
        self.log.extend(entries)
        self.state.extend(p for _, p in entries)  # apply, in the same "transaction"

    def copy_from(self, master: core_driver.Node) -> None:
        assert isinstance(master, Node)
        self.log, self.state = list(master.log), list(master.state)
        self.writing.clear()  # the store is replaced as a whole


@dataclass(order=True)
class InFlight:
    at: int
    seq: int
    msg: Message | Unreachable = field(compare=False)
    payload: Payload = field(compare=False, default=())
    deadline: int | None = field(compare=False, default=None)


class Sim(core_driver.Driver):
    timing = TIMING

    def __init__(
        self, seed: int, size: int = 3, *, drop: float = 0.02, quorum: str = IN_SYNC
    ) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.quorum = quorum
        # directed links cut (src, dst): partitions, in majority mode only
        # (in-sync mode presumes a silent node dead: it is not partition-safe)
        self.cuts: set[tuple[str, str]] = set()
        # directed links that hold what they carry for some ticks (majority
        # mode only, healed with the cuts): answers go stale on the way
        self.lags: dict[tuple[str, str], int] = {}
        self.seed = seed
        self.drop = drop
        self.now = 0
        self.seq = 0
        self.nodes: dict[str, Node] = {  # type: ignore[assignment]
            f"n{i}": Node(f"n{i}", f"10.0.0.{i}:1") for i in range(1, size + 1)
        }
        self.by_address = {n.address: n for n in self.nodes.values()}
        self.net: list[InFlight] = []
        self.snapshots: list[tuple[int, str, str]] = []  # (at, master, dst)
        self.hints: list[tuple[int, str, str]] = []  # (at, node, src): src's stream to node ended
        self.acked: dict[int, tuple[int, str]] = {}
        self.master_of_epoch: dict[int, str] = {}
        self.removals = 0  # `chatd members remove` asked of a master
        self.retired: set[str] = set()  # removals a master's membership has made
        self.trace: deque[str] = deque(maxlen=40)
        self.stalled: dict[str, str] = {}  # node -> the last reason it gave (ElectionStalled)
        self.writes = 0
        # how often what is rare otherwise happens; random schedules draw
        # these (run_schedule), targeted tests keep them off
        self.strike = 0.0  # a master struck while a membership change is under way
        self.cut_rate = 0.0  # links cut (majority mode only)
        self.churn = 0.0  # new nodes joining, members removed
        self.write_rate = 0.5  # writes a master makes a tick
        # majority mode: the share of cuts aimed at the master's links, and
        # how often a master is struck (crashed or paused) at any time
        self.aim = 0.0
        self.topple = 0.0
        self.lag_share = 0.0  # of the aimed faults, links slowed rather than cut
        first = self.nodes["n1"]
        self.boot(first, found=True, quorum=quorum)
        for n in list(self.nodes.values())[1:]:
            self.boot(n, seeds=(first.address,))

    # -- carrying out actions, as the real driver does --

    def drain(
        self, n: core_driver.Node, msg: Message | None = None, payload: Payload = ()
    ) -> list[Action]:
        actions = super().drain(n, msg, payload)
        tell = any(isinstance(a, InSyncChanged) for a in actions)
        if tell and n.core is not None and n.core.role is Role.MASTER:
            # the driver tells the nodes it took in (Core.tell_commit)
            n.core.tell_commit()
            self.drain(n)
        return actions

    def observe(self, n: core_driver.Node, action: Action) -> None:
        assert isinstance(n, Node)
        if isinstance(action, ElectionStalled):
            self.stalled[n.id] = action.reason
            self.trace.append(f"t{self.now} {n.id} stalled: {action.reason}")
        elif isinstance(action, Committed):
            self._committed(n, action.index)
        elif isinstance(action, RoleChanged):
            self.trace.append(
                f"t{self.now} {n.id} {action.role.value} e{action.epoch}: {action.reason}"
            )
            if action.role is Role.MASTER:
                # the driver's pump carries out actions in order: a
                # write under way completes before the writer starts
                self._write(n, flush=True)
                self._became_master(n, action.epoch)

    def write_entries(self, n: core_driver.Node, action: AppendEntries, entries: Payload) -> None:
        assert isinstance(n, Node)
        n.writing.append((self.now + n.slow, action, entries))
        self._write(n)

    def offer_snapshot(self, n: core_driver.Node, dst: str) -> None:
        self.snapshots.append((self.now + self.rng.randint(1, 4), n.id, dst))

    def _write(self, n: Node, flush: bool = False) -> None:
        """Makes received entries durable, in order, once the node's disk
        has taken its time (none unless it is slow)."""
        while n.core is not None and n.writing and (flush or n.writing[0][0] <= self.now):
            _, action, entries = n.writing.pop(0)
            self.make_durable(n, action, entries)

    def send(self, src: core_driver.Node, msg: Message, payload: Payload) -> None:
        seed = seed_address(msg.dst)
        dst = self.nodes.get(msg.dst) if seed is None else self.by_address.get(seed)
        if dst is None:
            return
        self.seq += 1
        # The fault model's network: between live nodes a message arrives
        # within one tick (in any order), or is lost with the sender told, as
        # a broken gRPC call or stream tells it; a crashed node refuses.
        if not dst.up or self.rng.random() < self.drop:
            back = Unreachable(dst=src.id, peer=msg.dst)
            self.net.append(InFlight(self.now + 1, self.seq, back))
            return
        if (src.id, dst.id) in self.cuts:
            self._lost_in_cut(src.id, msg)
            return
        deadline = self.now + DEADLINE if isinstance(msg, UNARY) else None
        delay = self.rng.randint(0, 1) + self.lags.get((src.id, dst.id), 0)
        self.net.append(InFlight(self.now + delay, self.seq, msg, payload, deadline))

    def _lost_in_cut(self, src: str, msg: Message) -> None:
        """Across a cut link nothing arrives and nothing is refused: a unary
        call's caller learns of it only when its deadline passes; what goes
        on a stream is lost without a word."""
        if isinstance(msg, UNARY):
            back = Unreachable(dst=src, peer=msg.dst)
            self.net.append(InFlight(self.now + DEADLINE, self.seq, back))

    def _committed(self, n: Node, index: int) -> None:
        for i in range(1, index + 1):
            entry = n.log[i - 1]
            old = self.acked.setdefault(i, entry)
            if old != entry:
                raise Violation(f"acknowledged entry {i} changed: {old} -> {entry} on {n.id}")

    def _became_master(self, n: Node, epoch: int) -> None:
        if n.id in self.retired:
            raise Violation(f"{n.id} became master at epoch {epoch} after it was removed")
        other = self.master_of_epoch.setdefault(epoch, n.id)
        if other != n.id:
            raise Violation(f"two masters at epoch {epoch}: {other} and {n.id}")
        self._has_acked(n, "became master")

    def remove(self, m: Node, nid: str) -> None:
        """An operator's `chatd members remove nid`, asked of master m."""
        assert m.core is not None
        if m.core.remove_member(nid):
            self.removals += 1
            self.trace.append(f"t{self.now} remove {nid} at {m.id}")
        self.drain(m)

    def _has_acked(self, n: Node, when: str) -> None:
        for i, entry in self.acked.items():
            if i > len(n.log) or n.log[i - 1] != entry:
                raise Violation(f"{n.id} {when} without acknowledged entry {i} {entry}")

    # -- faults and clients --

    def crash(self, n: Node) -> None:
        self.trace.append(f"t{self.now} crash {n.id}")
        n.core, n.paused = None, False
        n.writing.clear()  # not durable yet: lost with the process
        # what was on its way to the dead process dies with its connections
        self.net = [f for f in self.net if f.msg.dst not in (n.id, seed_dst(n.address))]
        # and the nodes it streamed to see those streams end
        for other in self.nodes.values():
            if other.up and other is not n:
                self.hints.append((self.now + self.rng.randint(0, 1), other.id, n.id))

    def restart(self, n: Node) -> None:
        self.trace.append(f"t{self.now} restart {n.id}")
        self.boot(n, seeds=(self.nodes["n1"].address,))

    def join(self) -> Node:
        """A new, empty node joins through n1 (`chatd serve --join`)."""
        k = len(self.nodes) + 1
        n = Node(f"n{k}", f"10.0.0.{k}:1")
        self.nodes[n.id] = n
        self.by_address[n.address] = n
        self.trace.append(f"t{self.now} join {n.id}")
        self.boot(n, seeds=(self.nodes["n1"].address,))
        return n

    def pause(self, n: Node) -> None:
        """Like SIGSTOP: it runs nothing, and what is sent to it waits."""
        self.trace.append(f"t{self.now} pause {n.id}")
        n.paused, n.paused_at = True, self.now

    def resume(self, n: Node) -> None:
        """Like SIGCONT: the driver sees its timer fire far too late and
        tells the core it was frozen, if it was frozen for as long as a call
        to it takes to fail (DEADLINE): shorter freezes go unnoticed."""
        self.trace.append(f"t{self.now} resume {n.id}")
        n.paused = False
        if n.core is not None and self.now - n.paused_at >= DEADLINE:
            n.core.suspect()
            self.drain(n)

    def write(self, n: Node) -> None:
        assert n.core is not None and n.core.role is Role.MASTER
        for _ in range(self.rng.randint(1, 3)):
            self.writes += 1
            n.extend(((n.core.epoch, f"w{self.writes}"),))
        n.core.local_appended(Pos(n.core.epoch, len(n.log)))
        self.drain(n)

    def _install(self, master_id: str, dst_id: str) -> None:
        m, d = self.nodes[master_id], self.nodes[dst_id]
        if not m.up:
            return  # the master's core is gone, and what it had in flight with it
        if m.paused:  # it goes on streaming once it resumes
            self.snapshots.append((self.now + 1, master_id, dst_id))
            return
        assert m.core is not None
        c = d.core
        if (
            c is None
            or d.paused
            # a master that stepped down closed its streams (snapshots with them)
            or m.core.role is not Role.MASTER
            or not c.snapshot_offered(m.id, m.core.epoch)
        ):
            self.refuse_snapshot(m, dst_id)
            return
        self.trace.append(f"t{self.now} snapshot {master_id}->{dst_id} at {m.last().index}")
        self.install_snapshot(m, d)

    # -- the clock --

    def step(self, faults: bool) -> None:
        self.now += 1
        for n in self.nodes.values():
            if n.up and not n.paused:
                assert n.core is not None
                n.core.tick()
                self.drain(n)
                self._write(n)
        due = [f for f in self.net if f.at <= self.now]
        self.net = [f for f in self.net if f.at > self.now]
        self.rng.shuffle(due)  # reordering
        for f in due:
            dst = self.nodes.get(f.msg.dst) or self.by_address.get(seed_address(f.msg.dst) or "")
            if dst is None or not dst.up:
                continue
            if dst.paused:  # held in the socket until it resumes
                if isinstance(f.msg, UNARY) and f.deadline is not None and self.now >= f.deadline:
                    # the caller's deadline passes first: it is told, like a
                    # gRPC DEADLINE_EXCEEDED (the request may still run later)
                    src = f.msg.src
                    self.net.append(
                        InFlight(self.now, self.seq, Unreachable(dst=src, peer=f.msg.dst))
                    )
                    f.deadline = None
                f.at = self.now + 1
                self.net.append(f)
                continue
            assert dst.core is not None
            if not isinstance(f.msg, Unreachable) and (f.msg.src, dst.id) in self.cuts:
                self._lost_in_cut(f.msg.src, f.msg)  # cut while on its way
                continue
            if isinstance(f.msg, Unreachable):
                self.unreachable(dst, f.msg.peer)
            else:
                self.deliver(dst, f.msg, f.payload)
        for hint in [h for h in self.hints if h[0] <= self.now]:
            self.hints.remove(hint)
            node = self.nodes[hint[1]]
            if node.paused:  # it sees the stream end once it runs again
                self.hints.append((self.now + 1, hint[1], hint[2]))
            elif node.core is not None:
                node.core.stream_lost(hint[2])
                self.drain(node)
        for snap in [s for s in self.snapshots if s[0] <= self.now]:
            self.snapshots.remove(snap)
            self._install(snap[1], snap[2])
        masters = [
            n
            for n in self.nodes.values()
            if n.up and not n.paused and n.core is not None and n.core.role is Role.MASTER
        ]
        for master in masters:
            if self.rng.random() < self.write_rate:
                self.write(master)
        if faults:
            self._fault()
        self.check()

    def _partition(self) -> None:
        """Cuts links: one node off, two groups, one pair both ways (a
        bridge: the rest still see both), or one pair one way."""
        ids = list(self.nodes)
        m = self.current_master()
        if m is not None and self.rng.random() < self.aim:
            self._cut_master(m)
            return
        kind = self.rng.choice(("isolate", "split", "bridge", "one-way"))
        if kind == "isolate":
            a = {self.rng.choice(ids)}
        elif kind == "split":
            a = set(self.rng.sample(ids, self.rng.randint(1, len(ids) - 1)))
        else:
            x, y = self.rng.sample(ids, 2)
            self.cuts.add((x, y))
            if kind == "bridge":
                self.cuts.add((y, x))
            self.trace.append(f"t{self.now} cut {kind} {x}-{y}")
            return
        b = set(ids) - a
        self.cuts |= {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
        self.trace.append(f"t{self.now} cut {sorted(a)} | {sorted(b)}")

    def _cut_master(self, m: Node) -> None:
        """Cuts the master's link to one node, one way or both: that node
        elects while the master goes on with the others (two claimants, and
        voters whose logs grow under a claim, come of it)."""
        x = self.rng.choice([n for n in self.nodes if n != m.id])
        if self.rng.random() < self.lag_share:
            y = self.rng.choice([n for n in self.nodes if n != x])
            self.lags[(x, y)] = self.lags[(y, x)] = self.rng.randint(1, 3)
            self.trace.append(f"t{self.now} slow link {x}-{y}")
            return
        both = self.rng.random() < 0.5
        self.cuts.add((m.id, x))
        if both:
            self.cuts.add((x, m.id))
        self.trace.append(f"t{self.now} cut {'bridge' if both else 'one-way'} {m.id}-{x}")

    def _fault(self) -> None:
        if self.quorum == MAJORITY:
            p = self.rng.random()
            if p < self.cut_rate:
                self._partition()
            elif p < self.cut_rate + 0.03 and self.cuts:
                self.cuts.clear()
                self.lags.clear()
                self.trace.append(f"t{self.now} healed the network")
            m = self.current_master()
            if (
                m is not None
                and not m.paused
                and self.rng.random() < self.topple
                and sum(not n.up or n.paused for n in self.nodes.values()) < len(self.nodes) - 1
            ):
                (self.crash if self.rng.random() < 0.5 else self.pause)(m)
                return
        r = self.rng.random()
        nodes = list(self.nodes.values())
        down = [n for n in nodes if not n.up or n.paused]
        m = self.current_master()
        if (
            m is not None
            and not m.paused
            and m.core is not None
            and isinstance(m.core.state, Master)
            and m.core.state.change is not None
            and len(down) < len(nodes) - 1
            and self.rng.random() < self.strike
        ):
            (self.crash if self.rng.random() < 0.7 else self.pause)(m)
            return
        n = self.rng.choice(nodes)
        if r < 0.03 and n.up and not n.paused and len(down) < len(nodes) - 1:
            self.crash(n)
        elif r < 0.06 and not n.up:
            self.restart(n)
        elif r < 0.075 and n.up and not n.paused and len(down) < len(nodes) - 1:
            self.pause(n)
        elif r < 0.1 and n.paused:
            self.resume(n)
        elif r < 0.12 and n.up and n.core is not None and n.core.master:
            # a live master's stream to n breaks (a reset connection, a link
            # reopened): n asks the master, which may well answer
            self.hints.append((self.now, n.id, n.core.master))
        elif r < 0.121 and n.up:
            # a gray failure: its disk takes ticks to write (or is fast again);
            # it answers heartbeats on time all the while
            n.slow = 0 if n.slow else self.rng.randint(1, 3)
            self.trace.append(f"t{self.now} {n.id} slow {n.slow}")
        elif r < 0.121 + self.churn and len(nodes) < MAX_NODES:
            self.join()
        elif r < 0.122 + 2 * self.churn and self.removals < len(nodes) - 3:
            # (not n1: it is the --join address every restart is given)
            m = self.current_master()
            if m is not None and m.core is not None and not m.paused and n.id not in (m.id, "n1"):
                self.remove(m, n.id)

    # -- invariants --

    def current_master(self) -> Node | None:
        """The master of the newest epoch, if it is up. (A master of an older
        epoch that has not heard of the newer one yet is fenced: every node
        it needs for an acknowledgement refuses it.)"""
        if not self.master_of_epoch:
            return None
        n = self.nodes[self.master_of_epoch[max(self.master_of_epoch)]]
        return n if n.core is not None and n.core.role is Role.MASTER else None

    def check(self) -> None:
        for n in self.nodes.values():
            if n.state != [p for _, p in n.log]:
                raise Violation(f"{n.id}: applied state does not match its log")
            if n.core is not None:
                n.core.check()  # the core's own invariants (it checks them after each event too)
        m = self.current_master()
        if m is None or m.core is None:
            return
        self._has_acked(m, "is master")
        self.retired |= m.core.membership.retired
        back = self.retired & (m.core.membership.addresses.keys() | {m.id})
        if back:
            raise Violation(f"removed {sorted(back)} a member again under {m.id}")
        # In-sync logs are prefixes of one another as far as each node has
        # acknowledged them to the master (a member can briefly hold an
        # unacknowledged tail of an older epoch, until the master notices
        # and sends it a snapshot).
        c = m.core
        followers = c.status().followers
        confirmed = {m.id: m.log}
        for nid in c.membership.in_sync:
            p = followers.get(nid)
            if nid != m.id and p is not None and nid in self.nodes:
                confirmed[nid] = self.nodes[nid].log[: p.match]
        for a, la in confirmed.items():
            for b, lb in confirmed.items():
                shorter, longer = sorted((la, lb), key=len)
                if longer[: len(shorter)] != shorter:
                    raise Violation(f"in-sync logs of {a} and {b} diverge")

    def heal(self, max_ticks: int = 1200) -> None:
        """Faults stop, every node comes back; the cluster must settle:
        one master, every node its slave and in sync, equal logs, and a new
        write acknowledged. (A node dropped for lagging may rejoin only after
        its hold-off, up to 80 lag windows: chatd/core/lag.py.)"""
        self.drop = 0.0
        self.cuts.clear()
        self.lags.clear()
        for n in self.nodes.values():
            n.slow = 0
            if n.paused:
                self.resume(n)
            if not n.up:
                self.restart(n)
        target = None
        for _ in range(max_ticks):
            self.step(faults=False)
            m = self.current_master()
            if m is None or m.core is None:
                continue
            c = m.core
            for n in self.nodes.values():
                # a removal the master of the time did not finish before it
                # failed may have retired the node without taking effect: the
                # operator sees it listed still, and removes it again
                retired = n.core is not None and n.core.role is Role.RETIRED
                if retired and n.id in c.membership.addresses and c.status().pending is None:
                    self.remove(m, n.id)
            staying = [n for n in self.nodes.values() if n.id not in c.membership.retired]
            ok = all(
                n.core is not None
                and (n is m or (n.core.role is Role.SLAVE and n.core.master == m.id))
                and n.id in c.membership.in_sync
                and n.log == m.log
                for n in staying
            ) and all(  # a removed node that runs has learnt it
                n.core is not None and n.core.role is Role.RETIRED
                for n in self.nodes.values()
                if n.id in c.membership.retired
            )
            if ok and target is None:
                self.write(m)
                target = len(m.log)
            if (
                target is not None
                and c.commit >= target
                and all(n.log[:target] == m.log[:target] for n in staying)
            ):
                return
        raise Violation("the cluster did not settle after the faults stopped")

    def explain(self, exc: BaseException) -> str:
        lines = [f"seed {self.seed} failed at tick {self.now}: {exc}", "last events:"]
        lines += [f"  {t}" for t in self.trace]
        for n in self.nodes.values():
            c = n.core
            lines.append(
                f"  {n.id}: {'down' if c is None else c.role.value} paused={n.paused} "
                f"epoch={n.epoch} log={len(n.log)} "
                + ("" if c is None else f"in_sync={sorted(c.membership.in_sync)} master={c.master}")
            )
        return "\n".join(lines)


def run_schedule(
    seed: int,
    *,
    ticks: int = 150,
    size: int | None = None,
    full_restart: bool = False,
    quorum: str = IN_SYNC,
) -> Sim:
    rng = random.Random(seed)
    sim = Sim(seed, size or rng.choice((3, 3, 4, 5)), quorum=quorum)
    # What is rare otherwise, made common in some schedules: a master crashed
    # or paused while a membership change (a join, a removal, a node entering
    # or leaving the in-sync set) is under way; partitions; new nodes joining
    # and members removed; and rare writes, which leave a new master's log
    # ending in older epochs' entries for longer.
    sim.strike = rng.choice((0.0, 0.2, 0.4, 0.6))
    sim.cut_rate = rng.choice((0.01, 0.03, 0.08))
    sim.churn = rng.choice((0.0, 0.003, 0.01))
    sim.write_rate = rng.choice((0.5, 0.5, 0.2, 0.05))
    if quorum == MAJORITY:
        sim.aim = rng.choice(AIM)
        sim.topple = rng.choice(TOPPLE)
        sim.lag_share = rng.choice(LAG_SHARE)
    try:
        for _ in range(ticks):
            sim.step(faults=True)
        if full_restart:
            for n in sim.nodes.values():
                if n.up:
                    sim.crash(n)
            for _ in range(rng.randint(0, 5)):
                sim.step(faults=False)
        sim.heal()
    except Exception as exc:
        raise Violation(sim.explain(exc)) from exc
    return sim
