"""Slaves learn the commit promptly and report it (they serve committed
messages to their own readers): the master's `tell_commit`, and the slave's
Committed output, which never runs ahead of what the master vouched for nor
of what is durable on the slave."""

from __future__ import annotations

from chatd.core import Core, Durable, Pos
from chatd.core.quorum import IN_SYNC
from chatd.core.types import Append, AppendReply, Committed, Send
from tests.test_core_quorum import master_of, membership


def appends(core: Core) -> list[Append]:
    return [
        a.message
        for a in core.take_actions()
        if isinstance(a, Send) and isinstance(a.message, Append)
    ]


def test_an_idle_master_tells_its_slaves_the_commit_once() -> None:
    m = membership(3, epoch=2, quorum=IN_SYNC)
    core = master_of(m, Pos(1, 1), ((1, 1),))
    core.local_appended(Pos(2, 2))
    sent = appends(core)
    assert {a.dst for a in sent if a.count} == {"n2", "n3"}
    for nid in ("n2", "n3"):
        core.step(AppendReply(src=nid, dst="n1", epoch=2, ok=True, durable=Pos(2, 2)))
    assert core.commit == 2
    core.take_actions()
    core.tell_commit()
    told = appends(core)
    assert sorted((a.dst, a.count, a.commit) for a in told) == [("n2", 0, 2), ("n3", 0, 2)]
    core.tell_commit()  # told already: nothing more
    assert appends(core) == []


def test_a_batch_that_carries_the_commit_leaves_nothing_to_tell() -> None:
    m = membership(2, epoch=2, quorum=IN_SYNC)
    core = master_of(m, Pos(1, 1), ((1, 1),))
    core.local_appended(Pos(2, 2))
    core.take_actions()
    core.step(AppendReply(src="n2", dst="n1", epoch=2, ok=True, durable=Pos(2, 2)))
    core.local_appended(Pos(2, 3))  # the next batch goes out with commit 2
    assert [(a.count, a.commit) for a in appends(core)] == [(1, 2)]
    core.tell_commit()  # in flight, and it carried the commit
    assert appends(core) == []


def slave() -> Core:
    m = membership(2, epoch=2, quorum=IN_SYNC)
    core = Core("n2", "n2:1", Durable(epoch=2, last=Pos(1, 1), epochs=((1, 1),), membership=m))
    core.take_actions()
    return core


def reported(core: Core) -> list[int]:
    return [a.index for a in core.take_actions() if isinstance(a, Committed)]


def append(prev: Pos, count: int, commit: int) -> Append:
    return Append(
        src="n1", dst="n2", epoch=2, prev=prev, count=count, entry_epoch=2, commit=commit,
        in_sync=True, echo=0,
    )  # fmt: skip


def test_a_slave_reports_a_commit_once_the_entries_are_durable_here() -> None:
    core = slave()
    core.step(append(Pos(1, 1), 2, commit=3))  # entries 2-3, commit 3: not durable yet
    actions = core.take_actions()
    # entry 1, durable here, is reported before the new entries' write
    assert [type(a).__name__ for a in actions[-2:]] == ["Committed", "AppendEntries"]
    assert [a.index for a in actions if isinstance(a, Committed)] == [1]
    core.persisted(Pos(2, 3))
    assert reported(core) == [3]
    core.step(append(Pos(2, 3), 0, commit=3))  # the same commit again
    assert reported(core) == []


def test_a_slave_never_counts_a_tail_the_master_has_not_vouched_for() -> None:
    """The slave holds entries 2-4 of an older master (epoch 1); the master
    at epoch 2 knows it only up to 1 and has committed 5 elsewhere: the
    slave's commit stays at 1 until the master's Append reaches further."""
    m = membership(2, epoch=2, quorum=IN_SYNC)
    durable = Durable(epoch=2, last=Pos(1, 4), epochs=((1, 1),), membership=m)
    core = Core("n2", "n2:1", durable)
    core.take_actions()
    core.step(append(Pos(1, 1), 0, commit=5))  # a heartbeat, prev at the known match
    assert core.commit == 1 and reported(core) == [1]


def test_the_master_tells_a_node_it_took_into_the_in_sync_set_at_once() -> None:
    """Once the change taking n2 into the in-sync set is durable on the
    master, `tell_commit` (which the driver calls after an in-sync change)
    tells n2 so with nothing new committed and without waiting for the next
    heartbeat: until an Append says in_sync, n2 is not eligible, and a
    master dying in between would leave nobody who may be elected."""
    from tests.test_core_traces import World

    w = World()
    for command in ("found n1", "write n1", "start n2 seeds=n1", "stabilize"):
        w.run(command)
    master, n2 = w.core("n1"), w.core("n2")
    assert master.membership.in_sync == {"n1", "n2"} and not n2.eligible
    master.tell_commit()
    told = appends(master)
    assert [(a.dst, a.count, a.in_sync) for a in told] == [("n2", 0, True)]
    n2.step(told[0])
    assert n2.eligible
    master.tell_commit()  # told already: nothing more
    assert appends(master) == []
