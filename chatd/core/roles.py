"""What a node holds only while in one role. A role change swaps the whole
object, so nothing of the role it leaves can linger into the next one.

The master's role object, with its handlers, is `chatd.core.leader.Master`;
the core (chatd/core/machine.py) routes each event to the handler of the
role it is in (its dispatch tables)."""

from __future__ import annotations

from dataclasses import dataclass

from chatd.core.election import Election, Proposal
from chatd.core.leader import Master
from chatd.core.types import Role


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

    @property
    def master(self) -> str:
        return ""


@dataclass(slots=True)
class Retired:
    role: Role = Role.RETIRED

    @property
    def master(self) -> str:
        return ""


State = Master | Slave | Candidate | Retired

__all__ = ["Candidate", "Master", "Retired", "Slave", "State"]
