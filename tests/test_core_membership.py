"""chatd.core.membership.propose: version numbering, who must acknowledge,
and the retired set."""

from __future__ import annotations

import pytest

from chatd.core.membership import propose
from chatd.core.types import Membership

ADDR = {n: f"{n}:1" for n in ("n1", "n2", "n3", "n4")}


def ms(epoch: int, seq: int, members: str, in_sync: str, retired: str = "") -> Membership:
    return Membership(
        epoch=epoch,
        seq=seq,
        members=tuple((n, ADDR[n]) for n in sorted(members.split())),
        in_sync=frozenset(in_sync.split()),
        retired=frozenset(retired.split()),
    )


CURRENT = ms(2, 3, "n1 n2 n3", "n1 n2 n3")


@pytest.mark.parametrize(
    ("current", "pending", "epoch", "version"),
    [
        (CURRENT, None, 2, (2, 4)),  # the same epoch: seq + 1
        (CURRENT, None, 3, (3, 0)),  # a new epoch starts at 0
        (CURRENT, ms(2, 4, "n1 n2", "n1 n2"), 2, (2, 5)),  # replaces the pending 2.4
        (CURRENT, ms(2, 4, "n1 n2", "n1 n2"), 3, (3, 0)),
        (ms(2, 3, "n1 n2", "n1"), ms(3, 0, "n1 n2", "n1"), 3, (3, 1)),
        (ms(2, 3, "n1 n2", "n1"), ms(3, 5, "n1 n2", "n1"), 3, (3, 6)),
    ],
)
def test_version_numbering(
    current: Membership, pending: Membership | None, epoch: int, version: tuple[int, int]
) -> None:
    c = propose(
        current,
        pending,
        me="n1",
        epoch=epoch,
        members=current.addresses,
        in_sync=current.in_sync,
        retired=None,
        skip=frozenset(),
        reason="r",
        now=7,
    )
    assert c.membership.version == version
    assert (c.reason, c.sent_tick) == ("r", 7)


@pytest.mark.parametrize(
    ("members", "in_sync", "skip", "awaiting"),
    [
        # the new in-sync set, but not me
        ("n1 n2 n3", "n1 n2 n3", "", {"n2", "n3"}),
        # a node joining as a member only: not in sync, not awaited
        ("n1 n2 n3 n4", "n1 n2 n3", "", {"n2", "n3"}),
        # a node leaving the in-sync set but staying a member (a slow one)
        # must learn it is out: it might otherwise count itself eligible
        ("n1 n2 n3", "n1 n2", "", {"n2", "n3"}),
        # ... unless it is silent (presumed dead)
        ("n1 n2 n3", "n1 n2", "n3", {"n2"}),
        # a node leaving the cluster while in sync must learn it is out
        ("n1 n2", "n1 n2", "", {"n2", "n3"}),
        # ... unless it is silent (presumed dead)
        ("n1 n2", "n1 n2", "n3", {"n2"}),
        # a silent node that is in the new in-sync set is awaited all the same
        ("n1 n2 n3", "n1 n2 n3", "n3", {"n2", "n3"}),
        # nobody else: nothing to wait for
        ("n1", "n1", "n2 n3", set()),
    ],
)
def test_awaiting(members: str, in_sync: str, skip: str, awaiting: set[str]) -> None:
    c = propose(
        CURRENT,
        None,
        me="n1",
        epoch=2,
        members={n: ADDR[n] for n in members.split()},
        in_sync=frozenset(in_sync.split()),
        retired=None,
        skip=frozenset(skip.split()),
        reason="r",
        now=0,
    )
    assert c.awaiting == awaiting
    assert c.membership.members == tuple((n, ADDR[n]) for n in sorted(members.split()))
    assert c.membership.in_sync == frozenset(in_sync.split())


def test_leaving_is_measured_against_the_current_in_sync_set_not_the_pending_one() -> None:
    current = ms(2, 3, "n1 n2 n3", "n1 n2")
    pending = ms(2, 4, "n1 n2 n3", "n1 n2 n3")  # n3 was catching up into the set
    c = propose(
        current,
        pending,
        me="n1",
        epoch=2,
        members={"n1": ADDR["n1"], "n2": ADDR["n2"]},
        in_sync=frozenset({"n1", "n2"}),
        retired=None,
        skip=frozenset(),
        reason="r",
        now=0,
    )
    assert c.awaiting == {"n2"}


@pytest.mark.parametrize(
    ("current", "pending", "retired", "kept"),
    [
        (ms(2, 3, "n1 n2", "n1 n2", "n4"), None, None, {"n4"}),  # carried over
        # from the pending change, which it replaces
        (ms(2, 3, "n1 n2", "n1 n2", "n4"), ms(2, 4, "n1", "n1", "n2 n4"), None, {"n2", "n4"}),
        (ms(2, 3, "n1 n2", "n1 n2", "n4"), None, frozenset({"n3", "n4"}), {"n3", "n4"}),  # given
    ],
)
def test_retired_carried_over(
    current: Membership,
    pending: Membership | None,
    retired: frozenset[str] | None,
    kept: set[str],
) -> None:
    c = propose(
        current,
        pending,
        me="n1",
        epoch=2,
        members=current.addresses,
        in_sync=current.in_sync,
        retired=retired,
        skip=frozenset(),
        reason="r",
        now=0,
    )
    assert c.membership.retired == kept
