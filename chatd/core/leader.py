"""The master's half of the role core: replication to followers, the commit
rule, membership changes, joins and removals.

`Leader` is a base of `Core` (chatd/core/machine.py) and shares its state;
what only a master holds is in its `Master` role object (chatd/core/roles.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from chatd.core.errors import LocalProtocolError
from chatd.core.lag import LagWatch
from chatd.core.log import Log
from chatd.core.membership import propose
from chatd.core.progress import Progress
from chatd.core.quorum import Voters
from chatd.core.roles import Master, Slave, State
from chatd.core.types import (
    Action,
    Append,
    AppendReply,
    CheckMaster,
    Committed,
    InSyncChanged,
    Membership,
    Message,
    PersistMembership,
    Pos,
    Register,
    RegisterReply,
    Role,
    RoleChanged,
    Send,
    SendSnapshot,
    Settled,
    Timing,
    UpdateAck,
    UpdateSlaves,
    seed_dst,
)


class Leader:
    # the state shared with Core (set in Core.__init__)
    id: str
    timing: Timing
    now: int
    epoch: int
    log: Log
    membership: Membership
    commit: int
    state: State
    eligible: bool
    voted: tuple[int, str]
    min_in_sync: int
    _actions: list[Action]

    def _start_election(self, reason: str) -> None:  # in Core
        raise NotImplementedError

    # -- events only a master takes --

    def local_appended(self, last: Pos) -> None:
        """Master: entries up to `last` are durable in the local store."""
        s = self.state
        if not isinstance(s, Master):
            raise LocalProtocolError("only a master appends locally")
        if last.epoch != self.epoch or last.index <= self.log.last.index:
            raise LocalProtocolError(f"local append {last} does not extend {self.log.last}")
        self.log.append(self.log.last.index + 1, last)
        self.log.durable = last
        self._advance_commit(s)
        self._replicate(s)

    def snapshot_sent(self, dst: str, pos: Pos | None) -> None:
        """Master: a snapshot ending at `pos` is installed on `dst` (None: failed)."""
        s = self.state
        if not isinstance(s, Master) or (p := s.progress.get(dst)) is None:
            return
        p.snapshot_done(pos.index if pos is not None else None)
        if pos is not None:
            self._after_ack(s, dst, p)

    def remove_member(self, node_id: str) -> bool:
        """Master: retire a node for good. Returns False if not possible now."""
        s = self.state
        if not isinstance(s, Master) or node_id == self.id or s.change is not None:
            return False
        members = self.membership.addresses
        if node_id not in members:
            return False
        del members[node_id]
        # It stays in the stream (heartbeats) until it has the change: a live
        # node that still counted itself in sync could otherwise win an
        # election on its own once the master went quiet on it.
        self._propose(
            s,
            members,
            self.membership.in_sync - {node_id},
            f"{node_id} removed",
            retired=self.membership.retired | {node_id},
        )
        return True

    def _newest(self, s: Master) -> Membership:
        """The membership a change under way proposes, else the current one."""
        return s.change.membership if s.change is not None else self.membership

    def _voters(self, s: Master) -> Voters:
        """The voter sets: the current one, and the proposed one of a change
        under way."""
        return self.membership.voters(s.change.membership if s.change is not None else None)

    def refusal(self) -> str:
        """Master, in-sync mode: why a write is refused now, "" if it is
        not. With `min_in_sync` K (Kafka's min.insync.replicas), a master
        with fewer than K nodes in sync, itself counted, neither takes a
        write nor counts one committed: an acknowledgement then always means
        K copies. (Majority mode has its own rule: a majority of the voters.)"""
        s = self.state
        if not isinstance(s, Master) or (voters := self._voters(s)).majority:
            return ""
        # the nodes holding every write, itself counted (while an in-sync
        # change is under way, the smaller of the two sets)
        holding = voters.smallest
        copies = len(holding)
        if copies >= self.min_in_sync:
            return ""
        return (
            f"only {copies} {'copy is' if copies == 1 else 'copies are'} in sync "
            f"({', '.join(sorted(holding))}), fewer than the "
            f"{self.min_in_sync} that --min-in-sync asks for: writes are refused "
            "until a slave is back in sync"
        )

    # -- output --

    def _out(self, action: Action) -> None:
        self._actions.append(action)

    def _send(self, msg: Message) -> None:
        if msg.dst and msg.dst != self.id:
            self._out(Send(message=msg))

    # -- taking office, and the master's clock --

    def _become_master(self, reason: str, *, elected: bool = False) -> None:
        self.voted = (self.epoch, self.id)
        self.eligible = True
        start = self.log.last.index + 1
        progress = {
            nid: Progress(next=start, heard_tick=self.now, sent_tick=-1)
            for nid in self.membership.addresses
            if nid != self.id
        }
        lag = LagWatch(self.timing.max_lag, self.timing.lag_share)
        s = self.state = Master(progress=progress, lag=lag)
        self._out(
            RoleChanged(
                role=Role.MASTER, epoch=self.epoch, master=self.id, reason=reason, elected=elected
            )
        )
        self._advance_commit(s)
        self._replicate(s)

    def _master_tick(self, s: Master) -> None:
        if self.membership.majority:
            self._majority_tick(s)
            return
        silent = self._drop_silent(s)
        watched = self._voters(s).everyone - {self.id}
        self._drop_lagging(s, watched - silent - s.unconfirmed)
        if s.change is not None and self.now - s.change.sent_tick >= self.timing.retry:
            self._send_change(s)
        self._replicate(s, heartbeat=True)

    def _drop_silent(self, s: Master) -> set[str]:
        """Drops the in-sync nodes presumed dead; returns them."""
        current = self._newest(s)
        watched = self._voters(s).everyone - {self.id}
        silent = s.silent(watched - s.unconfirmed, self.now, self.timing.failover)
        if silent:
            keep = current.in_sync - silent
            c = s.change
            if c is None or keep != c.membership.in_sync or silent & c.awaiting:
                for nid in silent:
                    s.lag.left[nid] = "silent"
                self._propose(s, current.addresses, keep, f"{sorted(silent)} silent", skip=silent)
        return silent

    def _follower_unreachable(self, s: Master, nid: str) -> None:
        """A call or the log stream to `nid` failed. A process that dies
        closes its connections at once, so the master asks it directly
        (CheckMaster); if that fails as well, it is presumed dead now, as if
        silent for the failover timeout, and the writes stop waiting for it
        within a round trip instead of a failover timeout. (A node lost
        without closing its connections, as in a power cut, is still waited
        out; one that answers changes nothing.)"""
        if self.membership.majority:  # silence drops nobody there
            return
        p = s.progress[nid]
        if nid not in self._voters(s).everyone:
            return
        if not p.asked:
            p.asked = True
            self._send(CheckMaster(src=self.id, dst=nid, epoch=self.epoch))
            return
        p.asked = False
        p.heard_tick = min(p.heard_tick, self.now - self.timing.failover)
        self._drop_silent(s)

    def _majority_tick(self, s: Master) -> None:
        """Majority mode: silence drops nobody; a master that has not heard
        from a majority of its voters (each set, while a change is under
        way) for the failover timeout steps down, so that a master cut off
        on a minority side stops taking writes it could never acknowledge."""
        heard = {self.id} | {
            n for n, p in s.progress.items() if not p.silent(self.now, self.timing.failover)
        }
        lost = self._voters(s).lost(heard)
        if lost is not None:
            self._start_election(
                f"stepped down: heard from {sorted(heard & lost)} only of the voters"
                f" {sorted(lost)} for {self.timing.failover} ticks"
            )
            return
        if s.change is not None and self.now - s.change.sent_tick >= self.timing.retry:
            self._send_change(s)
        self._replicate(s, heartbeat=True)

    def _drop_lagging(self, s: Master, watched: set[str] | frozenset[str]) -> None:
        """The slow-node rule (chatd/core/lag.py), judged only while no
        membership change is under way."""
        if s.change is not None:
            return
        matches = {nid: p.match for nid, p in s.progress.items()}
        lagging = s.lag.sample(self.log.durable.index, matches, watched)
        if not lagging:
            return
        for nid, why in lagging.items():
            s.lag.dropped(nid, self.now, why)
        reason = "; ".join(f"{nid} {why}" for nid, why in sorted(lagging.items()))
        keep = self.membership.in_sync - lagging.keys()
        self._propose(s, self.membership.addresses, keep, reason)

    def _confirm_after_freeze(self, s: Master) -> None:
        """See Core.suspect. (Majority mode needs none of it: a master
        commits nothing without a majority, and steps down without one.)"""
        if self.membership.majority:
            return
        current = self._newest(s)
        # (a node already silent for the failover timeout before the freeze
        # was presumed dead while this one ran: it stays so, unless an
        # earlier freeze had left it unconfirmed)
        watched = self._voters(s).everyone - {self.id}
        dead = s.silent(watched, self.now, self.timing.failover) - s.unconfirmed
        s.unconfirmed = set(watched) - dead
        if s.unconfirmed:
            self._propose(
                s,
                current.addresses,
                current.in_sync,
                "confirming the in-sync set after a freeze",
                retired=current.retired,
            )
            assert s.change is not None
            s.confirm_version = s.change.membership.version

    # -- membership changes --

    def _propose(
        self,
        s: Master,
        members: Mapping[str, str],
        in_sync: frozenset[str],
        reason: str,
        retired: frozenset[str] | None = None,
        skip: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        s.change = propose(
            self.membership,
            s.change.membership if s.change is not None else None,
            me=self.id,
            epoch=self.epoch,
            members=members,
            in_sync=in_sync,
            retired=retired,
            skip=skip,
            reason=reason,
            now=self.now,
        )
        self._send_change(s)
        self._maybe_finish_change(s)

    def _send_change(self, s: Master) -> None:
        c = s.change
        assert c is not None
        c.sent_tick = self.now
        for nid in sorted(c.membership.addresses.keys() | c.awaiting):
            if nid != self.id:
                self._send(
                    UpdateSlaves(src=self.id, dst=nid, epoch=self.epoch, membership=c.membership)
                )

    def _maybe_finish_change(self, s: Master) -> None:
        c = s.change
        if c is None or not c.done(self.id):
            return
        s.change = None
        new, old = c.membership, self.membership
        self.membership = new
        self._out(PersistMembership(membership=new))
        for nid, address in old.members:  # a removed node that still runs retires
            if nid not in new.addresses:
                dst = seed_dst(address)
                self._send(UpdateSlaves(src=self.id, dst=dst, epoch=self.epoch, membership=new))
        if new.in_sync != old.in_sync:
            gone = sorted(old.in_sync - new.in_sync)
            left = tuple((n, s.lag.left.get(n, "removed")) for n in gone)
            self._out(InSyncChanged(in_sync=new.in_sync, reason=c.reason, left=left))
        for nid in new.in_sync:
            s.lag.rejoined(nid)
        for nid in list(s.progress):
            if nid not in new.addresses:
                del s.progress[nid]
        self._advance_commit(s)

    # -- replication and the commit rule --

    def _advance_commit(self, s: Master) -> None:
        """The highest index durable on every voter set, each by its mode's
        rule (chatd/core/quorum.py): on every node of the in-sync sets, or
        on a majority of the voters of each.

        In-sync mode: with fewer than `min_in_sync` copies nothing more is
        acknowledged (see refusal).

        Majority mode: as in Raft, only an entry of the master's own epoch
        is committed by counting: an older one may sit on a majority and
        still be replaced by a master that never had it, so it commits with
        the first entry of this epoch after it."""
        voters = self._voters(s)
        if not voters.majority and len(voters.smallest) < self.min_in_sync:
            return
        matches = {n: p.match for n, p in s.progress.items()}
        matches[self.id] = self.log.durable.index
        top = voters.index(matches)
        if top > self.commit and (not voters.majority or self.log.epoch_at(top) == self.epoch):
            self.commit = top
            self._out(Committed(index=top))
        if voters.majority:
            self._settle(s, voters, matches)

    def _settle(self, s: Master, voters: Voters, matches: dict[str, int]) -> None:
        """Majority mode: where the voters still answering are. The writer
        lets its next batch gather until they all have the last one (a
        slower voter is kept up with, not outrun), for at most a moment."""
        lively = {
            n
            for n in voters.everyone
            if n == self.id or (n in s.progress and self.now - s.progress[n].heard_tick <= 1)
        }
        settled = min(matches.get(n, 0) for n in lively)
        if settled > s.settled:
            s.settled = settled
            self._out(Settled(index=settled))

    def _replicate(self, s: Master, heartbeat: bool = False) -> None:
        for nid, p in s.progress.items():
            # a slave not heard from lately is prodded every tick, whatever is
            # in flight: "silent" must mean several prods went unanswered
            prod = heartbeat and self.now - p.heard_tick >= 2 and self.now > p.sent_tick
            if p.snapshot and not prod:
                continue
            stale = self.now - p.sent_tick >= self.timing.retry
            if p.inflight and not stale and not prod:
                continue
            if p.inflight and stale:  # unanswered: send again from the last known match
                p.lost()
            if p.next <= self.log.last.index and not p.snapshot and not p.inflight:
                self._send_batch(nid, p)
            elif heartbeat and self.now > p.sent_tick:
                p.sent_tick = self.now
                self._send_append(nid, p, self.log.pos_at(p.match), 0, self.epoch)

    def _send_batch(self, nid: str, p: Progress) -> None:
        first = p.next
        batch = self.log.batch(first, self.timing.max_batch)
        if batch is None:  # compacted away: send a snapshot
            if p.start_snapshot():
                self._out(SendSnapshot(dst=nid))
            return
        epoch, end = batch
        count = end - first + 1
        p.sent_batch(end, count, self.now)
        self._send_append(nid, p, self.log.pos_at(first - 1), count, epoch)

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
        s = self.state
        if not isinstance(s, Master):
            return
        in_sync = self.membership.in_sync
        for nid, p in s.progress.items():
            if p.snapshot:
                continue
            if (p.told < self.commit and not p.inflight) or p.told_in_sync != (nid in in_sync):
                self._send_append(nid, p, self.log.pos_at(p.match), 0, self.epoch)

    def _send_append(self, nid: str, p: Progress, prev: Pos, count: int, entry_epoch: int) -> None:
        p.told = self.commit
        p.told_in_sync = nid in self.membership.in_sync
        self._send(
            Append(
                src=self.id,
                dst=nid,
                epoch=self.epoch,
                prev=prev,
                count=count,
                entry_epoch=entry_epoch,
                commit=self.commit,
                in_sync=p.told_in_sync,
                echo=p.echo,
            )
        )

    def _after_ack(self, s: Master, nid: str, p: Progress) -> None:
        self._advance_commit(s)
        members = self.membership.addresses
        if (
            nid not in self.membership.in_sync
            and nid in members
            and s.change is None
            and p.match >= self.commit
            and p.match == self.log.last.index
            and s.lag.may_rejoin(nid, self.now)
        ):
            self._propose(
                s, members, self.membership.in_sync | {nid}, f"{nid} caught up at index {p.match}"
            )
        self._replicate(s)

    def _need_snapshot(self, nid: str, p: Progress) -> None:
        if p.start_snapshot():
            self._out(SendSnapshot(dst=nid))

    # -- the master's message handlers --

    def _on_append_reply(self, m: AppendReply) -> None:
        s = self.state
        if not isinstance(s, Master) or m.epoch < self.epoch:
            return
        p = s.progress.get(m.src)
        if p is None:
            return
        p.heard(self.now, m.probe)
        if m.diverged or not self.log.holds(m.durable):
            self._need_snapshot(m.src, p)
            return
        if m.ok:
            p.acked(m.durable.index)
        else:
            p.reset_to(m.durable.index)
        self._after_ack(s, m.src, p)

    def _on_register(self, m: Register) -> None:
        s = self.state
        if not isinstance(s, Master):
            master = s.master if isinstance(s, Slave) else ""
            self._send(
                RegisterReply(src=self.id, dst=m.src, epoch=self.epoch, ok=False, master=master)
            )
            return
        newest = self._newest(s)
        if m.src in newest.retired:
            # removed for good: it learns so (and retires) instead of rejoining
            dst = seed_dst(m.address)
            self._send(UpdateSlaves(src=self.id, dst=dst, epoch=self.epoch, membership=newest))
            return
        members = self.membership.addresses
        if members.get(m.src) != m.address and s.change is None:
            members[m.src] = m.address
            reason = f"{m.src} joined from {m.address}"
            self._propose(s, members, self.membership.in_sync, reason)
        elif m.src not in members:  # a membership change is under way: it asks again
            self._send(
                RegisterReply(src=self.id, dst=m.src, epoch=self.epoch, ok=False, master=self.id)
            )
            return
        p = s.progress.setdefault(m.src, Progress(heard_tick=self.now))
        p.heard(self.now)
        p.sent_tick = self.now - self.timing.retry
        if self.log.holds(m.last):
            p.reset_to(m.last.index)
        else:
            self._need_snapshot(m.src, p)
        self._send(RegisterReply(src=self.id, dst=m.src, epoch=self.epoch, ok=True, master=self.id))
        self._replicate(s)

    def _on_update_ack_as_master(self, s: Master, m: UpdateAck) -> None:
        p = s.progress.get(m.src)
        if p is not None:  # a refusal too shows the node is alive
            p.heard_tick = self.now
            p.answered = True
        if m.version >= s.confirm_version:  # it answered after the freeze
            s.unconfirmed.discard(m.src)
        c = s.change
        if c is not None and m.ok and m.version == c.membership.version:
            c.ack(m.src)
            self._maybe_finish_change(s)
