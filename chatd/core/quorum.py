"""What counts as enough nodes, in each quorum mode.

- `in-sync` (the default, the seed's model): a write is acknowledged once
  every node of the in-sync set has it; a silent node is presumed dead and
  dropped. N+1 nodes survive N fail-stop crashes, but not a partition: the
  two sides cannot tell a cut link from a dead node.
- `majority`: the in-sync set is the set of *voters* (members that have
  caught up once); a write is acknowledged once a majority of the voters
  (the master counted) has it, a master takes office only with a majority's
  acceptance, and one that cannot reach a majority steps down. Silence
  never shrinks the voters. 2f+1 nodes survive f crashes and any partition:
  only a side holding a majority acknowledges anything.

While a membership change is under way, both the current and the proposed
voter sets must agree (each by its own rule): any two quorums of one set
intersect, and so do those of the old and new sets through the joint rule.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# the names of the modes in configuration and on the wire
IN_SYNC = "in-sync"
MAJORITY = "majority"
MODES = (IN_SYNC, MAJORITY)


class Mode(enum.Enum):
    IN_SYNC = IN_SYNC
    MAJORITY = MAJORITY


def needed(mode: Mode, voters: int) -> int:
    """How many of `voters` nodes must agree."""
    return voters // 2 + 1 if mode is Mode.MAJORITY else voters


def agreed(mode: Mode, voters: Iterable[str], yes: Iterable[str] | set[str]) -> bool:
    """Whether the nodes in `yes` are enough of `voters`."""
    v = set(voters)
    return len(v & set(yes)) >= needed(mode, len(v))


def quorum_index(mode: Mode, voters: Iterable[str], matches: Mapping[str, int]) -> int:
    """The highest index durable on enough of `voters` (`matches`: each
    voter's durable index, a missing one counting as 0)."""
    v = sorted(voters)
    if not v:
        return 0
    acked = sorted((matches.get(n, 0) for n in v), reverse=True)
    return acked[needed(mode, len(v)) - 1]


@dataclass(frozen=True, slots=True)
class Voters:
    """The voter sets a decision must satisfy, each by the mode's rule: the
    current in-sync set and, while a change is under way, the pending one."""

    mode: Mode
    current: frozenset[str]
    pending: frozenset[str] | None = None

    @property
    def majority(self) -> bool:
        return self.mode is Mode.MAJORITY

    @property
    def sets(self) -> tuple[frozenset[str], ...]:
        return (self.current,) if self.pending is None else (self.current, self.pending)

    @property
    def everyone(self) -> frozenset[str]:
        """The nodes of either set."""
        return self.current | (self.pending or frozenset())

    @property
    def newest(self) -> frozenset[str]:
        return self.current if self.pending is None else self.pending

    @property
    def smallest(self) -> frozenset[str]:
        return min(self.sets, key=len)

    def agreed(self, yes: Iterable[str]) -> bool:
        """Whether the nodes in `yes` are enough of every set."""
        y = set(yes)
        return all(agreed(self.mode, v, y) for v in self.sets)

    def lost(self, yes: Iterable[str]) -> frozenset[str] | None:
        """The first set that the nodes in `yes` are not enough of (None: none)."""
        y = set(yes)
        return next((v for v in self.sets if not agreed(self.mode, v, y)), None)

    def index(self, matches: Mapping[str, int]) -> int:
        """The highest index durable on enough of every set."""
        return min(quorum_index(self.mode, v, matches) for v in self.sets)
