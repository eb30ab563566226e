"""The shape of one node's log as the core sees it: positions and epoch runs.

The core never holds entries, only where the log ends, what of it is durable,
where it starts (older entries were truncated away) and the epoch of every
index, kept as runs: (epoch, first index) for each stretch of one epoch.
The store and the simulation keep their runs with the same `EpochRuns`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from chatd.core.types import Pos


class EpochRuns:
    """(epoch, first index) of each run of entries of one epoch, in order."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        self.pairs: list[tuple[int, int]] = list(pairs)

    def extend(self, first: int, epoch: int) -> bool:
        """Entries of `epoch` follow from `first` on; True if that starts a run."""
        if self.pairs and self.pairs[-1][0] == epoch:
            return False
        self.pairs.append((epoch, first))
        return True

    def epoch_at(self, index: int) -> int | None:
        """The epoch of `index`, by the runs alone (None before the first run)."""
        found = None
        for epoch, first in self.pairs:
            if first > index:
                break
            found = epoch
        return found

    def end_of_run(self, first: int, epoch: int, end: int) -> int:
        """The last index up to `end` that is still in `first`'s run of `epoch`."""
        for run_epoch, run_first in self.pairs:
            if run_first > first and run_epoch != epoch:
                return min(end, run_first - 1)
        return end


class Log:
    """Where this node's log ends (`last`), what of it is durable here
    (`durable`; a slave appends before its store has the entries), where it
    starts (`start`), and the epoch of every index it holds."""

    __slots__ = ("durable", "last", "runs", "start")

    def __init__(self, last: Pos, runs: Iterable[tuple[int, int]], start: int = 1) -> None:
        self.last = last
        self.durable = last
        self.runs = EpochRuns(runs)
        self.start = start

    def epoch_at(self, index: int) -> int | None:
        """The epoch of the entry at `index`, if this log reaches that far."""
        if index == 0:
            return 0
        if index > self.last.index:
            return None
        return self.runs.epoch_at(index)

    def pos_at(self, index: int) -> Pos:
        return Pos(self.epoch_at(index) or 0, index)

    def holds(self, pos: Pos) -> bool:
        """This log has an entry at `pos` (so it extends a log ending there)."""
        return pos.index <= self.last.index and self.epoch_at(pos.index) == pos.epoch

    def append(self, first: int, last: Pos) -> None:
        """Entries first..last.index, all of last.epoch, were appended."""
        self.runs.extend(first, last.epoch)
        self.last = last

    def persisted(self, durable: Pos) -> bool:
        """The store reports entries up to `durable` durable; True if news."""
        if durable.index <= self.durable.index:
            return False
        self.durable = durable
        return True

    def replace(self, pos: Pos, runs: Iterable[tuple[int, int]], start: int) -> None:
        """A snapshot ending at `pos` replaced the log. Without the snapshot
        log's runs every entry up to `pos` would count as of pos.epoch, and a
        late append of an earlier epoch would look like a divergence."""
        self.last = self.durable = pos
        self.runs = EpochRuns([r for r in runs if r[1] <= pos.index] or [(pos.epoch, pos.index)])
        self.start = start

    def superseded_by(self, runs: EpochRuns, last: int) -> list[tuple[int, int, int]]:
        """What of this log a log ending at `last` with the epoch runs `runs`
        does not hold, as (epoch, first index, last index) stretches in
        order: the entries a node drops when that log (a snapshot's)
        replaces its own. An entry is identified by its (epoch, index): a
        stretch of this log whose indexes hold another epoch there, or that
        reaches past `last`, is another master's tail, never to be
        committed again."""
        cuts = {first for _, first in self.runs.pairs} | {first for _, first in runs.pairs}
        cuts = {c for c in cuts | {last + 1} if c <= self.last.index}
        bounds = sorted(cuts | {1, self.last.index + 1})
        out: list[tuple[int, int, int]] = []
        for first, nxt in itertools.pairwise(bounds):
            mine = self.runs.epoch_at(first)
            if mine is None or (first <= last and runs.epoch_at(first) == mine):
                continue
            if out and out[-1][0] == mine and out[-1][2] == first - 1:
                out[-1] = (mine, out[-1][1], nxt - 1)
            else:
                out.append((mine, first, nxt - 1))
        return out

    def batch(self, first: int, max_count: int) -> tuple[int, int] | None:
        """(epoch, last index) of the next batch to send from `first`: one
        epoch at most, `max_count` entries at most. None if `first` is
        no longer held (truncated away): the follower needs a snapshot."""
        epoch = self.epoch_at(first)
        if epoch is None or first < self.start:
            return None
        end = min(self.last.index, first + max_count - 1)
        return epoch, self.runs.end_of_run(first, epoch, end)
