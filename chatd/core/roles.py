"""What a node holds only while in one role. A role change swaps the whole
object, so nothing of the role it leaves can linger into the next one."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatd.core.election import Election, Proposal
from chatd.core.lag import LagWatch
from chatd.core.membership import Change
from chatd.core.progress import Progress
from chatd.core.types import Role


@dataclass(slots=True)
class Master:
    progress: dict[str, Progress]  # one per other member
    lag: LagWatch  # which in-sync slaves hold the commits back
    change: Change | None = None  # a membership change under way
    # after a freeze: in-sync nodes not heard from since, and the membership
    # version whose acknowledgement confirms them
    unconfirmed: set[str] = field(default_factory=set)
    confirm_version: tuple[int, int] = (0, 0)
    settled: int = 0  # majority mode: the last Settled index told
    role: Role = Role.MASTER

    def silent(self, nodes: frozenset[str] | set[str], now: int, failover: int) -> set[str]:
        """The nodes not heard from for the failover timeout: presumed dead."""
        return {
            n for n in nodes if n not in self.progress or self.progress[n].silent(now, failover)
        }


@dataclass(slots=True)
class Slave:
    master: str
    heard: int  # tick of the master's last message
    probing: bool = False  # the master was asked whether it lives, after its stream closed
    role: Role = Role.SLAVE


@dataclass(slots=True)
class Candidate:
    since: int = 0  # the tick it became a candidate
    election: Election | None = None  # the round of CheckMaster under way
    proposal: Proposal | None = None  # this node's claim, once it won
    stalled: tuple[int, str] | None = None  # (tick, reason) of its last ElectionStalled
    role: Role = Role.CANDIDATE


@dataclass(slots=True)
class Retired:
    role: Role = Role.RETIRED


State = Master | Slave | Candidate | Retired
