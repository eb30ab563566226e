"""Types of the role core: log positions, membership, messages, actions.

Everything here is plain data. The core never sees an entry's payload: it
tracks log positions (epoch, index) and leaves the bytes to the driver.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType, TypeVar

from chatd.core.quorum import IN_SYNC, Mode, Voters

SEED_PREFIX = "@"  # a destination "@host:port" is a seed's address, not a node id
_MODES = {m.value: m for m in Mode}
SeedDst = NewType("SeedDst", str)  # a message's `dst` naming a seed (seed_dst, seed_address)


def seed_dst(address: str) -> SeedDst:
    """The destination of a message to the seed at `address` (a node known
    by its address only, before or outside the membership)."""
    return SeedDst(SEED_PREFIX + address)


def seed_address(dst: str) -> str | None:
    """The address a seed destination names; None when `dst` is a node id."""
    return dst[len(SEED_PREFIX) :] if dst.startswith(SEED_PREFIX) else None


class Role(enum.Enum):
    MASTER = "master"
    SLAVE = "slave"
    CANDIDATE = "candidate"  # looking for a master or electing one
    RETIRED = "retired"  # removed from the cluster for good


@dataclass(frozen=True, order=True, slots=True)
class Pos:
    """A log position; positions order by (epoch, index)."""

    epoch: int = 0
    index: int = 0


@dataclass(frozen=True, slots=True)
class Membership:
    """Members (id -> address) and the in-sync set, as a master decided them.
    Versions order by (epoch, seq); a node keeps the newest it has seen."""

    epoch: int = 0
    seq: int = 0
    members: tuple[tuple[str, str], ...] = ()
    in_sync: frozenset[str] = frozenset()
    retired: frozenset[str] = frozenset()  # removed for good: never members again
    quorum: str = IN_SYNC  # chosen when the cluster is founded (chatd/core/quorum.py)

    @property
    def mode(self) -> Mode:
        try:  # (read on every event of a master's: a dict, not the enum's lookup)
            return _MODES[self.quorum]
        except KeyError:
            return Mode(self.quorum)  # (raises the enum's ValueError)

    @property
    def majority(self) -> bool:
        return self.mode is Mode.MAJORITY

    def voters(self, pending: Membership | None = None) -> Voters:
        """Its in-sync set (with `pending`'s, a change under way), by its mode."""
        return Voters(self.mode, self.in_sync, None if pending is None else pending.in_sync)

    @property
    def version(self) -> tuple[int, int]:
        return (self.epoch, self.seq)

    @property
    def addresses(self) -> dict[str, str]:
        return dict(self.members)

    def with_changes(
        self,
        epoch: int,
        *,
        members: dict[str, str] | None = None,
        in_sync: frozenset[str] | None = None,
    ) -> Membership:
        seq = self.seq + 1 if epoch == self.epoch else 0
        m = self.addresses if members is None else members
        return Membership(
            epoch=epoch,
            seq=seq,
            members=tuple(sorted(m.items())),
            in_sync=self.in_sync if in_sync is None else in_sync,
            retired=self.retired,
            quorum=self.quorum,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Durable:
    """What a node keeps on disk and gets back after a crash."""

    epoch: int = 0
    last: Pos = Pos()
    epochs: tuple[tuple[int, int], ...] = ()  # (epoch, first index) of each run
    membership: Membership = Membership()
    log_start: int = 1  # the lowest index the log still holds (older ones were truncated)


# -- messages between nodes (each maps onto one cluster RPC) --


@dataclass(frozen=True, slots=True, kw_only=True)
class Append:
    """Master -> slave: entries prev.index+1 .. prev.index+count, all of
    `entry_epoch` (the master cuts batches at epoch changes); count 0 is a
    heartbeat. Carries the commit index and the slave's in-sync flag."""

    src: str
    dst: str
    epoch: int
    prev: Pos
    count: int
    entry_epoch: int
    commit: int
    in_sync: bool
    echo: int = 0  # the last `probe` this master got from the slave


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendReply:
    """Slave -> master: `durable` is the slave's last durable position.
    ok=False with diverged=True: the slave's log does not extend the master's
    (it needs a snapshot); ok=False otherwise: a gap or an older epoch."""

    src: str
    dst: str
    epoch: int
    ok: bool
    durable: Pos
    diverged: bool = False
    probe: int = 0  # raised after a freeze; an Append echoing it confirms "in sync" anew


@dataclass(frozen=True, slots=True, kw_only=True)
class Register:
    """A node asks the master to stream it the log (join or rejoin)."""

    src: str
    dst: str
    epoch: int
    address: str
    last: Pos


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterReply:
    src: str
    dst: str
    epoch: int
    ok: bool
    master: str  # who is master, when the answer is "not me"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckMaster:
    src: str
    dst: str
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckMasterReply:
    """A node's answer during an election: who it follows and where its log is.
    `eligible`: it was confirmed in sync by the master it followed and has not
    restarted since, so it holds every acknowledged entry."""

    src: str
    dst: str
    epoch: int
    role: Role
    master: str
    last: Pos
    eligible: bool
    membership: Membership


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateMaster:
    """A node proposes itself as master at a new epoch (the election winner),
    with its membership and the last position of its log. A node accepts at
    most one proposer per epoch, and only one whose log is not behind its
    own; the winner becomes master once every node of its in-sync set has
    accepted (UpdateAck ok)."""

    src: str
    dst: str
    epoch: int
    membership: Membership
    last: Pos = Pos()


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateSlaves:
    """The master publishes membership and the in-sync set."""

    src: str
    dst: str
    epoch: int
    membership: Membership


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateAck:
    """Reply to UpdateMaster / UpdateSlaves: the version now durable."""

    src: str
    dst: str
    epoch: int
    version: tuple[int, int]
    ok: bool


Message = (
    Append
    | AppendReply
    | Register
    | RegisterReply
    | CheckMaster
    | CheckMasterReply
    | UpdateMaster
    | UpdateSlaves
    | UpdateAck
)


# -- actions: what the driver must do, in order --


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistEpoch:
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistMembership:
    membership: Membership


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntries:
    """Slave: make these received entries durable, then call core.persisted().
    The driver holds the payloads that came with the Append."""

    prev: Pos
    count: int
    entry_epoch: int


T = TypeVar("T")


def received(action: AppendEntries, append: Append, payload: tuple[T, ...]) -> tuple[T, ...]:
    """The entries `action` asks to make durable, out of the `payload` the
    `append` carried (its entries prev.index+1 .. prev.index+count; the
    action may skip those the slave held already)."""
    offset = action.prev.index - append.prev.index
    return payload[offset : offset + action.count]


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class SendSnapshot:
    """Master: stream a snapshot of the state to `dst`; its log then ends at
    the snapshot's position, and replication continues from there."""

    dst: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetLog:
    """Slave: this node's log diverged from the master's; wait for a snapshot."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Committed:
    """Entries up to `index` are acknowledged (replicated to every in-sync node)."""

    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Settled:
    """Majority mode: entries up to `index` are durable on every voter heard
    from lately, not only on a majority (the writer paces its batches by it;
    it promises nothing)."""

    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleChanged:
    role: Role
    epoch: int
    master: str
    reason: str
    elected: bool = False  # this node became master by winning an election


@dataclass(frozen=True, slots=True, kw_only=True)
class InSyncChanged:
    in_sync: frozenset[str]
    reason: str
    left: tuple[tuple[str, str], ...] = ()  # master: (node, why) for each node it dropped


@dataclass(frozen=True, slots=True, kw_only=True)
class ElectionStalled:
    """A candidate that cannot choose a master says why (for the log): the
    first time once it has looked for one for the failover timeout, then
    again when the reason changes (at most once a failover timeout) or
    every `STALL_REPEAT` failover timeouts while it lasts."""

    reason: str


Action = (
    PersistEpoch
    | PersistMembership
    | AppendEntries
    | Send
    | SendSnapshot
    | ResetLog
    | Committed
    | Settled
    | RoleChanged
    | InSyncChanged
    | ElectionStalled
)


@dataclass(slots=True)
class Timing:
    """In ticks (one tick = one heartbeat interval)."""

    failover: int = 5  # silence after which a peer is presumed dead
    election: int = 3  # how long to collect CheckMaster answers
    retry: int = 3  # resend an unanswered Append / Update after this long
    max_batch: int = 4096  # entries per Append
    max_lag: int = 0  # a slave holding the commits back this long leaves the in-sync set (0: never)
    lag_share: float = 0.5  # ... at this share of the ticks (chatd/core/lag.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowerStatus:
    """The master's view of one other member."""

    match: int  # last index known durable there
    alive: bool  # heard from within the failover timeout
    left: str = ""  # why the master dropped it from the in-sync set ("" if not)
    heard: bool = True  # it answered this master once: `match` is known (else 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """A read-only view of the core, for status, health and metrics."""

    id: str
    role: Role
    epoch: int
    master: str  # "" while there is none
    master_address: str
    last: Pos
    durable: Pos
    commit: int
    log_start: int
    eligible: bool
    membership: Membership
    pending: Membership | None  # on a master: a membership change under way
    followers: dict[str, FollowerStatus]  # on a master: every other member
