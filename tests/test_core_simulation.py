"""Deterministic simulation of the role core: seeded schedules of delays,
drops, reordering, crashes, restarts and pauses, with the invariants checked
after every step (see tests/simulation.py).

CHATD_SIM_SCHEDULES=N runs N schedules (default 1000); CHATD_SIM_SEED=S
replays one schedule; a failure prints its seed and its last events.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from chatd.core import Role
from chatd.core.quorum import MAJORITY
from chatd.core.types import (
    CheckMaster,
    CheckMasterReply,
    Send,
    UpdateAck,
    UpdateSlaves,
)
from tests import mutations
from tests.simulation import CI_SCHEDULES, Sim, Violation, run_schedule

SCHEDULES = int(os.environ.get("CHATD_SIM_SCHEDULES", str(CI_SCHEDULES)))
ONLY = os.environ.get("CHATD_SIM_SEED")
SEEDS = [int(ONLY)] if ONLY else list(range(SCHEDULES))
BATCH = 50


@pytest.mark.parametrize("first", range(0, len(SEEDS), BATCH))
def test_random_schedules(first: int) -> None:
    for seed in SEEDS[first : first + BATCH]:
        run_schedule(seed)


@pytest.mark.parametrize("first", range(0, len(SEEDS), BATCH))
def test_majority_schedules_with_partitions(first: int) -> None:
    """Majority mode, with link cuts (one node off, two groups, a bridge, one
    way) and heals among the crashes, pauses, joins and removals: no
    acknowledged entry lost, one master an epoch, and it settles."""
    for seed in SEEDS[first : first + BATCH]:
        run_schedule(seed, quorum=MAJORITY)


@pytest.mark.parametrize("first", range(0, max(1, len(SEEDS) // 10), BATCH))
def test_full_cluster_restart_schedules(first: int) -> None:
    for seed in SEEDS[first : first + BATCH]:
        run_schedule(10_000_000 + seed, full_restart=True)


def test_a_claimant_waits_for_an_in_sync_node_that_answered() -> None:
    """Seed 17091: n5, master of epoch 3, crashes while taking n2 into its
    in-sync set (n2 has the new membership, n5 only the old one, in which
    it is in sync alone) and restarts. n2's election counts n5's answers,
    but a lost message to n5 was reported to it as well: n2 must still
    wait for n5's acceptance, or both take office at epoch 4 (n5 alone,
    n2 counting n5 down)."""
    sim = run_schedule(17091)  # raises on two masters of one epoch
    assert sim.master_of_epoch[3] == sim.master_of_epoch[4] == "n5"


def test_a_broken_invariant_stops_the_simulation_at_once() -> None:
    """The core checks its invariants after every event (Core.check; the
    simulation checks them once more every step): with one broken (a
    follower's next index left at its match), the first schedule fails,
    naming it, and at the moment it broke rather than when the damage shows."""
    with mutations.applied("next-at-match"), pytest.raises(Violation) as caught:
        run_schedule(0)
    assert "InvariantError" in repr(caught.value.__cause__)
    assert "is not below next" in str(caught.value)


def test_paused_master_steps_down_and_its_writes_are_not_acknowledged() -> None:
    for seed in range(20):
        sim = Sim(seed, 3, drop=0.0)
        for _ in range(30):
            sim.step(faults=False)
        old = sim.current_master()
        assert old is not None and old.core is not None
        epoch = old.core.epoch
        acked_before = dict(sim.acked)
        sim.pause(old)
        for _ in range(30):
            sim.step(faults=False)
        new = sim.current_master()
        assert new is not None and new is not old and new.core is not None
        assert new.core.epoch > epoch
        sim.resume(old)
        # resumed, the old master may still accept writes at its old epoch
        # for a moment: none of them may ever be acknowledged
        sim.step(faults=False)
        if old.core is not None and old.core.role.value == "master":
            sim.write(old)
        tail = {p for e, p in old.log if e == epoch}
        sim.heal()
        assert old.core is not None and old.core.role.value == "slave"
        for i, (e, p) in sim.acked.items():
            if e == epoch and p in tail and i not in acked_before:
                # acknowledged at the old epoch after the pause: only by the
                # new master's inheritance, never by the paused one
                assert sim.master_of_epoch[epoch] == old.id
        m = sim.current_master()
        assert m is not None and m.core is not None
        upto = m.core.commit
        assert all(n.log[:upto] == m.log[:upto] for n in sim.nodes.values())


def _successor_comes_and_goes_while_the_master_is_frozen(seed: int, *, removing: bool) -> None:
    """3 nodes: one crashes and the master drops it, leaving {master, heir}
    in sync (with `removing`, the master then starts removing the heir, and
    the change does not reach it). The master pauses; the heir elects itself
    alone, acknowledges writes, and crashes, and what it sent the master is
    lost with its connections. The master resumes: it must acknowledge
    nothing until the heir is back, and then step down to it."""
    sim = Sim(seed, 3, drop=0.0)
    for _ in range(30):
        sim.step(faults=False)
    old = sim.current_master()
    assert old is not None and old.core is not None
    third, heir = [n for n in sim.nodes.values() if n is not old]
    sim.crash(third)
    for _ in range(30):  # the master drops the crashed node from the in-sync set
        sim.step(faults=False)
    assert old.core.membership.in_sync == {old.id, heir.id}
    if removing:
        sim.remove(old, heir.id)
        assert old.core.status().pending is not None
        sim.net = [f for f in sim.net if f.msg.dst != heir.id]
    sim.pause(old)
    for _ in range(60):
        sim.step(faults=False)
        c = heir.core
        if c is not None and c.role is Role.MASTER and c.commit > old.core.commit + 2:
            break
    assert sim.current_master() is heir and heir.core is not None
    assert heir.core.commit > old.core.commit
    sim.crash(heir)
    # what it sent is lost with its connections (and so are the failure
    # notices naming it, as before)
    sim.net = [f for f in sim.net if getattr(f.msg, "src", getattr(f.msg, "peer", "")) != heir.id]
    before = old.core.commit
    sim.resume(old)
    for _ in range(40):
        sim.step(faults=False)  # raises if an acknowledged entry changes
        assert old.core is not None and old.core.commit == before
    sim.heal()
    m = sim.current_master()
    assert m is heir, f"seed {seed}: {m and m.id} is master, not {heir.id}"


@pytest.mark.parametrize("removing", [False, True])
def test_a_master_frozen_while_its_successor_came_and_went_acknowledges_nothing(
    removing: bool,
) -> None:
    """The silence a master measures after a freeze proves nothing: dropping
    the heir for it would let the master acknowledge alone writes that
    contradict the heir's. Also when the master was removing the heir."""
    for seed in range(20):
        _successor_comes_and_goes_while_the_master_is_frozen(seed, removing=removing)


def _settled(seed: int, size: int = 3) -> Sim:
    sim = Sim(seed, size, drop=0.0)
    for _ in range(30):
        sim.step(faults=False)
    return sim


def test_a_closed_stream_makes_the_slave_ask_its_master_and_elect_if_it_is_gone() -> None:
    sim = _settled(1)
    m = sim.current_master()
    assert m is not None and m.core is not None
    slave = next(n for n in sim.nodes.values() if n is not m)
    c = slave.core
    assert c is not None and c.role is Role.SLAVE
    c.stream_lost(m.id)
    c.stream_lost(m.id)  # one probe at a time
    probes = [a for a in c.take_actions() if isinstance(a, Send)]
    assert [type(a.message) for a in probes] == [CheckMaster]
    # the master answers as master: nothing changes
    alive = CheckMasterReply(
        src=m.id,
        dst=c.id,
        epoch=c.epoch,
        role=Role.MASTER,
        master=m.id,
        last=m.core.durable,
        eligible=True,
        membership=m.core.membership,
    )
    c.step(alive)
    assert c.role is Role.SLAVE and not c.state.probing  # type: ignore[union-attr]
    # it answers, but is no longer master: elect at once
    c.stream_lost(m.id)
    c.step(dataclasses.replace(alive, role=Role.CANDIDATE, master=""))
    assert c.role.value == "candidate"
    # another slave, whose master cannot be reached: elect at once
    sim = _settled(1)
    m = sim.current_master()
    assert m is not None
    c2 = next(n for n in sim.nodes.values() if n is not m).core
    assert c2 is not None and c2.role is Role.SLAVE
    c2.stream_lost(m.id)
    c2.report_unreachable(m.id)
    assert c2.role.value == "candidate"
    # a stream from a node that is not its master changes nothing
    sim = _settled(2)
    m = sim.current_master()
    assert m is not None
    a, b = [n for n in sim.nodes.values() if n is not m]
    assert a.core is not None
    a.core.stream_lost(b.id)
    assert not [x for x in a.core.take_actions() if isinstance(x, Send)]


def test_a_retired_node_acknowledges_the_membership_that_leaves_it_out() -> None:
    """A master waiting for a removed node's answer (finishing the removal,
    or confirming its in-sync set after a freeze) gets it."""
    sim = _settled(3)
    m = sim.current_master()
    assert m is not None and m.core is not None
    gone = next(n for n in sim.nodes.values() if n is not m and n.id != "n1")
    sim.remove(m, gone.id)
    for _ in range(20):
        sim.step(faults=False)
    c = gone.core
    assert c is not None and c.role is Role.RETIRED
    c.take_actions()
    without = m.core.membership
    assert gone.id not in without.addresses
    c.step(UpdateSlaves(src=m.id, dst=gone.id, epoch=m.core.epoch, membership=without))
    (ack,) = [a.message for a in c.take_actions() if isinstance(a, Send)]
    assert isinstance(ack, UpdateAck) and ack.ok and ack.version == without.version
    listed = dataclasses.replace(without, members=(*without.members, (gone.id, gone.address)))
    c.step(UpdateSlaves(src=m.id, dst=gone.id, epoch=m.core.epoch, membership=listed))
    (ack,) = [a.message for a in c.take_actions() if isinstance(a, Send)]
    assert isinstance(ack, UpdateAck) and not ack.ok


@pytest.mark.parametrize("seed", range(10))
def test_min_in_sync_holds_the_commit_and_refuses_below_the_floor(seed: int) -> None:
    """--min-in-sync 2 (the core's min_in_sync): with both slaves crashed
    the master is alone in sync; what it wrote then is not acknowledged,
    `refusal()` names 1 copy and K, and both change once a slave is back in
    sync (the writes made meanwhile acknowledged then, on two nodes)."""
    sim = Sim(seed, 3, drop=0.0)
    for n in sim.nodes.values():
        assert n.core is not None
        n.core.min_in_sync = 2
    for _ in range(30):
        sim.step(faults=False)
    m = sim.current_master()
    assert m is not None and m.core is not None and m.core.refusal() == ""
    slaves = [n for n in sim.nodes.values() if n is not m]
    for n in slaves:
        sim.crash(n)
    for _ in range(30):  # dropped as silent (writes go on meanwhile: the Sim's clients)
        sim.step(faults=False)
    assert m.core.membership.in_sync == {m.id}
    assert "only 1 copy is in sync" in m.core.refusal() and "the 2 that" in m.core.refusal()
    held = m.core.commit
    sim.write(m)  # (a write the driver would refuse: the core must not commit it)
    for _ in range(20):
        sim.step(faults=False)
        assert m.core.commit == held
    sim.restart(slaves[0])
    for _ in range(200):
        sim.step(faults=False)
        if m.core.commit >= len(m.log):
            break
    assert m.core.refusal() == "" and slaves[0].id in m.core.membership.in_sync
    assert m.core.commit == len(m.log) and slaves[0].log[: len(m.log)] == m.log


def test_the_master_crashed_as_the_cluster_forms() -> None:
    """The master crashes the moment its in-sync set takes in a slave
    (the first, or the last), before its next heartbeat. What it sent
    before dying still arrives: the Append that tells a node it is in sync
    goes out with the change, so the survivors elect a master. Had neither
    been told, each would say why it cannot (ElectionStalled), never
    silently; once the old master is back, the cluster settles with no
    acknowledged entry lost."""
    outcomes = {"elected": 0, "stalled": 0}
    for seed in range(40):
        sim = Sim(seed, 3, drop=0.0)
        first = sim.nodes["n1"]
        size = 2 + seed % 2  # the in-sync set at the crash, the master counted
        for _ in range(200):
            sim.step(faults=False)
            assert first.core is not None
            if len(first.core.membership.in_sync) == size:
                break
        else:
            raise AssertionError(f"seed {seed}: the cluster did not form")
        sim.crash(first)
        survivors = [sim.nodes["n2"], sim.nodes["n3"]]
        for _ in range(40):
            sim.step(faults=False)
            if sim.current_master() is not None:
                break
        if sim.current_master() is not None:
            outcomes["elected"] += 1
        else:
            assert all(n.id in sim.stalled for n in survivors), sim.explain(Exception("silent"))
            outcomes["stalled"] += 1
        sim.heal()
    assert outcomes == {"elected": 40, "stalled": 0}


def test_a_node_confirmed_in_sync_at_an_older_epoch_does_not_elect_itself_alone() -> None:
    """Schedule 10001769 (a full-restart one; it broke before the restart):
    n1, master of epoch 1, pauses and n2 crashes; n3 elects itself alone at
    epoch 4, acknowledges entry 9 and crashes. n2 restarts and n1 resumes,
    still master of epoch 1 for a moment: its Append tells n2 it is in sync.
    Then n1 steps down to epoch 4 (an Append n3 sent before it crashed
    brings it entry 9), and n2 learns of epoch 4 from n1. n1 pauses again:
    n2, confirmed in sync only by the master of epoch 1, must not elect
    itself alone without entry 9, but wait for n1 or n3."""
    run_schedule(10_000_000 + 1769, full_restart=True)
