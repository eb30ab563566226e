"""The master's half of the role core: replication to followers, the commit
rule, membership changes, joins and removals.

`Master` is the role object a node holds while it is master (see
chatd/core/roles.py): what only a master knows (each follower's progress,
the membership change under way) and the master's handlers. The node's own
state (epoch, log, membership, commit) is its `core`'s, which routes to it
the events a master takes (chatd/core/machine.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatd.core.errors import InvariantError, LocalProtocolError
from chatd.core.lag import LagWatch
from chatd.core.membership import Change, propose
from chatd.core.progress import Progress
from chatd.core.quorum import Voters
from chatd.core.types import (
    Append,
    AppendReply,
    CheckMaster,
    Committed,
    InSyncChanged,
    Membership,
    PersistMembership,
    Pos,
    Register,
    RegisterReply,
    Role,
    SendSnapshot,
    Settled,
    UpdateAck,
    UpdateSlaves,
    seed_dst,
)

if TYPE_CHECKING:
    from chatd.core.machine import Core


@dataclass(slots=True, eq=False)
class Master:
    """What a node holds while it is master, and the master's handlers."""

    core: Core = field(repr=False)
    progress: dict[str, Progress]  # one per other member
    lag: LagWatch  # which in-sync slaves hold the commits back
    change: Change | None = None  # a membership change under way
    # after a freeze: in-sync nodes not heard from since, and the membership
    # version whose acknowledgement confirms them
    unconfirmed: set[str] = field(default_factory=set)
    confirm_version: tuple[int, int] = (0, 0)
    settled: int = 0  # majority mode: the last Settled index told
    took_office_at: int = 0  # the commit index when it took office
    role: Role = Role.MASTER
    # refusal()'s answer, asked on every write, and what it is of: the
    # memberships (the current one, the one a change under way proposes)
    # and the core's min_in_sync
    _refusal: tuple[Membership, Membership | None, int, str] | None = field(
        default=None, repr=False
    )
    # _voters()'s answer and the memberships it is of
    _voters_of: tuple[Membership, Membership | None, Voters] | None = field(
        default=None, repr=False
    )

    @classmethod
    def take_office(cls, core: Core) -> Master:
        """The master `core` becomes: it knows nothing of its followers yet
        (each one's next index is guessed at the end of its own log, until
        its first answer says where its log ends)."""
        start = core.log.last.index + 1
        progress = {
            nid: Progress(next=start, heard_tick=core.now, sent_tick=-1, guessed=True)
            for nid in core.membership.addresses
            if nid != core.id
        }
        lag = LagWatch(core.timing.max_lag, core.timing.lag_share)
        return cls(core, progress, lag, took_office_at=core.commit)

    @property
    def master(self) -> str:
        return self.core.id

    def start(self) -> None:
        self._advance_commit()
        self._replicate()

    def check(self) -> None:
        """The master's invariants: each follower's next index is past its
        match, which is within the master's log; in majority mode, what it
        committed ends with an entry of its own epoch (an older one is
        committed only with the first of its own after it)."""
        core = self.core
        if (
            core.membership.majority
            and core.commit > self.took_office_at
            and core.log.epoch_at(core.commit) != core.epoch
        ):
            raise InvariantError(
                f"{core.id}: committed {core.commit}, an entry of epoch"
                f" {core.log.epoch_at(core.commit)}, by counting at epoch {core.epoch}"
            )
        for nid, p in self.progress.items():
            if not p.match < p.next:
                raise InvariantError(
                    f"{core.id}: {nid}'s match {p.match} is not below next {p.next}"
                )
            if p.match > core.log.last.index:
                raise InvariantError(f"{core.id}: {nid}'s match {p.match} past {core.log.last}")

    def silent(self, nodes: frozenset[str] | set[str], now: int, failover: int) -> set[str]:
        """The nodes not heard from for the failover timeout: presumed dead."""
        return {
            n for n in nodes if n not in self.progress or self.progress[n].silent(now, failover)
        }

    # -- events only a master takes --

    def local_appended(self, last: Pos) -> None:
        """Master: entries up to `last` are durable in the local store."""
        core = self.core
        if last.epoch != core.epoch or last.index <= core.log.last.index:
            raise LocalProtocolError(f"local append {last} does not extend {core.log.last}")
        core.log.append(core.log.last.index + 1, last)
        core.log.durable = last
        self._advance_commit()
        self._replicate()

    def snapshot_sent(self, dst: str, pos: Pos | None) -> None:
        """Master: a snapshot ending at `pos` is installed on `dst` (None: failed)."""
        if (p := self.progress.get(dst)) is None:
            return
        p.snapshot_done(pos.index if pos is not None else None)
        if pos is not None:
            self._after_ack(dst, p)

    def remove_member(self, node_id: str) -> bool:
        """Master: retire a node for good. Returns False if not possible now."""
        core = self.core
        if node_id == core.id or self.change is not None:
            return False
        members = core.membership.addresses
        if node_id not in members:
            return False
        del members[node_id]
        # It stays in the stream (heartbeats) until it has the change: a live
        # node that still counted itself in sync could otherwise win an
        # election on its own once the master went quiet on it.
        self._propose(
            members,
            core.membership.in_sync - {node_id},
            f"{node_id} removed",
            retired=core.membership.retired | {node_id},
        )
        return True

    def _newest(self) -> Membership:
        """The membership a change under way proposes, else the current one."""
        return self.change.membership if self.change is not None else self.core.membership

    def _voters(self) -> Voters:
        """The voter sets: the current one, and the proposed one of a change
        under way (asked on every acknowledgement: kept until they change)."""
        pending = self.change.membership if self.change is not None else None
        known = self._voters_of
        if known is not None and known[0] is self.core.membership and known[1] is pending:
            return known[2]
        voters = self.core.membership.voters(pending)
        self._voters_of = (self.core.membership, pending, voters)
        return voters

    def refusal(self) -> str:
        """Master, in-sync mode: why a write is refused now, "" if it is
        not. With `min_in_sync` K (Kafka's min.insync.replicas), a master
        with fewer than K nodes in sync, itself counted, neither takes a
        write nor counts one committed: an acknowledgement then always means
        K copies. (Majority mode has its own rule: a majority of the voters.)
        Asked on every write: the answer is kept until the memberships change."""
        core = self.core
        pending = self.change.membership if self.change is not None else None
        known = self._refusal
        if (
            known is not None
            and known[0] is core.membership
            and known[1] is pending
            and known[2] == core.min_in_sync
        ):
            return known[3]
        why = self._refused(self._voters())
        self._refusal = (core.membership, pending, core.min_in_sync, why)
        return why

    def _refused(self, voters: Voters) -> str:
        core = self.core
        if voters.majority:
            return ""
        # the nodes holding every write, itself counted (while an in-sync
        # change is under way, the smaller of the two sets)
        holding = voters.smallest
        copies = len(holding)
        if copies >= core.min_in_sync:
            return ""
        return (
            f"only {copies} {'copy is' if copies == 1 else 'copies are'} in sync "
            f"({', '.join(sorted(holding))}), fewer than the "
            f"{core.min_in_sync} that --min-in-sync asks for: writes are refused "
            "until a slave is back in sync"
        )

    # -- the master's clock --

    def tick(self) -> None:
        if self.core.membership.majority:
            self._majority_tick()
        else:
            self._in_sync_tick()

    def _in_sync_tick(self) -> None:
        core = self.core
        silent = self._drop_silent()
        watched = self._voters().everyone - {core.id}
        self._drop_lagging(watched - silent - self.unconfirmed)
        if self.change is not None and core.now - self.change.sent_tick >= core.timing.retry:
            self._send_change()
        self._replicate(heartbeat=True)

    def _drop_silent(self) -> set[str]:
        """Drops the in-sync nodes presumed dead; returns them."""
        core = self.core
        current = self._newest()
        watched = self._voters().everyone - {core.id}
        silent = self.silent(watched - self.unconfirmed, core.now, core.timing.failover)
        if silent:
            keep = current.in_sync - silent
            c = self.change
            if c is None or keep != c.membership.in_sync or silent & c.awaiting:
                for nid in silent:
                    self.lag.left[nid] = "silent"
                self._propose(current.addresses, keep, f"{sorted(silent)} silent", skip=silent)
        return silent

    def unreachable(self, nid: str) -> None:
        """A call or the log stream to `nid` failed. A process that dies
        closes its connections at once, so the master asks it directly
        (CheckMaster); if that fails as well, it is presumed dead now, as if
        silent for the failover timeout, and the writes stop waiting for it
        within a round trip instead of a failover timeout. (A node lost
        without closing its connections, as in a power cut, is still waited
        out; one that answers changes nothing.)"""
        core = self.core
        if nid not in self.progress:
            return
        p = self.progress[nid]
        p.lost()
        if core.membership.majority:  # silence drops nobody there
            return
        if nid not in self._voters().everyone:
            return
        if not p.asked:
            p.asked = True
            core._send(CheckMaster(src=core.id, dst=nid, epoch=core.epoch))
            return
        p.asked = False
        p.heard_tick = min(p.heard_tick, core.now - core.timing.failover)
        self._drop_silent()

    def _majority_tick(self) -> None:
        """Majority mode: silence drops nobody; a master that has not heard
        from a majority of its voters (each set, while a change is under
        way) for the failover timeout steps down, so that a master cut off
        on a minority side stops taking writes it could never acknowledge."""
        core = self.core
        heard = {core.id} | {
            n for n, p in self.progress.items() if not p.silent(core.now, core.timing.failover)
        }
        lost = self._voters().lost(heard)
        if lost is not None:
            core._start_election(
                f"stepped down: heard from {sorted(heard & lost)} only of the voters"
                f" {sorted(lost)} for {core.timing.failover} ticks"
            )
            return
        if self.change is not None and core.now - self.change.sent_tick >= core.timing.retry:
            self._send_change()
        self._replicate(heartbeat=True)

    def _drop_lagging(self, watched: set[str] | frozenset[str]) -> None:
        """The slow-node rule (chatd/core/lag.py), judged only while no
        membership change is under way."""
        core = self.core
        if self.change is not None:
            return
        matches = {nid: p.match for nid, p in self.progress.items()}
        lagging = self.lag.sample(core.log.durable.index, matches, watched)
        if not lagging:
            return
        for nid, why in lagging.items():
            self.lag.dropped(nid, core.now, why)
        reason = "; ".join(f"{nid} {why}" for nid, why in sorted(lagging.items()))
        keep = core.membership.in_sync - lagging.keys()
        self._propose(core.membership.addresses, keep, reason)

    def confirm_after_freeze(self) -> None:
        """See Core.suspect. (Majority mode needs none of it: a master
        commits nothing without a majority, and steps down without one.)"""
        core = self.core
        if core.membership.majority:
            return
        current = self._newest()
        # (a node already silent for the failover timeout before the freeze
        # was presumed dead while this one ran: it stays so, unless an
        # earlier freeze had left it unconfirmed)
        watched = self._voters().everyone - {core.id}
        dead = self.silent(watched, core.now, core.timing.failover) - self.unconfirmed
        self.unconfirmed = set(watched) - dead
        if self.unconfirmed:
            self._propose(
                current.addresses,
                current.in_sync,
                "confirming the in-sync set after a freeze",
                retired=current.retired,
            )
            assert self.change is not None
            self.confirm_version = self.change.membership.version

    # -- membership changes --

    def _propose(
        self,
        members: Mapping[str, str],
        in_sync: frozenset[str],
        reason: str,
        retired: frozenset[str] | None = None,
        skip: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        core = self.core
        self.change = propose(
            core.membership,
            self.change.membership if self.change is not None else None,
            me=core.id,
            epoch=core.epoch,
            members=members,
            in_sync=in_sync,
            retired=retired,
            skip=skip,
            reason=reason,
            now=core.now,
        )
        self._send_change()
        self._maybe_finish_change()

    def _send_change(self) -> None:
        core = self.core
        c = self.change
        assert c is not None
        c.sent_tick = core.now
        for nid in sorted(c.membership.addresses.keys() | c.awaiting):
            if nid != core.id:
                core._send(
                    UpdateSlaves(src=core.id, dst=nid, epoch=core.epoch, membership=c.membership)
                )

    def _maybe_finish_change(self) -> None:
        core = self.core
        c = self.change
        if c is None or not c.done(core.id):
            return
        self.change = None
        new, old = c.membership, core.membership
        core.membership = new
        core._out(PersistMembership(membership=new))
        for nid, address in old.members:  # a removed node that still runs retires
            if nid not in new.addresses:
                dst = seed_dst(address)
                core._send(UpdateSlaves(src=core.id, dst=dst, epoch=core.epoch, membership=new))
        if new.in_sync != old.in_sync:
            gone = sorted(old.in_sync - new.in_sync)
            left = tuple((n, self.lag.left.get(n, "removed")) for n in gone)
            core._out(InSyncChanged(in_sync=new.in_sync, reason=c.reason, left=left))
        for nid in new.in_sync:
            self.lag.rejoined(nid)
        for nid in list(self.progress):
            if nid not in new.addresses:
                del self.progress[nid]
        self._advance_commit()

    # -- replication and the commit rule --

    def _advance_commit(self) -> None:
        """The highest index durable on every voter set, each by its mode's
        rule (chatd/core/quorum.py): on every node of the in-sync sets, or
        on a majority of the voters of each.

        In-sync mode: with fewer than `min_in_sync` copies nothing more is
        acknowledged (see refusal).

        Majority mode: as in Raft, only an entry of the master's own epoch
        is committed by counting: an older one may sit on a majority and
        still be replaced by a master that never had it, so it commits with
        the first entry of this epoch after it."""
        core = self.core
        voters = self._voters()
        if not voters.majority and len(voters.smallest) < core.min_in_sync:
            return
        matches = {n: p.match for n, p in self.progress.items()}
        matches[core.id] = core.log.durable.index
        top = voters.index(matches)
        if top > core.commit and (not voters.majority or core.log.epoch_at(top) == core.epoch):
            core.commit = top
            core._out(Committed(index=top))
        if voters.majority:
            self._settle(voters, matches)

    def _settle(self, voters: Voters, matches: dict[str, int]) -> None:
        """Majority mode: where the voters still answering are. The writer
        lets its next batch gather until they all have the last one (a
        slower voter is kept up with, not outrun), for at most a moment."""
        core = self.core
        lively = {
            n
            for n in voters.everyone
            if n == core.id or (n in self.progress and core.now - self.progress[n].heard_tick <= 1)
        }
        settled = min(matches.get(n, 0) for n in lively)
        if settled > self.settled:
            self.settled = settled
            core._out(Settled(index=settled))

    def _replicate(self, heartbeat: bool = False) -> None:
        core = self.core
        for nid, p in self.progress.items():
            # a slave not heard from lately is prodded every tick, whatever is
            # in flight: "silent" must mean several prods went unanswered
            prod = heartbeat and core.now - p.heard_tick >= 2 and core.now > p.sent_tick
            if p.snapshot and not prod:
                continue
            stale = core.now - p.sent_tick >= core.timing.retry
            if p.inflight and not stale and not prod:
                continue
            if p.inflight and stale:  # unanswered: send again from the last known match
                p.lost()
            if p.next <= core.log.last.index and not p.snapshot and not p.inflight:
                self._send_batch(nid, p)
            elif heartbeat and core.now > p.sent_tick:
                p.sent_tick = core.now
                self._send_append(nid, p, core.log.pos_at(p.match), 0, core.epoch)

    def _send_batch(self, nid: str, p: Progress) -> None:
        core = self.core
        first = p.next
        batch = core.log.batch(first, core.timing.max_batch)
        if batch is None:  # compacted away: send a snapshot
            if p.start_snapshot():
                core._out(SendSnapshot(dst=nid))
            return
        epoch, end = batch
        count = end - first + 1
        p.sent_batch(end, count, core.now)
        self._send_append(nid, p, core.log.pos_at(first - 1), count, epoch)

    def tell_commit(self) -> None:
        """Master: tells the followers with nothing else on its way to them
        how far the commit reached (they serve committed messages to their
        own readers). The driver calls this a moment after a commit, so
        that under load the next batch carries it instead.

        It also tells every follower whose place in the in-sync set changed
        since its last Append, in flight or not (the driver calls this after
        an in-sync change too): a slave is eligible only once an Append says
        it is in sync, sent after the membership that says so is durable
        here. Left to the next heartbeat, a master that died within that
        interval would leave no eligible node, and no election."""
        core = self.core
        in_sync = core.membership.in_sync
        for nid, p in self.progress.items():
            if p.snapshot:
                continue
            if (p.told < core.commit and not p.inflight) or p.told_in_sync != (nid in in_sync):
                self._send_append(nid, p, core.log.pos_at(p.match), 0, core.epoch)

    def _send_append(self, nid: str, p: Progress, prev: Pos, count: int, entry_epoch: int) -> None:
        core = self.core
        p.told = core.commit
        p.told_in_sync = nid in core.membership.in_sync
        core._send(
            Append(
                src=core.id,
                dst=nid,
                epoch=core.epoch,
                prev=prev,
                count=count,
                entry_epoch=entry_epoch,
                commit=core.commit,
                in_sync=p.told_in_sync,
                echo=p.echo,
            )
        )

    def _after_ack(self, nid: str, p: Progress) -> None:
        core = self.core
        self._advance_commit()
        members = core.membership.addresses
        if (
            nid not in core.membership.in_sync
            and nid in members
            and self.change is None
            and p.match >= core.commit
            and p.match == core.log.last.index
            and self.lag.may_rejoin(nid, core.now)
        ):
            reason = f"{nid} caught up at index {p.match}"
            self._propose(members, core.membership.in_sync | {nid}, reason)
        self._replicate()

    def _need_snapshot(self, nid: str, p: Progress) -> None:
        if p.start_snapshot():
            self.core._out(SendSnapshot(dst=nid))

    # -- the master's message handlers --

    def on_append_reply(self, m: AppendReply) -> None:
        core = self.core
        if m.epoch < core.epoch:
            return
        p = self.progress.get(m.src)
        if p is None:
            return
        batch = p.inflight > 0
        p.heard(core.now, m.probe)
        if m.diverged or not core.log.holds(m.durable):
            self._need_snapshot(m.src, p)
            return
        if m.ok:
            p.acked(m.durable.index, batch=batch)
        else:
            p.reset_to(m.durable.index)
        self._after_ack(m.src, p)

    def on_register(self, m: Register) -> None:
        core = self.core
        newest = self._newest()
        if m.src in newest.retired:
            # removed for good: it learns so (and retires) instead of rejoining
            dst = seed_dst(m.address)
            core._send(UpdateSlaves(src=core.id, dst=dst, epoch=core.epoch, membership=newest))
            return
        members = core.membership.addresses
        if members.get(m.src) != m.address and self.change is None:
            members[m.src] = m.address
            reason = f"{m.src} joined from {m.address}"
            self._propose(members, core.membership.in_sync, reason)
        elif m.src not in members:  # a membership change is under way: it asks again
            core._send(
                RegisterReply(src=core.id, dst=m.src, epoch=core.epoch, ok=False, master=core.id)
            )
            return
        p = self.progress.setdefault(m.src, Progress(heard_tick=core.now))
        p.heard(core.now)
        p.sent_tick = core.now - core.timing.retry
        if core.log.holds(m.last):
            p.reset_to(m.last.index)
        else:
            self._need_snapshot(m.src, p)
        core._send(RegisterReply(src=core.id, dst=m.src, epoch=core.epoch, ok=True, master=core.id))
        self._replicate()

    def on_update_ack(self, m: UpdateAck) -> None:
        core = self.core
        p = self.progress.get(m.src)
        if p is not None:  # a refusal too shows the node is alive
            p.heard_tick = core.now
            p.answered = True
        if m.version >= self.confirm_version:  # it answered after the freeze
            self.unconfirmed.discard(m.src)
        c = self.change
        if c is not None and m.ok and m.version == c.membership.version:
            c.ack(m.src)
            self._maybe_finish_change()
