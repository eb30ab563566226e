"""Membership changes a master makes: joins, removals, in-sync set changes.

A change is proposed as a new membership version and takes effect only once
both the current and the new in-sync set have it durable, each by its
quorum rule (chatd/core/quorum.py: every node of the set in `in-sync` mode,
a majority in `majority` mode; joint consensus in miniature): until then a
commit needs both sets. In `in-sync` mode a node the change drops from the
in-sync set must have it too, so that it knows it is out, unless it is
silent (presumed dead, like any silent node).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chatd.core.quorum import Voters
from chatd.core.types import Membership


@dataclass(slots=True)
class Change:
    """The master's membership change in flight."""

    membership: Membership
    awaiting: set[str]  # nodes whose acknowledgement it still needs
    reason: str
    sent_tick: int
    old: frozenset[str] = frozenset()  # the in-sync set (voters) before the change
    acked: set[str] = field(default_factory=set)

    def ack(self, nid: str) -> None:
        self.awaiting.discard(nid)
        self.acked.add(nid)

    def done(self, me: str) -> bool:
        """Durable on enough of both the old and the new in-sync set."""
        if not self.membership.majority:
            return not self.awaiting
        yes = self.acked | {me}
        return Voters(self.membership.mode, self.old, self.membership.in_sync).agreed(yes)


def propose(
    current: Membership,
    pending: Membership | None,
    *,
    me: str,
    epoch: int,
    members: Mapping[str, str],
    in_sync: frozenset[str],
    retired: frozenset[str] | None,
    skip: frozenset[str] | set[str],
    reason: str,
    now: int,
) -> Change:
    """The change from `current` (with `pending` replaced, if one was under
    way) to `members` and `in_sync`, at this master's `epoch`."""
    seqs = [m.seq for m in (current, pending) if m is not None and m.epoch == epoch]
    proposed = Membership(
        epoch=epoch,
        seq=max(seqs) + 1 if seqs else 0,
        members=tuple(sorted(members.items())),
        in_sync=in_sync,
        retired=(pending or current).retired if retired is None else retired,
        quorum=current.quorum,
    )
    leaving = current.in_sync - in_sync - skip  # dropped (or removed), and not dead
    return Change(proposed, (set(in_sync) | leaving) - {me}, reason, now, current.in_sync)
