"""Elections: what a candidate collects, and the decision, as a pure function.

A node whose master fell silent asks every member who is master (CheckMaster)
and collects the answers in an `Election`. `decide` turns them into a
decision: follow a live master if one answered; else the live in-sync node
with the highest (epoch, index) of its last entry (ties to the lowest node
id) is the winner, and if that is this node it proposes itself at a new
epoch. Only nodes confirmed in sync since they last started count, unless
every member of the in-sync set answered (a full restart). The winner takes
office once every in-sync node not known to be down accepted (`Proposal`);
one that answered the round is not known to be down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from chatd.core.types import CheckMasterReply, Membership, Pos, Role


@dataclass(slots=True)
class Election:
    """One round of asking every member."""

    started_tick: int
    replies: dict[str, CheckMasterReply] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)
    retried: set[str] = field(default_factory=set)  # asked again once after a failure

    def complete(self, members: set[str]) -> bool:
        """Every member answered or is known to be down."""
        return members <= set(self.replies) | self.unreachable


@dataclass(slots=True)
class Proposal:
    """A winner's claim in flight: it becomes master when `awaiting` empties
    (in majority mode: once a majority of the voters, itself counted, accepted)."""

    epoch: int
    membership: Membership
    awaiting: set[str]
    started_tick: int
    reason: str
    accepted: set[str] = field(default_factory=set)

    def accept(self, nid: str) -> None:
        self.awaiting.discard(nid)
        self.accepted.add(nid)

    def refuse(self, nid: str, me: str) -> bool:
        """`nid` refused or cannot be reached: True if the claim is lost."""
        if not self.membership.majority:
            return nid in self.awaiting
        self.awaiting.discard(nid)
        return not self.membership.voters().agreed(self.accepted | self.awaiting | {me})

    def won(self, me: str) -> bool:
        if not self.membership.majority:
            return not self.awaiting
        return self.membership.voters().agreed(self.accepted | {me})


@dataclass(frozen=True, slots=True, kw_only=True)
class Voter:
    """What the deciding node knows of itself."""

    id: str
    address: str
    epoch: int
    durable: Pos
    eligible: bool
    diverged: bool
    membership: Membership
    seeds: tuple[str, ...] = ()  # the addresses of --join (a node that never joined asks them)


@dataclass(frozen=True, slots=True, kw_only=True)
class Won:
    """This node won: it proposes itself as master at `epoch`."""

    epoch: int
    membership: Membership
    awaiting: frozenset[str]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """`master`: a live master answered, follow it (nothing else counts).
    `learned`: a newer membership than the voter's, to adopt first.
    `winner`: who should be master ("" if nobody can be chosen yet);
    `won` is set when that is the voter itself. `stuck`: with no master and
    no winner, why this node cannot choose one (for the operator's log)."""

    master: str = ""
    learned: Membership | None = None
    winner: str = ""
    won: Won | None = None
    stuck: str = ""


def _why_not_me(me: Voter, latest: Membership, replies: Sequence[CheckMasterReply]) -> str:
    """Why a voter that may not be chosen sees no master coming: "" if a
    node that may be chosen answered (that one decides, or says why not)."""
    if any(r.src in latest.in_sync and r.role is not Role.RETIRED for r in replies):
        return ""
    if me.id in latest.retired:
        return "it was removed from the cluster"
    if me.diverged:
        return "its log diverged from the last master's; it waits for a snapshot"
    if not latest.in_sync:  # it never joined, and no node that answered knows a cluster
        if not me.seeds:
            return "it has not joined a cluster and has no seed to look for one (--join)"
        return (
            f"it has not joined a cluster yet; it looks for the master via its seeds "
            f"({', '.join(me.seeds)}), and none of them answered"
        )
    gone = ", ".join(sorted(latest.in_sync - {me.id})) or "the other nodes"
    return (
        f"it is not in the in-sync set {sorted(latest.in_sync)} (membership "
        f"{latest.epoch}.{latest.seq}), and none of those answered: only one of them may"
        f" become master; start {gone} again"
    )


def decide(me: Voter, replies: Sequence[CheckMasterReply], unreachable: set[str]) -> Decision:
    masters = [r for r in replies if r.role is Role.MASTER and r.epoch >= me.epoch]
    if masters:
        return Decision(master=max(masters, key=lambda r: r.epoch).src)
    seen = [me.membership, *(r.membership for r in replies)]
    latest = max(seen, key=lambda m: m.version)
    learned = latest if latest.version > me.membership.version else None
    if latest.majority:
        return _decide_majority(me, replies, latest, learned)
    # Two proposers of one epoch can leave nodes with different memberships
    # of the same version. Which one (if any) took office is not known here,
    # so every in-sync node of any of them counts, and all of them must
    # answer (nobody's word of being in sync decides).
    rivals = [m for m in seen if m.version == latest.version and m != latest]
    if rivals:
        latest = replace(latest, in_sync=latest.in_sync.union(*(m.in_sync for m in rivals)))
    if me.id in latest.retired or me.id not in latest.in_sync or me.diverged:
        return Decision(learned=learned, stuck=_why_not_me(me, latest, replies))
    # A retired node answers but takes no part: it acknowledged nothing
    # after it retired, and what it acknowledged before, the other in-sync
    # nodes acknowledged too.
    out = {r.src for r in replies if r.role is Role.RETIRED}
    info = {r.src: r for r in replies if r.src in latest.in_sync and r.src not in out}
    candidates = {me.id: (me.durable, me.eligible)}
    candidates |= {nid: (r.last, r.eligible) for nid, r in info.items()}
    pool = [] if rivals else [nid for nid, (_, ok) in candidates.items() if ok]
    if not pool:  # nobody confirmed in sync: only a complete in-sync set may choose
        missing = latest.in_sync - set(candidates) - out
        if missing:
            return Decision(
                learned=learned, stuck=_incomplete(sorted(candidates), latest, missing, rivals)
            )
        pool = list(candidates)
    winner = min(pool, key=lambda n: (-candidates[n][0].epoch, -candidates[n][0].index, n))
    if winner != me.id:
        return Decision(learned=learned, winner=winner)
    epoch = max([me.epoch, *(r.epoch for r in replies)]) + 1
    members = {n: a for n, a in latest.members if n not in out}
    members[me.id] = me.address
    proposed = latest.with_changes(epoch, members=members, in_sync=frozenset(pool))
    if out:
        proposed = replace(proposed, retired=proposed.retired | out)
    # Every in-sync node not known to be down must accept: two winners of
    # one epoch (each missing the other's answer) cannot both get that. A
    # node that answered this round is not known to be down, whatever
    # failure was reported too (a call of an older round, a lost message):
    # it lives, and may have restarted on an older membership in which it
    # alone is in sync, and claim this epoch with nobody's acceptance.
    down = unreachable - {r.src for r in replies}
    awaiting = (set(latest.in_sync) & set(members)) - {me.id} - down
    won = Won(
        epoch=epoch,
        membership=proposed,
        awaiting=frozenset(awaiting),
        reason=f"elected by {sorted(pool)} at epoch {epoch}",
    )
    return Decision(learned=learned, winner=winner, won=won)


def _incomplete(
    answered: list[str], latest: Membership, missing: frozenset[str], rivals: list[Membership]
) -> str:
    head = (
        f"memberships of version {latest.epoch}.{latest.seq} disagree on the in-sync set"
        if rivals
        else f"none of {answered} is confirmed in sync by a master since it started"
    )
    gone = ", ".join(sorted(missing))
    return (
        f"{head}, and {gone} of the in-sync set {sorted(latest.in_sync)} did not answer:"
        f" only with {'their' if len(missing) > 1 else 'its'} answer can the cluster tell which"
        f" node holds every acknowledged write; start {gone} again"
    )


def _decide_majority(
    me: Voter, replies: Sequence[CheckMasterReply], latest: Membership, learned: Membership | None
) -> Decision:
    """Majority mode: with answers from a majority of the voters (itself
    counted), the one with the most up-to-date log among them (ties to the
    lowest id) should be master; if that is this node, it claims a new
    epoch, and takes office once a majority accepted. Every voter accepts
    one claimant an epoch, and only one whose log is at least as up to date
    as its own (Core._on_update_master): any two majorities share a node, so
    the new master holds every entry a majority had durable. Without a
    majority's answers nobody is chosen: a minority side never elects, nor
    raises its epoch, so it does not unsettle the majority when it heals.
    The voters stay as they are: silence never shrinks them."""
    voters = latest.in_sync
    if me.id in latest.retired or me.id not in voters or me.diverged:
        return Decision(learned=learned, stuck=_why_not_me(me, latest, replies))
    info = {r.src: r for r in replies if r.src in voters and r.role is not Role.RETIRED}
    if not latest.voters().agreed({me.id} | info.keys()):
        heard = sorted({me.id} | info.keys())
        return Decision(
            learned=learned,
            stuck=f"heard from {heard} only of the voters {sorted(voters)}: a majority must answer",
        )
    logs = {me.id: me.durable} | {n: r.last for n, r in info.items()}
    winner = min(logs, key=lambda n: (-logs[n].epoch, -logs[n].index, n))
    if winner != me.id:
        return Decision(learned=learned, winner=winner)
    epoch = max([me.epoch, *(r.epoch for r in replies)]) + 1
    won = Won(
        epoch=epoch,
        membership=latest.with_changes(epoch),
        awaiting=frozenset(voters - {me.id}),
        reason=f"elected by a majority of {sorted(voters)} at epoch {epoch}",
    )
    return Decision(learned=learned, winner=winner, won=won)
