"""Which snapshots a node takes (`Core.snapshot_offered`), and what installing
one does to the core: the rule the slave's servicer and the simulation share."""

from __future__ import annotations

from chatd.core import Core, Durable, Membership, Pos, Role
from chatd.core.types import Append, AppendReply, Send

MEMBERS = (("n1", "10.0.0.1:1"), ("n2", "10.0.0.2:1"))


def _slave_of_n1() -> Core:
    m = Membership(epoch=2, members=MEMBERS, in_sync=frozenset({"n1", "n2"}))
    c = Core("n2", "10.0.0.2:1", Durable(epoch=2, membership=m))
    heartbeat = Append(
        src="n1",
        dst="n2",
        epoch=2,
        prev=Pos(0, 0),
        count=0,
        entry_epoch=2,
        commit=0,
        in_sync=True,
    )
    c.step(heartbeat)
    c.take_actions()
    assert c.role is Role.SLAVE and c.master == "n1"
    return c


def test_a_slave_takes_a_snapshot_only_from_its_master_at_its_epoch_or_newer() -> None:
    c = _slave_of_n1()
    assert c.snapshot_offered("n1", 2)
    assert c.snapshot_offered("n1", 3)
    assert not c.snapshot_offered("n1", 1)  # an older epoch's master is fenced
    assert not c.snapshot_offered("n3", 2)  # not the master it follows


def test_a_node_with_no_master_takes_one_and_a_master_never() -> None:
    candidate = Core("n2", "10.0.0.2:1", Durable(epoch=2), seeds=("10.0.0.1:1",))
    assert candidate.role is Role.CANDIDATE
    assert candidate.snapshot_offered("n1", 2)
    master = Core("n1", "10.0.0.1:1", Durable(), found=True)
    assert master.role is Role.MASTER
    assert not master.snapshot_offered("n9", 99)


def test_an_installed_snapshot_replaces_the_log_and_is_acknowledged() -> None:
    c = _slave_of_n1()
    c.snapshot_installed(Pos(2, 40), ((1, 1), (2, 30), (3, 50)), 25)
    s = c.status()
    assert s.last == s.durable == Pos(2, 40) and s.log_start == 25
    assert c.log.epoch_at(29) == 1 and c.log.epoch_at(30) == 2  # runs past the end dropped
    (sent,) = [a.message for a in c.take_actions() if isinstance(a, Send)]
    assert isinstance(sent, AppendReply) and sent.ok and sent.durable == Pos(2, 40)
