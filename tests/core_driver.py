"""The test driver of role cores, shared by the golden traces
(tests/test_core_traces.py) and the simulation (tests/simulation.py).

A `Node` is what one node's disk holds (epoch, membership, log) and its core
while it runs; a `Driver` carries out a core's actions as the real driver
does (chatd/server/cluster/replication.py): persist first, then send; a
slave's received entries are cut from the Append's payload by the core's own
`received`. What the network does with a message (queue, delay, cut, drop)
and what an observer makes of an action are the subclass's: `send`,
`offer_snapshot`, `write_entries` and `observe`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatd.core import Core, Durable, Membership, Pos, Timing
from chatd.core.log import EpochRuns
from chatd.core.quorum import IN_SYNC
from chatd.core.types import (
    Action,
    Append,
    AppendEntries,
    Message,
    PersistEpoch,
    PersistMembership,
    Send,
    SendSnapshot,
    received,
    seed_address,
)

Entry = tuple[int, str]  # (epoch, payload); a log's entry i is log[i - 1]
Payload = tuple[Entry, ...]


@dataclass
class Node:
    id: str
    address: str
    core: Core | None = None
    paused: bool = False
    # what its disk holds: carried over a crash
    epoch: int = 0
    membership: Membership = field(default_factory=Membership)
    log: list[Entry] = field(default_factory=list)

    @property
    def up(self) -> bool:
        return self.core is not None

    @property
    def runs(self) -> tuple[tuple[int, int], ...]:
        runs = EpochRuns()
        for i, (epoch, _) in enumerate(self.log, start=1):
            runs.extend(i, epoch)
        return tuple(runs.pairs)

    def last(self) -> Pos:
        return Pos(self.log[-1][0], len(self.log)) if self.log else Pos()

    def durable(self) -> Durable:
        return Durable(
            epoch=self.epoch, last=self.last(), epochs=self.runs, membership=self.membership
        )

    def extend(self, entries: Payload) -> None:
        self.log.extend(entries)

    def carried(self, m: Message) -> Payload:
        """The entries an Append this node sends carries (none for others)."""
        if isinstance(m, Append) and m.count:
            return tuple(self.log[m.prev.index : m.prev.index + m.count])
        return ()

    def copy_from(self, master: Node) -> None:
        """A snapshot of `master`'s store replaces this one's."""
        self.log = list(master.log)


class Driver:
    timing: Timing

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    # -- what a subclass decides --

    def observe(self, n: Node, action: Action) -> None:
        """Sees every action before it is carried out."""

    def send(self, n: Node, msg: Message, payload: Payload) -> None:
        raise NotImplementedError

    def offer_snapshot(self, n: Node, dst: str) -> None:
        raise NotImplementedError

    def write_entries(self, n: Node, action: AppendEntries, entries: Payload) -> None:
        """A slave's received entries, to be made durable (`make_durable`)."""
        self.make_durable(n, action, entries)

    # -- carrying out actions --

    def target(self, dst: str) -> Node | None:
        """The node a message's `dst` (an id, or a seed's address) names."""
        if (seed := seed_address(dst)) is not None:
            return next((n for n in self.nodes.values() if n.address == seed), None)
        return self.nodes.get(dst)

    def boot(
        self, n: Node, *, found: bool = False, seeds: tuple[str, ...] = (), quorum: str = IN_SYNC
    ) -> Core:
        """Starts n's core on what its disk holds."""
        n.core = Core(
            n.id, n.address, n.durable(), self.timing, found=found, seeds=seeds, quorum=quorum
        )
        self.drain(n)
        return n.core

    def drain(self, n: Node, msg: Message | None = None, payload: Payload = ()) -> list[Action]:
        """Carries out n's actions in order (`msg` and its `payload`: the
        message n just took, whose entries an AppendEntries cuts out);
        returns them."""
        assert n.core is not None
        actions = n.core.take_actions()
        for action in actions:
            self.observe(n, action)
            if isinstance(action, PersistEpoch):
                n.epoch = action.epoch
            elif isinstance(action, PersistMembership):
                n.membership = action.membership
            elif isinstance(action, AppendEntries):
                assert isinstance(msg, Append), "entries come with an Append"
                self.write_entries(n, action, received(action, msg, payload))
            elif isinstance(action, Send):
                self.send(n, action.message, n.carried(action.message))
            elif isinstance(action, SendSnapshot):
                self.offer_snapshot(n, action.dst)
        return actions

    def make_durable(self, n: Node, action: AppendEntries, entries: Payload) -> None:
        if len(n.log) != action.prev.index:
            raise AssertionError(f"{n.id}: append at {action.prev.index} to a log of {len(n.log)}")
        n.extend(entries)
        if n.core is not None:
            n.core.persisted(Pos(action.entry_epoch, len(n.log)))
            self.drain(n)

    def deliver(self, dst: Node, msg: Message, payload: Payload = ()) -> None:
        assert dst.core is not None
        dst.core.step(msg)
        self.drain(dst, msg, payload)

    def unreachable(self, n: Node, peer: str) -> None:
        """A message n sent to `peer` failed, and n is told."""
        assert n.core is not None
        n.core.report_unreachable(peer)
        self.drain(n)

    def install_snapshot(self, m: Node, d: Node) -> None:
        """A snapshot master m offered is streamed to d and installed."""
        assert m.core is not None and d.core is not None
        d.copy_from(m)
        pos = d.last()
        d.core.snapshot_installed(pos, d.runs, 1)
        self.drain(d)
        m.core.snapshot_sent(d.id, pos)
        self.drain(m)

    def refuse_snapshot(self, m: Node, dst: str) -> None:
        assert m.core is not None
        m.core.snapshot_sent(dst, None)
        self.drain(m)
