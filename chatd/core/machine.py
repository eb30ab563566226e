"""The role state machine of one node: pure, no I/O, no clock, no asyncio.

Events go in (`tick()`, `step(message)`, `local_appended()`, `persisted()`,
snapshot results); actions come out (`take_actions()`), to be carried out in
order by the driver: persist first, then send. Time is a tick count.

Promises (checked by the simulation tests):
- A master counts an entry committed only when it is durable on itself and
  on every node of the in-sync set; a node leaves the in-sync set only after
  the smaller set is durable on all its remaining members.
- Epochs fence old masters: every message carries the sender's epoch, a node
  adopts a higher epoch at once (a master steps down), and refuses lower ones.
- Election: a node whose master fell silent asks every member; it follows a
  live master if there is one, else the live in-sync node with the highest
  (epoch, index) of its last entry (ties to the lowest node id) becomes
  master at epoch + 1. Only nodes confirmed in sync since they last started
  count, unless every member of the in-sync set answers (a full restart).
- Silence means death only when measured while running: a master that was
  frozen drops no node of its in-sync sets until that node has acknowledged
  a membership version proposed after the freeze.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chatd.core.types import (
    Action,
    Append,
    AppendEntries,
    AppendReply,
    CheckMaster,
    CheckMasterReply,
    Committed,
    Durable,
    Election,
    InSyncChanged,
    Membership,
    Message,
    PersistEpoch,
    PersistMembership,
    Pos,
    Progress,
    Proposal,
    Register,
    RegisterReply,
    ResetLog,
    Role,
    RoleChanged,
    Send,
    SendSnapshot,
    Timing,
    Unreachable,
    UpdateAck,
    UpdateMaster,
    UpdateSlaves,
)

SEED_PREFIX = "@"  # a destination "@host:port" is an address, not a node id


class ProtocolError(Exception):
    """An event the current state cannot take (a bug in the caller)."""


class Core:
    def __init__(
        self,
        node_id: str,
        address: str,
        durable: Durable,
        timing: Timing | None = None,
        *,
        found: bool = False,
        seeds: tuple[str, ...] = (),
    ) -> None:
        self.id = node_id
        self.address = address
        self.timing = timing or Timing()
        self.epoch = durable.epoch
        self.last = durable.last  # last entry appended (a slave's may not be durable yet)
        self.durable = durable.last  # last entry known durable here
        self.runs: list[tuple[int, int]] = list(durable.epochs)
        self.membership = durable.membership
        self.commit = durable.commit_index
        self.seeds = tuple(SEED_PREFIX + s for s in seeds)
        self.now = 0
        self.role = Role.CANDIDATE
        self.master = ""
        self.eligible = False
        self.diverged = False
        self.heard = 0
        self.progress: dict[str, Progress] = {}
        self.pending: Membership | None = None
        self.pending_reason = ""
        self.awaiting: set[str] = set()
        self.pending_sent = 0
        self.log_start = 1  # the lowest index the local log still holds
        self.election: Election | None = None
        self.abandoned = ""
        self.probing = ""  # the master asked whether it lives, after its stream closed
        self.probe = 0
        self.voted: tuple[int, str] = (0, "")  # the master this node backs, at which epoch
        self.proposal: Proposal | None = None
        # a master after a freeze: in-sync nodes not heard from since, and
        # the membership version whose acknowledgement confirms them
        self.unconfirmed: set[str] = set()
        self.confirm_version: tuple[int, int] = (0, 0)
        self._actions: list[Action] = []
        if node_id in self.membership.retired:
            self.role = Role.RETIRED
        elif found:
            if durable.last.index or durable.epoch:
                raise ProtocolError("only an empty node can found a cluster")
            self.epoch = 1
            self._out(PersistEpoch(1))
            self._set_membership(
                Membership(epoch=1, members=((node_id, address),), in_sync=frozenset({node_id}))
            )
            self._become_master("founded the cluster")
        else:
            self._start_election("started")

    # -- the driver's interface --

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def tick(self) -> None:
        self.now += 1
        if self.role is Role.MASTER:
            self._master_tick()
        elif self.role is Role.SLAVE:
            if self.now - self.heard >= self.timing.failover:
                self._start_election(f"master {self.master} silent")
        elif self.role is Role.CANDIDATE:
            pr = self.proposal
            if pr is not None:
                if self.now - pr.started_tick < self.timing.election:
                    return
                self.proposal = None  # not every in-sync node accepted in time
                self._start_round()
                return
            e = self.election
            if e is None or self.now - e.started_tick >= self.timing.election:
                if e is not None:
                    self._decide()
                if self.role is Role.CANDIDATE:
                    self._start_round()

    def step(self, msg: Message) -> None:
        if msg.dst != self.id and not msg.dst.startswith(SEED_PREFIX):
            raise ProtocolError(f"{self.id} got a message for {msg.dst}")
        if self.role is Role.RETIRED:
            # it only says so: an election waiting for every in-sync node's
            # answer learns this one is out, and what membership it saw last
            if isinstance(msg, CheckMaster):
                self._on_check_master(msg)
            elif isinstance(msg, UpdateSlaves):
                # a master finishing its removal (or confirming its in-sync
                # set after a freeze) waits for this node: it has the change
                # if that membership leaves it out
                out = self.id not in msg.membership.addresses
                self._send(UpdateAck(self.id, msg.src, self.epoch, msg.membership.version, out))
            return
        if isinstance(msg, Unreachable):
            self._on_unreachable(msg)
            return
        if msg.epoch > self.epoch and not isinstance(msg, CheckMaster | Register | UpdateMaster):
            self._adopt_epoch(msg.epoch, f"{msg.src} is at epoch {msg.epoch}")
        handler = _HANDLERS[type(msg)]
        handler(self, msg)

    def local_appended(self, last: Pos) -> None:
        """Master: entries up to `last` are durable in the local store."""
        if self.role is not Role.MASTER:
            raise ProtocolError("only a master appends locally")
        if last.epoch != self.epoch or last.index <= self.last.index:
            raise ProtocolError(f"local append {last} does not extend {self.last}")
        self._extend_runs(self.last.index + 1, last.epoch)
        self.last = self.durable = last
        self._advance_commit()
        self._replicate()

    def persisted(self, durable: Pos) -> None:
        """Slave: received entries up to `durable` are now durable."""
        if durable.index <= self.durable.index:
            return
        self.durable = durable
        if self.role is Role.SLAVE:
            self._send(
                AppendReply(self.id, self.master, self.epoch, True, durable, probe=self.probe)
            )

    def snapshot_installed(self, pos: Pos, runs: tuple[tuple[int, int], ...] = ()) -> None:
        """Slave: the store was replaced by a snapshot ending at `pos`, whose
        log's epochs start at `runs` ((epoch, first index) pairs). Without
        them every entry up to `pos` would count as of pos.epoch, and a late
        append of an earlier epoch would look like a divergence."""
        self.last = self.durable = pos
        self.runs = [r for r in runs if r[1] <= pos.index] or [(pos.epoch, pos.index)]
        self.diverged = False
        if self.role is Role.SLAVE:
            self._send(AppendReply(self.id, self.master, self.epoch, True, pos, probe=self.probe))

    def snapshot_sent(self, dst: str, pos: Pos | None) -> None:
        """Master: a snapshot ending at `pos` is installed on `dst` (None: failed)."""
        p = self.progress.get(dst)
        if p is None:
            return
        p.snapshot = False
        if pos is not None:
            p.match = max(p.match, pos.index)
            p.next = p.match + 1
            p.inflight = 0
            self._after_ack(dst, p)

    def stream_lost(self, src: str) -> None:
        """The driver saw the log stream from `src` end. A process that dies
        closes its connections at once, so when that is this node's master,
        it is asked directly; if it cannot be reached either, the election
        starts without waiting out the failover timeout. (A master lost
        without closing its connections, as in a power cut, is still waited
        out; a live master that answers changes nothing.)"""
        if self.role is Role.SLAVE and src == self.master and not self.probing:
            self.probing = src
            self._send(CheckMaster(self.id, src, self.epoch))

    def suspect(self) -> None:
        """The driver noticed this process was frozen (its timer fired far
        too late): whatever it knew may be stale.

        A master's slaves may have elected another master meanwhile (alone,
        if it was the only other in-sync node), and that one may have crashed
        since: its silence after the resume would then look like any dead
        slave's, and dropping it would let this master acknowledge writes
        alone against the other's. So it keeps office, but drops no node of
        its in-sync sets (current or pending) for silence until that node
        acknowledges a membership version proposed after the freeze (an
        answer held in a socket during the freeze cannot). A node at a newer
        epoch answers with that epoch, and the master steps down. Until every
        such node has answered, nothing more is committed.

        Any other node stops counting as eligible until a master confirms it
        again (the master may have dropped it meanwhile), and a candidate
        asks everyone again."""
        if self.role is Role.MASTER:
            current = self.pending or self.membership
            # (a node already silent for the failover timeout before the
            # freeze was presumed dead while this one ran: it stays so,
            # unless an earlier freeze had left it unconfirmed)
            watched = (self.membership.in_sync | current.in_sync) - {self.id}
            dead = self._silent(watched) - self.unconfirmed
            self.unconfirmed = set(watched) - dead
            if self.unconfirmed:
                self._propose(
                    current.addresses,
                    current.in_sync,
                    "confirming the in-sync set after a freeze",
                    retired=current.retired,
                )
                assert self.pending is not None
                self.confirm_version = self.pending.version
            return
        self.eligible = False
        # Appends already on their way were sent before the freeze: only
        # one that answers a reply sent after it may confirm "in sync"
        self.probe += 1
        if self.role is Role.CANDIDATE:  # its election's answers are stale: ask again
            self.proposal = None
            self._start_round()

    def remove_member(self, node_id: str) -> bool:
        """Master: retire a node for good. Returns False if not possible now."""
        if self.role is not Role.MASTER or node_id == self.id or self.pending is not None:
            return False
        members = self.membership.addresses
        if node_id not in members:
            return False
        del members[node_id]
        # It stays in the stream (heartbeats) until it has the change: a live
        # node that still counted itself in sync could otherwise win an
        # election on its own once the master went quiet on it.
        self._propose(
            members,
            self.membership.in_sync - {node_id},
            f"{node_id} removed",
            retired=(self.pending or self.membership).retired | {node_id},
        )
        return True

    def epoch_at(self, index: int) -> int | None:
        """The epoch of the entry at `index`, if this log holds it."""
        if index == 0:
            return 0
        if index > self.last.index:
            return None
        found = None
        for epoch, first in self.runs:
            if first <= index:
                found = epoch
            else:
                break
        return found

    @property
    def effective_in_sync(self) -> frozenset[str]:
        return self.membership.in_sync

    # -- internals: output --

    def _out(self, action: Action) -> None:
        self._actions.append(action)

    def _send(self, msg: Message) -> None:
        if msg.dst and msg.dst != self.id:
            self._out(Send(msg))

    def _set_membership(self, m: Membership) -> None:
        if m.version >= self.membership.version:
            old = self.membership.in_sync
            self.membership = m
            self._out(PersistMembership(m))
            if m.in_sync != old:
                self._out(InSyncChanged(m.in_sync, f"membership {m.epoch}.{m.seq}"))
            if self.id in m.retired and self.role is not Role.RETIRED:
                self._retire(f"removed from the cluster (membership {m.epoch}.{m.seq})")

    def _extend_runs(self, first: int, epoch: int) -> None:
        if not self.runs or self.runs[-1][0] != epoch:
            self.runs.append((epoch, first))

    # -- internals: role changes --

    def _adopt_epoch(self, epoch: int, reason: str) -> None:
        self.epoch = epoch
        self._out(PersistEpoch(epoch))
        if self.role is Role.MASTER:
            self._start_election(f"stepped down: {reason}")

    def _become_master(self, reason: str) -> None:
        self.voted = (self.epoch, self.id)
        self.role = Role.MASTER
        self.master = self.id
        self.election = None
        self.eligible = True
        self.pending = None
        self.awaiting = set()
        self.unconfirmed = set()
        self.progress = {
            nid: Progress(next=self.last.index + 1, heard_tick=self.now, sent_tick=-1)
            for nid in self.membership.addresses
            if nid != self.id
        }
        self._out(RoleChanged(Role.MASTER, self.epoch, self.id, reason))
        self._advance_commit()
        self._replicate()

    def _follow(self, master: str, reason: str) -> None:
        self.voted = (self.epoch, master)
        self.proposal = None
        if self.role is Role.SLAVE and self.master == master:
            return
        self.role = Role.SLAVE
        self.master = master
        self.probing = ""
        self.election = None
        self.heard = self.now
        self.progress = {}
        self.pending = None
        self._out(RoleChanged(Role.SLAVE, self.epoch, master, reason))

    def _retire(self, reason: str) -> None:
        """Removed from the cluster for good: takes no part in it any more."""
        self.role = Role.RETIRED
        self.master = ""
        self.eligible = False
        self.election = None
        self.proposal = None
        self.progress = {}
        self.pending = None
        self._out(RoleChanged(Role.RETIRED, self.epoch, "", reason))

    def _start_election(self, reason: str) -> None:
        was = self.role
        self.probing = ""
        if was is Role.SLAVE:
            # the master it gave up on; its appends at this epoch are refused
            # from now on, unless an election round finds it alive after all
            self.abandoned = self.master
        self.role = Role.CANDIDATE
        self.master = ""
        self.progress = {}
        self.pending = None
        if was is Role.MASTER:
            self.eligible = False  # its tail may hold entries never acknowledged
        if was is not Role.CANDIDATE:
            self._out(RoleChanged(Role.CANDIDATE, self.epoch, "", reason))
        self._start_round()

    def _start_round(self) -> None:
        self.election = Election(started_tick=self.now)
        targets = [n for n in self.membership.addresses if n != self.id] or list(self.seeds)
        for nid in targets:
            self._send(CheckMaster(self.id, nid, self.epoch))
        if not targets:
            self._decide()

    def _decide(self) -> None:
        e = self.election
        if e is None:
            return
        replies = list(e.replies.values())
        masters = [r for r in replies if r.role is Role.MASTER and r.epoch >= self.epoch]
        if masters:
            best = max(masters, key=lambda r: r.epoch)
            self.abandoned = ""
            self._register(best.src)
            return
        seen = [self.membership, *(r.membership for r in replies)]
        latest = max(seen, key=lambda m: m.version)
        if latest.version > self.membership.version:
            self._set_membership(latest)
        # Two proposers of one epoch can leave nodes with different
        # memberships of the same version. Which one (if any) took office is
        # not known here, so every in-sync node of any of them counts, and
        # all of them must answer (nobody's word of being in sync decides).
        rivals = [m for m in seen if m.version == latest.version and m != latest]
        if rivals:
            union = latest.in_sync.union(*(m.in_sync for m in rivals))
            latest = replace(latest, in_sync=union)
        if self.role is Role.RETIRED or self.id not in latest.in_sync or self.diverged:
            return
        # A retired node answers but takes no part: it acknowledged nothing
        # after it retired, and what it acknowledged before, the other
        # in-sync nodes acknowledged too.
        out = {r.src for r in replies if r.role is Role.RETIRED}
        info = {r.src: r for r in replies if r.src in latest.in_sync and r.src not in out}
        candidates = {self.id: (self.durable, self.eligible)}
        candidates |= {nid: (r.last, r.eligible) for nid, r in info.items()}
        pool = [] if rivals else [nid for nid, (_, ok) in candidates.items() if ok]
        if not pool:  # nobody confirmed in sync: only a complete in-sync set may choose
            if not latest.in_sync <= set(candidates) | out:
                return
            pool = list(candidates)
        winner = min(
            pool, key=lambda nid: (-candidates[nid][0].epoch, -candidates[nid][0].index, nid)
        )
        e.winner = winner
        if winner != self.id:
            return
        top = max([self.epoch, *(r.epoch for r in replies)])
        self.epoch = top + 1
        self.voted = (self.epoch, self.id)
        self._out(PersistEpoch(self.epoch))
        members = {n: a for n, a in latest.members if n not in out}
        members[self.id] = self.address
        proposed = latest.with_changes(self.epoch, members=members, in_sync=frozenset(pool))
        if out:
            proposed = replace(proposed, retired=proposed.retired | out)
        # Every in-sync node not known to be down must accept: two winners
        # of one epoch (each missing the other's answer) cannot both get that
        awaiting = (set(latest.in_sync) & set(members)) - {self.id} - e.unreachable
        self.proposal = Proposal(
            self.epoch,
            proposed,
            awaiting,
            self.now,
            f"elected by {sorted(pool)} at epoch {self.epoch}",
        )
        self.election = None
        for nid in proposed.addresses:
            self._send(UpdateMaster(self.id, nid, self.epoch, proposed, self.durable))
        self._maybe_take_office()

    def _maybe_take_office(self) -> None:
        pr = self.proposal
        if pr is None or pr.awaiting:
            return
        self.proposal = None
        self._set_membership(pr.membership)
        self._become_master(pr.reason)

    def _register(self, master: str) -> None:
        self._send(Register(self.id, master, self.epoch, self.address, self.durable))

    # -- internals: master --

    def _master_tick(self) -> None:
        t = self.timing
        current = self.pending or self.membership
        watched = (self.effective_in_sync | current.in_sync) - {self.id}
        silent = self._silent(watched - self.unconfirmed)
        if silent:
            keep = current.in_sync - silent
            if self.pending is None or keep != self.pending.in_sync or silent & self.awaiting:
                self._propose(current.addresses, keep, f"{sorted(silent)} silent", skip=silent)
        if self.pending is not None and self.now - self.pending_sent >= t.retry:
            self._send_pending()
        self._replicate(heartbeat=True)

    def _silent(self, nodes: frozenset[str] | set[str]) -> set[str]:
        """The nodes not heard from for the failover timeout: presumed dead."""
        return {
            nid
            for nid in nodes
            if nid not in self.progress
            or self.now - self.progress[nid].heard_tick >= self.timing.failover
        }

    def _propose(
        self,
        members: dict[str, str],
        in_sync: frozenset[str],
        reason: str,
        retired: frozenset[str] | None = None,
        skip: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Adopts a new membership once every node in both the current and the
        new in-sync set has it durable; until then commits need both sets.
        An in-sync node it removes must have it too (so it knows it is out),
        unless it is silent (`skip`): presumed dead, like any silent node."""
        seqs = [m.seq for m in (self.membership, self.pending) if m and m.epoch == self.epoch]
        self.pending = Membership(
            epoch=self.epoch,
            seq=max(seqs) + 1 if seqs else 0,
            members=tuple(sorted(members.items())),
            in_sync=in_sync,
            retired=(self.pending or self.membership).retired if retired is None else retired,
        )
        self.pending_reason = reason
        leaving = self.membership.in_sync - members.keys() - skip
        self.awaiting = (set(in_sync) | leaving) - {self.id}
        self._send_pending()
        self._maybe_finish_pending()

    def _send_pending(self) -> None:
        assert self.pending is not None
        self.pending_sent = self.now
        for nid in sorted(self.pending.addresses.keys() | self.awaiting):
            if nid != self.id:
                self._send(UpdateSlaves(self.id, nid, self.epoch, self.pending))

    def _maybe_finish_pending(self) -> None:
        if self.pending is None or self.awaiting:
            return
        new, self.pending = self.pending, None
        old = self.membership.in_sync
        dropped = {n: a for n, a in self.membership.members if n not in new.addresses}
        self.membership = new
        self._out(PersistMembership(new))
        for address in dropped.values():  # a removed node that still runs retires
            self._send(UpdateSlaves(self.id, SEED_PREFIX + address, self.epoch, new))
        if new.in_sync != old:
            self._out(InSyncChanged(new.in_sync, self.pending_reason))
        for nid in list(self.progress):
            if nid not in new.addresses:
                del self.progress[nid]
        self._advance_commit()

    def _advance_commit(self) -> None:
        if self.role is not Role.MASTER:
            return
        others = self.effective_in_sync - {self.id}
        if self.pending is not None:
            others |= self.pending.in_sync - {self.id}
        top = self.durable.index
        for nid in others:
            p = self.progress.get(nid)
            top = min(top, p.match if p is not None else 0)
        if top > self.commit:
            self.commit = top
            self._out(Committed(top))

    def _replicate(self, heartbeat: bool = False) -> None:
        for nid, p in self.progress.items():
            # a slave not heard from lately is prodded every tick, whatever is
            # in flight: "silent" must mean several prods went unanswered
            prod = heartbeat and self.now - p.heard_tick >= 2 and self.now > p.sent_tick
            if p.snapshot and not prod:
                continue
            stale = self.now - p.sent_tick >= self.timing.retry
            if p.inflight and not stale and not prod:
                continue
            if p.inflight and stale:  # unanswered: send again from the last known match
                p.next = p.match + 1
                p.inflight = 0
            if p.next <= self.last.index and not p.snapshot and not p.inflight:
                self._send_batch(nid, p)
            elif heartbeat and self.now > p.sent_tick:
                p.sent_tick = self.now
                prev = Pos(self.epoch_at(p.match) or 0, p.match)
                self._send(
                    Append(
                        self.id,
                        nid,
                        self.epoch,
                        prev,
                        0,
                        self.epoch,
                        self.commit,
                        nid in self.effective_in_sync,
                        p.echo,
                    )
                )

    def _send_batch(self, nid: str, p: Progress) -> None:
        first = p.next
        epoch = self.epoch_at(first)
        if epoch is None or first < self.log_start:  # compacted away: send a snapshot
            p.snapshot = True
            self._out(SendSnapshot(nid))
            return
        end = min(self.last.index, first + self.timing.max_batch - 1)
        for run_epoch, run_first in self.runs:
            if run_first > first and run_epoch != epoch:
                end = min(end, run_first - 1)
                break
        prev = Pos(self.epoch_at(first - 1) or 0, first - 1)
        count = end - first + 1
        p.inflight = count
        p.sent_tick = self.now
        p.next = end + 1
        self._send(
            Append(
                self.id,
                nid,
                self.epoch,
                prev,
                count,
                epoch,
                self.commit,
                nid in self.effective_in_sync,
                p.echo,
            )
        )

    def _after_ack(self, nid: str, p: Progress) -> None:
        self._advance_commit()
        members = self.membership.addresses
        if (
            nid not in self.effective_in_sync
            and nid in members
            and self.pending is None
            and p.match >= self.commit
            and p.match == self.last.index
        ):
            self._propose(
                members, self.effective_in_sync | {nid}, f"{nid} caught up at index {p.match}"
            )
        self._replicate()

    # -- message handlers --

    def _on_append(self, m: Append) -> None:
        if m.epoch < self.epoch:
            self._send(
                AppendReply(self.id, m.src, self.epoch, False, self.durable, probe=self.probe)
            )
            return
        if self.role is Role.MASTER:  # same epoch, another master: cannot happen
            raise ProtocolError(f"two masters at epoch {m.epoch}: {self.id} and {m.src}")
        if self._from_abandoned(m.src, m.epoch):
            # no entries taken, but an answer: a silent node would be dropped
            # from the in-sync set, and the old master could then acknowledge
            # alone what this one never gets
            self._send(
                AppendReply(self.id, m.src, self.epoch, False, self.durable, probe=self.probe)
            )
            return
        self._follow(m.src, f"append from {m.src}")
        self.heard = self.now
        self.probing = ""
        if self.master != m.src:
            return
        self.eligible = m.in_sync and not self.diverged and m.echo >= self.probe
        if self.diverged:
            self._send(
                AppendReply(self.id, m.src, self.epoch, False, self.durable, True, self.probe)
            )
            return
        if m.prev.index > self.last.index:  # a gap: tell where we are
            self._send(
                AppendReply(self.id, m.src, self.epoch, False, self.durable, probe=self.probe)
            )
            return
        if self.epoch_at(m.prev.index) != m.prev.epoch or (
            m.count
            and self.last.index > m.prev.index
            and self.epoch_at(min(self.last.index, m.prev.index + m.count)) != m.entry_epoch
        ):
            self.diverged = True
            self.eligible = False
            self._out(ResetLog())
            self._send(
                AppendReply(self.id, m.src, self.epoch, False, self.durable, True, self.probe)
            )
            return
        end = m.prev.index + m.count
        if end > self.last.index:
            skip = self.last.index - m.prev.index
            first = self.last.index + 1
            self._extend_runs(first, m.entry_epoch)
            self.last = Pos(m.entry_epoch, end)
            self._out(
                AppendEntries(
                    Pos(self.epoch_at(first - 1) or 0, first - 1), m.count - skip, m.entry_epoch
                )
            )
            # the reply goes out when the driver reports the entries durable
            if self.commit < min(m.commit, end):
                self.commit = min(m.commit, end)
            return
        self.commit = max(self.commit, min(m.commit, self.durable.index))
        self._send(AppendReply(self.id, m.src, self.epoch, True, self.durable, probe=self.probe))

    def _from_abandoned(self, src: str, epoch: int) -> bool:
        """A candidate does not go back to the master it declared silent (its
        answers may already have elected another one at a newer epoch)."""
        return self.role is Role.CANDIDATE and src == self.abandoned and epoch == self.epoch

    def _on_append_reply(self, m: AppendReply) -> None:
        if self.role is not Role.MASTER or m.epoch < self.epoch:
            return
        p = self.progress.get(m.src)
        if p is None:
            return
        p.heard_tick = self.now
        p.inflight = 0
        p.echo = max(p.echo, m.probe)
        if m.diverged:
            if not p.snapshot:
                p.snapshot = True
                self._out(SendSnapshot(m.src))
            return
        d = m.durable
        if d.index > self.last.index or self.epoch_at(d.index) != d.epoch:
            if not p.snapshot:
                p.snapshot = True
                self._out(SendSnapshot(m.src))
            return
        if m.ok:
            p.match = max(p.match, d.index)
            p.next = max(p.next, p.match + 1)
        else:
            p.match = d.index
            p.next = d.index + 1
        self._after_ack(m.src, p)

    def _on_register(self, m: Register) -> None:
        if self.role is not Role.MASTER:
            self._send(RegisterReply(self.id, m.src, self.epoch, False, self.master))
            return
        newest = self.pending or self.membership
        if m.src in newest.retired:
            # removed for good: it learns so (and retires) instead of rejoining
            self._send(UpdateSlaves(self.id, SEED_PREFIX + m.address, self.epoch, newest))
            return
        members = self.membership.addresses
        if members.get(m.src) != m.address and self.pending is None:
            members[m.src] = m.address
            self._propose(members, self.effective_in_sync, f"{m.src} joined from {m.address}")
        elif m.src not in members:
            self._send(RegisterReply(self.id, m.src, self.epoch, False, self.id))
            return  # a membership change is under way: the node asks again
        p = self.progress.setdefault(m.src, Progress(heard_tick=self.now))
        p.heard_tick = self.now
        p.inflight = 0
        p.sent_tick = self.now - self.timing.retry
        d = m.last
        if d.index > self.last.index or self.epoch_at(d.index) != d.epoch:
            if not p.snapshot:
                p.snapshot = True
                self._out(SendSnapshot(m.src))
        else:
            p.match = d.index
            p.next = d.index + 1
        self._send(RegisterReply(self.id, m.src, self.epoch, True, self.id))
        self._replicate()

    def _on_register_reply(self, m: RegisterReply) -> None:
        if not m.ok and m.master and m.master != m.src and self.role is Role.CANDIDATE:
            self._register(m.master)

    def _on_check_master(self, m: CheckMaster) -> None:
        self._send(
            CheckMasterReply(
                self.id,
                m.src,
                self.epoch,
                self.role,
                self.master,
                self.durable,
                self.eligible,
                self.membership,
            )
        )

    def _on_check_master_reply(self, m: CheckMasterReply) -> None:
        if self.probing == m.src:
            self.probing = ""  # the master answered: it lives
            if self.role is Role.SLAVE and self.master == m.src and m.role is not Role.MASTER:
                self._start_election(f"master {m.src} closed its stream and stepped down")
                return
        e = self.election
        if self.role is not Role.CANDIDATE or e is None:
            return
        e.replies[m.src] = m
        asked = {n for n in self.membership.addresses if n != self.id}
        if asked <= set(e.replies) | e.unreachable:
            self._decide()

    def _on_update_master(self, m: UpdateMaster) -> None:
        fresh = m.epoch > self.epoch or (m.epoch == self.epoch and self.voted == (m.epoch, m.src))
        if not fresh:
            # another proposer or master at this epoch, or an older epoch: refused.
            # (A proposer's log may be shorter than this node's: what this one
            # has more was never acknowledged, since the proposer is in sync.)
            self._send(UpdateAck(self.id, m.src, self.epoch, m.membership.version, False))
            return
        if m.epoch > self.epoch:
            self._adopt_epoch(m.epoch, f"{m.src} proposes itself at epoch {m.epoch}")
        self.voted = (m.epoch, m.src)
        self.proposal = None
        self._follow(m.src, f"{m.src} announced itself master at epoch {m.epoch}")
        self.heard = self.now
        self._set_membership(m.membership)
        self.eligible = self.eligible and self.id in m.membership.in_sync
        self._send(UpdateAck(self.id, m.src, self.epoch, m.membership.version, True))

    def _on_update_slaves(self, m: UpdateSlaves) -> None:
        if m.epoch < self.epoch or (self.role is Role.MASTER and m.src != self.id):
            self._send(UpdateAck(self.id, m.src, self.epoch, m.membership.version, False))
            return
        if self._from_abandoned(m.src, m.epoch):  # refused, but answered (see _on_append)
            # what it says of the in-sync set is news all the same
            self._set_membership(m.membership)
            if self.id not in self.membership.in_sync:
                self.eligible = False
            self._send(UpdateAck(self.id, m.src, self.epoch, m.membership.version, False))
            return
        self._follow(m.src, f"membership from {m.src}")
        self.heard = self.now
        self.probing = ""
        self._set_membership(m.membership)
        if self.id not in m.membership.in_sync:
            self.eligible = False
        self._send(UpdateAck(self.id, m.src, self.epoch, m.membership.version, True))

    def _on_update_ack(self, m: UpdateAck) -> None:
        pr = self.proposal
        if self.role is Role.CANDIDATE and pr is not None and m.version == pr.membership.version:
            if m.ok:
                pr.awaiting.discard(m.src)
                self._maybe_take_office()
            elif m.src in pr.awaiting:
                self.proposal = None  # refused: look again
                self._start_round()
            return
        if self.role is not Role.MASTER:
            return
        p = self.progress.get(m.src)
        if p is not None:  # a refusal too shows the node is alive
            p.heard_tick = self.now
        if m.version >= self.confirm_version:  # it answered after the freeze
            self.unconfirmed.discard(m.src)
        if self.pending is not None and m.ok and m.version == self.pending.version:
            self.awaiting.discard(m.src)
            self._maybe_finish_pending()

    def _on_unreachable(self, m: Unreachable) -> None:
        pr = self.proposal
        if self.role is Role.CANDIDATE and pr is not None:
            if m.src in pr.awaiting:
                self.proposal = None  # a node it counted on is gone: look again
                self._start_round()
            return
        e = self.election
        if self.role is Role.CANDIDATE and e is not None:
            if m.src not in e.retried and not m.src.startswith(SEED_PREFIX):
                # one failed call may be a hiccup of a live node: ask again
                # before counting it out of the election
                e.retried.add(m.src)
                self._send(CheckMaster(self.id, m.src, self.epoch))
                return
            e.unreachable.add(m.src)
            asked = {n for n in self.membership.addresses if n != self.id}
            if asked and asked <= set(e.replies) | e.unreachable:
                self._decide()
        elif self.role is Role.SLAVE and m.src == self.probing == self.master:
            self._start_election(f"master {m.src} closed its stream and does not answer")
        elif self.role is Role.MASTER and m.src in self.progress:
            p = self.progress[m.src]
            p.inflight = 0  # what was in flight is lost: resend from the last match
            p.next = p.match + 1


_HANDLERS: dict[type, Callable[[Core, Any], None]] = {
    Append: Core._on_append,
    AppendReply: Core._on_append_reply,
    Register: Core._on_register,
    RegisterReply: Core._on_register_reply,
    CheckMaster: Core._on_check_master,
    CheckMasterReply: Core._on_check_master_reply,
    UpdateMaster: Core._on_update_master,
    UpdateSlaves: Core._on_update_slaves,
    UpdateAck: Core._on_update_ack,
}
