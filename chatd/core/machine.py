"""The role state machine of one node: pure, no I/O, no clock, no asyncio.

Events go in (`tick()`, `step(message)`, `local_appended()`, `persisted()`,
`report_unreachable()`, snapshot and log events); actions come out
(`take_actions()`), to be carried out in order by the driver: persist
first, then send. Time is a tick count. `status()` is the read-only view.

The pieces: `log` (positions and epoch runs), `progress` (the master's view
of each follower), `membership` (the master's changes), `election` (the
decision, a pure function), `roles` (what a node holds in each role; a role
change swaps one object). The master's replication lives in `leader`.

Each event goes to the handler of the role the node is in: the tables at
the end (`_STEP` for messages, `_TICK` and `_UNREACHABLE`); a message a
role has no handler for is ignored.

Promises (checked by the simulation tests):
- A master counts an entry committed only when it is durable on itself and
  on every node of the in-sync set; a node leaves the in-sync set only after
  the smaller set is durable on all its remaining members.
- Epochs fence old masters: every message carries the sender's epoch, a node
  adopts a higher epoch at once (a master steps down), and refuses lower ones.
- Election: see `chatd.core.election`.
- Silence means death only when measured while running: a master that was
  frozen drops no node of its in-sync sets until that node has acknowledged
  a membership version proposed after the freeze.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from chatd.core.election import Election, Proposal, Voter, decide
from chatd.core.errors import InvariantError, LocalProtocolError, RemoteProtocolError
from chatd.core.leader import Master
from chatd.core.log import EpochRuns, Log
from chatd.core.quorum import IN_SYNC, MODES
from chatd.core.roles import Candidate, Retired, Slave, State
from chatd.core.types import (
    SEED_PREFIX,
    Action,
    Append,
    AppendEntries,
    AppendReply,
    CheckMaster,
    CheckMasterReply,
    Committed,
    Durable,
    ElectionStalled,
    FollowerStatus,
    InSyncChanged,
    Membership,
    Message,
    PersistEpoch,
    PersistMembership,
    Pos,
    Register,
    RegisterReply,
    ResetLog,
    Role,
    RoleChanged,
    Send,
    Status,
    Timing,
    UpdateAck,
    UpdateMaster,
    UpdateSlaves,
    seed_address,
    seed_dst,
)

# a stalled election is said again every this many failover timeouts
STALL_REPEAT = 10

P = ParamSpec("P")
R = TypeVar("R")


def _checked(event: Callable[Concatenate[Core, P], R]) -> Callable[Concatenate[Core, P], R]:
    """An event of the core: its invariants are checked after it (Core.check)."""

    @functools.wraps(event)
    def run(core: Core, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result = event(core, *args, **kwargs)
        core.check()
        return result

    return run


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
        quorum: str = IN_SYNC,
        min_in_sync: int = 1,
    ) -> None:
        self.id = node_id
        self.min_in_sync = min_in_sync  # see Master.refusal
        self.address = address
        self.timing = timing or Timing()
        self.seeds = tuple(seed_dst(s) for s in seeds)
        self.now = 0
        self.epoch = durable.epoch
        self.log = Log(durable.last, durable.epochs, durable.log_start)
        self.membership = durable.membership
        self.commit = 0
        self.reported = 0  # a slave's highest Committed output (durable here too)
        self.state: State = Candidate()
        self.eligible = False  # confirmed in sync since it started: holds every acknowledged entry
        self.diverged = False  # its log does not extend the master's: waits for a snapshot
        self.abandoned = ""  # the master it gave up on (its appends at this epoch are refused)
        self.probe = 0  # raised after a freeze; an Append echoing it confirms "in sync" anew
        self.asked_membership = -1  # the tick it last asked its master for its membership
        self.voted: tuple[int, str] = (0, "")  # the master this node backs, at which epoch
        self.committed = 0  # the highest commit index it has had: commit never goes back
        self._actions: list[Action] = []
        if node_id in self.membership.retired:
            self.state = Retired()
        elif found:
            if quorum not in MODES:
                raise LocalProtocolError(f"unknown quorum mode {quorum!r}")
            if durable.epoch or durable.membership.members:
                raise LocalProtocolError("only a node of no cluster can found one")
            # an empty node, or one restored from a backup: its log's epochs
            # were another cluster's, and this one's come after them
            self.epoch = durable.last.epoch + 1
            self._out(PersistEpoch(epoch=self.epoch))
            self._set_membership(
                Membership(
                    epoch=self.epoch,
                    members=((node_id, address),),
                    in_sync=frozenset({node_id}),
                    quorum=quorum,
                )
            )
            self._become_master("founded the cluster")
        else:
            self._start_election("started")

    # -- what the driver reads --

    @property
    def role(self) -> Role:
        return self.state.role

    @property
    def master(self) -> str:
        return self.state.master

    @property
    def last(self) -> Pos:
        return self.log.last

    @property
    def durable(self) -> Pos:
        return self.log.durable

    def status(self) -> Status:
        s = self._leading()
        followers: dict[str, FollowerStatus] = {}
        pending = None
        if s is not None:
            pending = s.change.membership if s.change is not None else None
            followers = {
                nid: FollowerStatus(
                    match=p.match,
                    heard=p.answered,
                    alive=not p.silent(self.now, self.timing.failover),
                    left=""
                    if nid in self.membership.in_sync
                    else p.out_of_sync(self.now, self.timing.failover, s.lag.left.get(nid, "")),
                )
                for nid, p in s.progress.items()
            }
        return Status(
            id=self.id,
            role=self.role,
            epoch=self.epoch,
            master=self.master,
            master_address=self.membership.addresses.get(self.master, ""),
            last=self.log.last,
            durable=self.log.durable,
            commit=self.commit,
            log_start=self.log.start,
            eligible=self.eligible,
            membership=self.membership,
            pending=pending,
            followers=followers,
        )

    def check(self) -> None:
        """Raises InvariantError if a rule of this node's state is broken:
        the commit index never goes back nor past the log's end, the vote
        is never for an epoch ahead of its own, an eligible node's log
        extends its master's; the role's own (Master.check)."""
        if self.commit < self.committed:
            raise InvariantError(
                f"{self.id}: commit went back from {self.committed} to {self.commit}"
            )
        self.committed = self.commit
        if self.commit > self.log.last.index:
            raise InvariantError(
                f"{self.id}: commit {self.commit} past its log's end {self.log.last}"
            )
        if self.voted[0] > self.epoch:
            raise InvariantError(f"{self.id}: voted at epoch {self.voted[0]} ahead of {self.epoch}")
        if self.eligible and self.diverged:
            raise InvariantError(f"{self.id}: eligible with a diverged log")
        if (s := self._leading()) is not None:
            s.check()

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    # -- events --

    @_checked
    def tick(self) -> None:
        self.now += 1
        tick = _TICK.get(type(self.state))
        if tick is not None:
            tick(self, self.state)

    @_checked
    def step(self, msg: Message) -> None:
        if msg.dst != self.id and seed_address(msg.dst) is None:
            raise LocalProtocolError(f"{self.id} got a message for {msg.dst}")
        # a retired node only says so, whatever the epoch
        retired = self.role is Role.RETIRED
        if msg.epoch > self.epoch and not retired and not isinstance(msg, UpdateMaster):
            # "In sync" was confirmed by a master of an older epoch: a master
            # of a newer one may have taken office without this node and
            # acknowledged entries it lacks. Only a master's Append makes it
            # eligible again. (Also when it only hears a candidate's question:
            # a master keeps office then, and a claim decides for itself.)
            if self.role is not Role.MASTER:
                self.eligible = False
            if not isinstance(msg, CheckMaster | Register):
                self._adopt_epoch(msg.epoch, f"{msg.src} is at epoch {msg.epoch}")
        handler = _STEP.get((type(self.state), type(msg)))
        if handler is not None:
            handler(self, self.state, msg)

    @_checked
    def report_unreachable(self, peer: str) -> None:
        """A message to `peer` failed (refused, timed out, a stream broke)."""
        unreachable = _UNREACHABLE.get(type(self.state))
        if unreachable is not None:
            unreachable(self, self.state, peer)

    @_checked
    def persisted(self, durable: Pos) -> None:
        """Slave: received entries up to `durable` are now durable."""
        if self.log.persisted(durable) and self.role is Role.SLAVE:
            self._reply_append(self.master, ok=True)
            self._report_commit()

    @_checked
    def stream_lost(self, src: str) -> None:
        """The driver saw the log stream from `src` end. A process that dies
        closes its connections at once, so when that is this node's master,
        it is asked directly; if it cannot be reached either, the election
        starts without waiting out the failover timeout. (A master lost
        without closing its connections, as in a power cut, is still waited
        out; a live master that answers changes nothing.)"""
        s = self.state
        if isinstance(s, Slave) and src == s.master and not s.probing:
            s.probing = True
            self._send(CheckMaster(src=self.id, dst=src, epoch=self.epoch))

    def snapshot_offered(self, src: str, epoch: int) -> bool:
        """A snapshot from `src` at `epoch` begins: True if this node takes
        it (only from a master it may follow; never on a master)."""
        return epoch >= self.epoch and self.role is not Role.MASTER and self.master in ("", src)

    def superseded_by(
        self, pos: Pos, runs: tuple[tuple[int, int], ...]
    ) -> list[tuple[int, int, int]]:
        """What of this node's log a snapshot ending at `pos`, whose log
        has the epoch runs `runs`, would drop: (epoch, first, last) stretches
        of another master's tail (a question: it changes nothing). Entries
        up to `commit` were acknowledged as far as this node knows; any of
        them may have been, when this node was a master cut off with them."""
        return self.log.superseded_by(EpochRuns(runs), pos.index)

    @_checked
    def snapshot_installed(self, pos: Pos, runs: tuple[tuple[int, int], ...], start: int) -> None:
        """Slave: the store was replaced by a snapshot ending at `pos`, whose
        log holds `start`..pos.index in the epoch runs `runs`."""
        self.log.replace(pos, runs, start)
        self.diverged = False
        if self.role is Role.SLAVE:
            self._reply_append(self.master, ok=True)
            self._report_commit()

    @_checked
    def log_truncated(self, start: int) -> None:
        """The store dropped the entries before `start`; a follower that
        needs them gets a snapshot."""
        self.log.start = start

    @_checked
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
        s = self.state
        if isinstance(s, Master):
            s.confirm_after_freeze()
            return
        self.eligible = False
        # Appends already on their way were sent before the freeze: only
        # one that answers a reply sent after it may confirm "in sync"
        self.probe += 1
        if isinstance(s, Candidate):  # its election's answers are stale: ask again
            s.proposal = None
            self._start_round(s)

    # -- events only a master takes (the others refuse or ignore them) --

    @_checked
    def local_appended(self, last: Pos) -> None:
        """Master: entries up to `last` are durable in the local store."""
        s = self._leading()
        if s is None:
            raise LocalProtocolError("only a master appends locally")
        s.local_appended(last)

    @_checked
    def snapshot_sent(self, dst: str, pos: Pos | None) -> None:
        """Master: a snapshot ending at `pos` is installed on `dst` (None: failed)."""
        if (s := self._leading()) is not None:
            s.snapshot_sent(dst, pos)

    @_checked
    def remove_member(self, node_id: str) -> bool:
        """Master: retire a node for good. Returns False if not possible now."""
        s = self._leading()
        return s is not None and s.remove_member(node_id)

    def refusal(self) -> str:
        """Master: why a write is refused now, "" if it is not (Master.refusal)."""
        s = self._leading()
        return s.refusal() if s is not None else ""

    @_checked
    def tell_commit(self) -> None:
        """Master: see Master.tell_commit."""
        if (s := self._leading()) is not None:
            s.tell_commit()

    def _leading(self) -> Master | None:
        s = self.state
        return s if isinstance(s, Master) else None

    # -- internals: output --

    def _out(self, action: Action) -> None:
        self._actions.append(action)

    def _send(self, msg: Message) -> None:
        if msg.dst and msg.dst != self.id:
            self._out(Send(message=msg))

    def _others(self) -> set[str]:
        return {n for n in self.membership.addresses if n != self.id}

    def _set_membership(self, m: Membership) -> None:
        if m.version >= self.membership.version:
            old = self.membership.in_sync
            self.membership = m
            self._out(PersistMembership(membership=m))
            if m.in_sync != old:
                reason = f"membership {m.epoch}.{m.seq}"
                self._out(InSyncChanged(in_sync=m.in_sync, reason=reason))
            if self.id in m.retired and self.role is not Role.RETIRED:
                self._retire(f"removed from the cluster (membership {m.epoch}.{m.seq})")

    def _reply_append(self, dst: str, *, ok: bool, diverged: bool = False) -> None:
        reply = AppendReply(
            src=self.id,
            dst=dst,
            epoch=self.epoch,
            ok=ok,
            durable=self.log.durable,
            diverged=diverged,
            probe=self.probe,
        )
        self._send(reply)

    def _ack_update(self, dst: str, version: tuple[int, int], ok: bool) -> None:
        self._send(UpdateAck(src=self.id, dst=dst, epoch=self.epoch, version=version, ok=ok))

    # -- internals: role changes --

    def _adopt_epoch(self, epoch: int, reason: str) -> None:
        self.epoch = epoch
        self._out(PersistEpoch(epoch=epoch))
        if self.role is Role.MASTER:
            self._start_election(f"stepped down: {reason}")

    def _vote(self, epoch: int, claimant: str) -> None:
        """Accepts `claimant`'s claim to `epoch` (its own, when it claims
        one): never while it backs another node at that epoch. (It may
        still follow another master of the epoch later, when its own claim
        failed and that one's did not: `voted` is then that master.)"""
        backed_at, backed = self.voted
        if backed_at == epoch and backed not in ("", claimant):
            raise InvariantError(
                f"{self.id}: accepts {claimant}'s claim at epoch {epoch}, backing {backed}"
            )

    def _follow(self, master: str, reason: str) -> Slave:
        self.voted = (self.epoch, master)
        s = self.state
        if isinstance(s, Slave) and s.master == master:
            return s
        s = self.state = Slave(master=master, heard=self.now)
        self._out(RoleChanged(role=Role.SLAVE, epoch=self.epoch, master=master, reason=reason))
        return s

    def _retire(self, reason: str) -> None:
        """Removed from the cluster for good: takes no part in it any more."""
        self.state = Retired()
        self.eligible = False
        self._out(RoleChanged(role=Role.RETIRED, epoch=self.epoch, master="", reason=reason))

    def _start_election(self, reason: str) -> None:
        was = self.state
        if was.role is Role.SLAVE:
            # the master it gave up on; its appends at this epoch are refused
            # from now on, unless an election round finds it alive after all
            self.abandoned = was.master
        if was.role is Role.MASTER:
            self.eligible = False  # its tail may hold entries never acknowledged
        if isinstance(was, Candidate):
            self._start_round(was)
            return
        s = self.state = Candidate(since=self.now)
        self._out(RoleChanged(role=Role.CANDIDATE, epoch=self.epoch, master="", reason=reason))
        self._start_round(s)

    def _start_round(self, s: Candidate) -> None:
        s.election = Election(started_tick=self.now)
        targets = [n for n in self.membership.addresses if n != self.id] or list(self.seeds)
        for nid in targets:
            self._send(CheckMaster(src=self.id, dst=nid, epoch=self.epoch))
        if not targets:
            self._decide(s)

    def _decide(self, s: Candidate) -> None:
        e = s.election
        if e is None:
            return
        me = Voter(
            id=self.id,
            address=self.address,
            epoch=self.epoch,
            durable=self.log.durable,
            eligible=self.eligible,
            diverged=self.diverged,
            membership=self.membership,
            seeds=tuple(s.removeprefix(SEED_PREFIX) for s in self.seeds),
        )
        d = decide(me, list(e.replies.values()), e.unreachable)
        if d.stuck:
            self._stalled(s, d.stuck)
        if d.master:
            self.abandoned = ""
            self._register(d.master)
            return
        if d.learned is not None:
            self._set_membership(d.learned)
        if d.won is None or self.state is not s:
            return
        won = d.won
        self.epoch = won.epoch
        self._vote(self.epoch, self.id)
        self.voted = (self.epoch, self.id)
        self._out(PersistEpoch(epoch=self.epoch))
        s.proposal = Proposal(won.epoch, won.membership, set(won.awaiting), self.now, won.reason)
        s.election = None
        for nid in won.membership.addresses:
            claim = UpdateMaster(
                src=self.id, dst=nid, epoch=self.epoch, membership=won.membership, last=self.durable
            )
            self._send(claim)
        self._maybe_take_office(s)

    def _stalled(self, s: Candidate, reason: str) -> None:
        """No master can be chosen now: said once the search has lasted the
        failover timeout (a moment's gap of an ordinary failover stays
        quiet), then at a bounded rate while it lasts (ElectionStalled)."""
        failover = self.timing.failover
        if self.now - s.since < failover:
            return
        if s.stalled is not None:
            last, said = s.stalled
            due = last + (failover if reason != said else STALL_REPEAT * failover)
            if self.now < due:
                return
        s.stalled = (self.now, reason)
        self._out(ElectionStalled(reason=reason))

    def _maybe_take_office(self, s: Candidate) -> None:
        pr = s.proposal
        if pr is not None and pr.epoch != self.epoch:
            # it has seen a newer epoch since it claimed this one: the claim
            # is void (acceptances of it may still arrive), it looks again
            s.proposal = None
            return
        if pr is None or not pr.won(self.id):
            return
        s.proposal = None
        self._set_membership(pr.membership)
        self._become_master(pr.reason, elected=True)

    def _become_master(self, reason: str, *, elected: bool = False) -> None:
        self.voted = (self.epoch, self.id)
        self.eligible = True
        s = self.state = Master.take_office(self)
        self._out(
            RoleChanged(
                role=Role.MASTER, epoch=self.epoch, master=self.id, reason=reason, elected=elected
            )
        )
        s.start()

    def _register(self, master: str) -> None:
        self._send(
            Register(
                src=self.id, dst=master, epoch=self.epoch, address=self.address, last=self.durable
            )
        )

    def _from_abandoned(self, src: str, epoch: int) -> bool:
        """A candidate does not go back to the master it declared silent (its
        answers may already have elected another one at a newer epoch)."""
        return src == self.abandoned and epoch == self.epoch

    # -- each role's handlers (the master's are in `Master`) --

    def _slave_tick(self, s: Slave) -> None:
        if self.now - s.heard >= self.timing.failover:
            self._start_election(f"master {s.master} silent")

    def _candidate_tick(self, s: Candidate) -> None:
        if s.proposal is not None:
            if self.now - s.proposal.started_tick < self.timing.election:
                return
            s.proposal = None  # not every in-sync node accepted in time
            self._start_round(s)
            return
        e = s.election
        if e is None or self.now - e.started_tick >= self.timing.election:
            if e is not None:
                self._decide(s)
            if self.state is s:
                self._start_round(s)

    def _slave_unreachable(self, s: Slave, peer: str) -> None:
        if s.probing and peer == s.master:
            self._start_election(f"master {peer} closed its stream and does not answer")

    def _candidate_unreachable(self, s: Candidate, peer: str) -> None:
        if s.proposal is not None:
            if s.proposal.refuse(peer, self.id):
                s.proposal = None  # a node it counted on is gone: look again
                self._start_round(s)
            return
        e = s.election
        if e is None:
            return
        if peer not in e.retried and seed_address(peer) is None:
            # one failed call may be a hiccup of a live node: ask again
            # before counting it out of the election
            e.retried.add(peer)
            self._send(CheckMaster(src=self.id, dst=peer, epoch=self.epoch))
            return
        e.unreachable.add(peer)
        asked = self._others()
        if asked and e.complete(asked):
            self._decide(s)

    def _retired_update_slaves(self, s: Retired, m: UpdateSlaves) -> None:
        # a master finishing its removal (or confirming its in-sync set
        # after a freeze) waits for this node: it has the change if that
        # membership leaves it out
        out = self.id not in m.membership.addresses
        self._ack_update(m.src, m.membership.version, out)

    def _append_to_master(self, s: Master, m: Append) -> None:
        if m.epoch < self.epoch:
            self._reply_append(m.src, ok=False)
            return
        # same epoch, another master: cannot happen
        raise RemoteProtocolError(f"two masters at epoch {m.epoch}: {self.id} and {m.src}")

    def _append_to_candidate(self, s: Candidate, m: Append) -> None:
        if m.epoch < self.epoch or self._from_abandoned(m.src, m.epoch):
            # (from the abandoned master) no entries taken, but an answer: a
            # silent node would be dropped from the in-sync set, and the old
            # master could then acknowledge alone what this one never gets
            self._reply_append(m.src, ok=False)
            return
        self._on_append(s, m)

    def _on_append(self, s: Slave | Candidate, m: Append) -> None:
        if m.epoch < self.epoch:
            self._reply_append(m.src, ok=False)
            return
        slave = self._follow(m.src, f"append from {m.src}")
        slave.heard = self.now
        slave.probing = False
        self._ask_membership(m)
        log = self.log
        self.eligible = m.in_sync and not self.diverged and m.echo >= self.probe
        if self.diverged:
            self._reply_append(m.src, ok=False, diverged=True)
            return
        if m.prev.index > log.last.index:  # a gap: tell where we are
            self._reply_append(m.src, ok=False)
            return
        if log.epoch_at(m.prev.index) != m.prev.epoch or (
            m.count
            and log.last.index > m.prev.index
            and log.epoch_at(min(log.last.index, m.prev.index + m.count)) != m.entry_epoch
        ):
            self.diverged = True
            self.eligible = False
            self._out(ResetLog())
            self._reply_append(m.src, ok=False, diverged=True)
            return
        end = m.prev.index + m.count
        # only what the master's Append vouches for (its tail may be a
        # stale one of an older master's, durable here all the same)
        self.commit = max(self.commit, min(m.commit, end))
        if end > log.last.index:
            # what is durable here already is reported before the new
            # entries' write, not behind it (the driver's pump is in order)
            self._report_commit()
            skip = log.last.index - m.prev.index
            first = log.last.index + 1
            log.append(first, Pos(m.entry_epoch, end))
            self._out(
                AppendEntries(
                    prev=log.pos_at(first - 1), count=m.count - skip, entry_epoch=m.entry_epoch
                )
            )
            return  # the reply goes out when the driver reports the entries durable
        self._reply_append(m.src, ok=True)
        self._report_commit()

    def _ask_membership(self, m: Append) -> None:
        """A master's membership is of its epoch at least: a slave that holds
        an older one missed the master's claim (an UpdateMaster lost in a
        partition, or sent while it was down), and a finished change is not
        sent again. It asks the master, whose answer carries its membership
        (_slave_check_reply)."""
        known = self.membership
        # (a node joining has none yet: its join's change brings it one)
        if (
            known.members
            and known.epoch < m.epoch
            and self.now - self.asked_membership >= self.timing.retry
        ):
            self.asked_membership = self.now
            self._send(CheckMaster(src=self.id, dst=m.src, epoch=self.epoch))

    def _report_commit(self) -> None:
        """Slave: tells the driver which of its entries are committed and
        durable here (it serves them to its own readers)."""
        top = min(self.commit, self.log.durable.index)
        if top > self.reported:
            self.reported = top
            self._out(Committed(index=top))

    def _refuse_register(self, s: Slave | Candidate, m: Register) -> None:
        """Not a master: it says which node is, if it knows."""
        reply = RegisterReply(src=self.id, dst=m.src, epoch=self.epoch, ok=False, master=s.master)
        self._send(reply)

    def _on_register_reply(self, s: Candidate, m: RegisterReply) -> None:
        if not m.ok and m.master and m.master != m.src:
            self._register(m.master)

    def _on_check_master(self, s: State, m: CheckMaster) -> None:
        reply = CheckMasterReply(
            src=self.id,
            dst=m.src,
            epoch=self.epoch,
            role=self.role,
            master=self.master,
            last=self.durable,
            eligible=self.eligible,
            membership=self.membership,
        )
        self._send(reply)

    def _master_check_reply(self, s: Master, m: CheckMasterReply) -> None:
        if (p := s.progress.get(m.src)) is not None:
            p.heard(self.now)  # it answered the master's question: it lives

    def _slave_check_reply(self, s: Slave, m: CheckMasterReply) -> None:
        master = m.src == s.master and m.role is Role.MASTER and m.epoch == self.epoch
        if master and m.membership.version > self.membership.version:  # one it missed
            self._set_membership(m.membership)
            if self.id not in self.membership.in_sync:
                self.eligible = False
        if s.probing and m.src == s.master:
            s.probing = False  # the master answered: it lives
            if m.role is not Role.MASTER:
                self._start_election(f"master {m.src} closed its stream and stepped down")

    def _candidate_check_reply(self, s: Candidate, m: CheckMasterReply) -> None:
        if s.election is None:
            return
        s.election.replies[m.src] = m
        if s.election.complete(self._others()):
            self._decide(s)

    def _on_update_master(self, s: State, m: UpdateMaster) -> None:
        fresh = m.epoch > self.epoch or (m.epoch == self.epoch and self.voted == (m.epoch, m.src))
        if fresh and (m.membership.majority or self.membership.majority):
            # one claimant an epoch (above), a voter of the newest membership
            # either side knows, whose log is at least as up to date as this
            # node's: then it holds every entry a majority had durable
            newest = max(self.membership, m.membership, key=lambda x: x.version)
            fresh = m.src in newest.in_sync and m.last >= self.log.durable
        # In in-sync mode a proposer's log may be shorter than this node's:
        # what this one has more was never acknowledged, since the proposer
        # is in sync. But not shorter than what this node knows was
        # acknowledged: a proposer that decided on answers from before this
        # node went on (elected itself on a membership that the proposer had
        # a newer version of, and acknowledged writes) would otherwise drop them.
        known = self.log.pos_at(min(self.commit, self.log.durable.index))
        if not fresh or m.last < known:
            # another proposer or master at this epoch, or an older epoch: refused
            self._ack_update(m.src, m.membership.version, False)
            return
        self._vote(m.epoch, m.src)
        if m.epoch > self.epoch:
            self._adopt_epoch(m.epoch, f"{m.src} proposes itself at epoch {m.epoch}")
        slave = self._follow(m.src, f"{m.src} announced itself master at epoch {m.epoch}")
        slave.heard = self.now
        self._set_membership(m.membership)
        self.eligible = self.eligible and self.id in m.membership.in_sync
        self._ack_update(m.src, m.membership.version, True)

    def _update_slaves_to_master(self, s: Master, m: UpdateSlaves) -> None:
        if m.src != self.id:  # another master: refused
            self._ack_update(m.src, m.membership.version, False)
            return
        self._on_update_slaves(s, m)

    def _update_slaves_to_candidate(self, s: Candidate, m: UpdateSlaves) -> None:
        if m.epoch >= self.epoch and self._from_abandoned(m.src, m.epoch):
            # refused, but answered (see _append_to_candidate); what it says
            # of the in-sync set is news all the same
            self._set_membership(m.membership)
            if self.id not in self.membership.in_sync:
                self.eligible = False
            self._ack_update(m.src, m.membership.version, False)
            return
        self._on_update_slaves(s, m)

    def _on_update_slaves(self, s: State, m: UpdateSlaves) -> None:
        if m.epoch < self.epoch:
            self._ack_update(m.src, m.membership.version, False)
            return
        slave = self._follow(m.src, f"membership from {m.src}")
        slave.heard = self.now
        slave.probing = False
        self._set_membership(m.membership)
        if self.id not in m.membership.in_sync:
            self.eligible = False
        self._ack_update(m.src, m.membership.version, True)

    def _candidate_update_ack(self, s: Candidate, m: UpdateAck) -> None:
        pr = s.proposal
        if pr is None or m.version != pr.membership.version:
            return
        if m.ok:
            pr.accept(m.src)
            self._maybe_take_office(s)
        elif pr.refuse(m.src, self.id):
            s.proposal = None  # refused: look again
            self._start_round(s)


def _master(name: str) -> Callable[[Core, Any, Any], None]:
    """The master role object's handler `name`, in a table of the core's."""
    return lambda core, s, arg: getattr(s, name)(arg)


# what each role does with each message (none: ignored)
_STEP: dict[tuple[type, type], Callable[[Core, Any, Any], None]] = {
    (Master, Append): Core._append_to_master,
    (Slave, Append): Core._on_append,
    (Candidate, Append): Core._append_to_candidate,
    (Master, AppendReply): _master("on_append_reply"),
    (Master, Register): _master("on_register"),
    (Slave, Register): Core._refuse_register,
    (Candidate, Register): Core._refuse_register,
    (Candidate, RegisterReply): Core._on_register_reply,
    (Master, CheckMaster): Core._on_check_master,
    (Slave, CheckMaster): Core._on_check_master,
    (Candidate, CheckMaster): Core._on_check_master,
    # it only says so: an election waiting for every in-sync node's answer
    # learns this one is out, and what membership it saw last
    (Retired, CheckMaster): Core._on_check_master,
    (Master, CheckMasterReply): Core._master_check_reply,
    (Slave, CheckMasterReply): Core._slave_check_reply,
    (Candidate, CheckMasterReply): Core._candidate_check_reply,
    (Master, UpdateMaster): Core._on_update_master,
    (Slave, UpdateMaster): Core._on_update_master,
    (Candidate, UpdateMaster): Core._on_update_master,
    (Master, UpdateSlaves): Core._update_slaves_to_master,
    (Slave, UpdateSlaves): Core._on_update_slaves,
    (Candidate, UpdateSlaves): Core._update_slaves_to_candidate,
    (Retired, UpdateSlaves): Core._retired_update_slaves,
    (Master, UpdateAck): _master("on_update_ack"),
    (Candidate, UpdateAck): Core._candidate_update_ack,
}

_TICK: dict[type, Callable[[Core, Any], None]] = {
    Master: lambda core, s: s.tick(),
    Slave: Core._slave_tick,
    Candidate: Core._candidate_tick,
}

_UNREACHABLE: dict[type, Callable[[Core, Any, str], None]] = {
    Master: _master("unreachable"),
    Slave: Core._slave_unreachable,
    Candidate: Core._candidate_unreachable,
}
