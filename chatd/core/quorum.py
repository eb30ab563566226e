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

from collections.abc import Iterable, Mapping

IN_SYNC = "in-sync"
MAJORITY = "majority"
MODES = (IN_SYNC, MAJORITY)


def needed(mode: str, voters: int) -> int:
    """How many of `voters` nodes must agree."""
    return voters // 2 + 1 if mode == MAJORITY else voters


def agreed(mode: str, voters: Iterable[str], yes: Iterable[str] | set[str]) -> bool:
    """Whether the nodes in `yes` are enough of `voters`."""
    v = set(voters)
    return len(v & set(yes)) >= needed(mode, len(v))


def quorum_index(mode: str, voters: Iterable[str], matches: Mapping[str, int]) -> int:
    """The highest index durable on enough of `voters` (`matches`: each
    voter's durable index, a missing one counting as 0)."""
    v = sorted(voters)
    if not v:
        return 0
    acked = sorted((matches.get(n, 0) for n in v), reverse=True)
    return acked[needed(mode, len(v)) - 1]
