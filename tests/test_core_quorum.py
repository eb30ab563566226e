"""Majority mode's rules, one at a time, on cores driven by hand (the
simulation runs them together, with partitions: tests/test_core_simulation.py)."""

from __future__ import annotations

from chatd.core import Core, Durable, Membership, Pos, Role, Timing
from chatd.core.quorum import IN_SYNC, MAJORITY, Mode, agreed, needed, quorum_index
from chatd.core.types import (
    AppendReply,
    CheckMaster,
    CheckMasterReply,
    Committed,
    RoleChanged,
    Send,
    Settled,
    UpdateAck,
    UpdateMaster,
)

IDS = ("n1", "n2", "n3", "n4", "n5")


def membership(n: int, epoch: int = 1, quorum: str = MAJORITY) -> Membership:
    ids = IDS[:n]
    return Membership(
        epoch=epoch,
        members=tuple((i, f"{i}:1") for i in ids),
        in_sync=frozenset(ids),
        quorum=quorum,
    )


def test_quorum_sizes() -> None:
    majority, in_sync = Mode.MAJORITY, Mode.IN_SYNC
    assert [needed(majority, n) for n in range(1, 8)] == [1, 2, 2, 3, 3, 4, 4]
    assert [needed(in_sync, n) for n in range(1, 5)] == [1, 2, 3, 4]
    assert agreed(majority, {"a", "b", "c"}, {"a", "c", "x"})
    assert not agreed(majority, {"a", "b", "c"}, {"a", "x", "y"})
    assert quorum_index(majority, {"a", "b", "c"}, {"a": 9, "b": 4, "c": 7}) == 7
    assert quorum_index(in_sync, {"a", "b", "c"}, {"a": 9, "b": 4, "c": 7}) == 4
    assert quorum_index(majority, {"a", "b", "c", "d"}, {"a": 9, "b": 4}) == 0  # 2 of 4


def test_voters_hold_both_sets_of_a_change_and_the_mode() -> None:
    """While a change is under way, both the current and the pending set
    must agree, each by the mode's rule; the mode comes from the
    membership's configuration name."""
    m = membership(3)
    assert m.mode is Mode.MAJORITY and Mode(MAJORITY) is Mode.MAJORITY
    pending = Membership(epoch=1, seq=1, in_sync=frozenset({"n1", "n4", "n5"}), quorum=MAJORITY)
    v = m.voters(pending)
    assert v.sets == (frozenset(IDS[:3]), pending.in_sync)
    assert v.everyone == frozenset(IDS) and v.newest == pending.in_sync
    assert v.agreed({"n1", "n2", "n4"}) and not v.agreed({"n1", "n2", "n3"})
    assert v.lost({"n1", "n2", "n3"}) == pending.in_sync and v.lost({"n1", "n2", "n4"}) is None
    assert v.index({"n1": 9, "n2": 8, "n3": 1, "n4": 5, "n5": 2}) == 5
    assert m.voters().index({"n1": 9, "n2": 8, "n3": 1}) == 8
    assert membership(3, quorum=IN_SYNC).voters().index({"n1": 9, "n2": 8, "n3": 1}) == 1


def master_of(m: Membership, last: Pos, runs: tuple[tuple[int, int], ...]) -> Core:
    """n1, elected master of `m` at its epoch with a log ending at `last`."""
    core = Core("n1", "n1:1", Durable(epoch=m.epoch - 1, last=last, epochs=runs, membership=m))
    core.take_actions()
    for nid in IDS[1 : len(m.members)]:
        core.step(
            CheckMasterReply(
                src=nid, dst="n1", epoch=m.epoch - 1, role=Role.CANDIDATE, master="",
                last=Pos(1, 1), eligible=False, membership=m,
            )
        )  # fmt: skip
    (version,) = {c.membership.version for c in claims(core)}
    for nid in IDS[1 : len(m.members)]:
        core.step(UpdateAck(src=nid, dst="n1", epoch=m.epoch, version=version, ok=True))
    assert core.role is Role.MASTER and core.epoch == m.epoch, core.status()
    core.take_actions()
    return core


def committed(core: Core) -> list[int]:
    return [a.index for a in core.take_actions() if isinstance(a, Committed)]


def test_an_older_epoch_entry_on_a_majority_is_not_committed_by_counting() -> None:
    """Raft's figure 8: n1, master at epoch 4, holds entry 2 of epoch 2 from an
    earlier term, and it reaches a majority. Counting it committed would be
    wrong (a node holding another entry 2 of epoch 3 may still win an election
    and replace it); it commits with the first entry of epoch 4 after it."""
    m = membership(5, epoch=4)
    core = master_of(m, Pos(2, 2), ((1, 1), (2, 2)))
    for nid in ("n2", "n3"):
        core.step(AppendReply(src=nid, dst="n1", epoch=4, ok=True, durable=Pos(2, 2)))
    assert core.commit == 0 and committed(core) == []
    core.local_appended(Pos(4, 3))
    for nid in ("n2", "n3"):
        core.step(AppendReply(src=nid, dst="n1", epoch=4, ok=True, durable=Pos(4, 3)))
    assert core.commit == 3 and committed(core) == [3]


def test_a_master_commits_with_a_majority_without_waiting_for_the_rest() -> None:
    m = membership(3, epoch=2)
    core = master_of(m, Pos(1, 1), ((1, 1),))
    core.local_appended(Pos(2, 2))
    assert core.commit == 0
    core.step(AppendReply(src="n3", dst="n1", epoch=2, ok=True, durable=Pos(2, 2)))
    assert committed(core) == [2]  # n1 and n3 of three; n2 never answered


def settled(core: Core) -> list[int]:
    return [a.index for a in core.take_actions() if isinstance(a, Settled)]


def test_a_master_tells_when_every_answering_voter_has_an_entry() -> None:
    """Majority mode answers writes at a majority, and tells the writer when
    the slower voters have them too (it paces its batches by that), leaving
    out a voter that stopped answering."""
    m = membership(3, epoch=2)
    core = master_of(m, Pos(1, 1), ((1, 1),))
    core.take_actions()
    core.local_appended(Pos(2, 2))
    core.step(AppendReply(src="n3", dst="n1", epoch=2, ok=True, durable=Pos(2, 2)))
    actions = core.take_actions()
    assert [a.index for a in actions if isinstance(a, Committed)] == [2]
    assert [a.index for a in actions if isinstance(a, Settled) and a.index >= 2] == []
    core.step(AppendReply(src="n2", dst="n1", epoch=2, ok=True, durable=Pos(2, 2)))
    assert settled(core) == [2]
    for _ in range(3):  # n2 falls silent; n3 keeps answering
        core.tick()
        core.step(AppendReply(src="n3", dst="n1", epoch=2, ok=True, durable=Pos(2, 2)))
    core.take_actions()
    core.local_appended(Pos(2, 3))
    core.step(AppendReply(src="n3", dst="n1", epoch=2, ok=True, durable=Pos(2, 3)))
    assert settled(core) == [3]


def test_an_in_sync_master_tells_nothing_but_commits() -> None:
    m = membership(3, epoch=2, quorum=IN_SYNC)
    core = master_of(m, Pos(1, 1), ((1, 1),))
    core.take_actions()
    core.local_appended(Pos(2, 2))
    for nid in ("n2", "n3"):
        core.step(AppendReply(src=nid, dst="n1", epoch=2, ok=True, durable=Pos(2, 2)))
    actions = core.take_actions()
    assert [a.index for a in actions if isinstance(a, Committed)] == [2]
    assert not [a for a in actions if isinstance(a, Settled)]


def test_a_master_cut_off_from_a_majority_steps_down() -> None:
    timing = Timing(failover=5, election=3, retry=3)
    m = membership(3, epoch=2)
    core = master_of(m, Pos(1, 1), ((1, 1),))
    core.timing = timing
    for _ in range(timing.failover + 1):
        core.tick()
        core.step(AppendReply(src="n2", dst="n1", epoch=2, ok=True, durable=Pos(1, 1)))
    assert core.role is Role.MASTER  # n2 answers: n1 and n2 are a majority
    for _ in range(timing.failover + 1):
        core.tick()
    assert role(core) is Role.CANDIDATE
    changes = [a for a in core.take_actions() if isinstance(a, RoleChanged)]
    assert "stepped down" in changes[-1].reason


def voter(last: Pos, epoch: int = 1, n: int = 3) -> Core:
    """n2, a slave of n1, whose log ends at `last`."""
    m = membership(n, epoch=1)
    core = Core("n2", "n2:1", Durable(epoch=epoch, last=last, epochs=((1, 1),), membership=m))
    core.take_actions()
    return core


def acks(core: Core) -> list[bool]:
    out = []
    for a in core.take_actions():
        if isinstance(a, Send) and isinstance(a.message, UpdateAck):
            out.append(a.message.ok)
    return out


def claim(src: str, epoch: int, last: Pos, n: int = 3) -> UpdateMaster:
    return UpdateMaster(src=src, dst="n2", epoch=epoch, membership=membership(n, epoch), last=last)


def test_a_voter_refuses_a_claimant_whose_log_is_behind_its_own() -> None:
    core = voter(Pos(1, 5))
    core.step(claim("n3", 2, Pos(1, 4)))
    assert acks(core) == [False] and core.epoch == 1
    core.step(claim("n3", 3, Pos(1, 5)))
    assert acks(core) == [True] and core.master == "n3"


def test_a_voter_accepts_one_claimant_an_epoch() -> None:
    core = voter(Pos(1, 5))
    core.step(claim("n3", 2, Pos(1, 5)))
    core.step(claim("n1", 2, Pos(1, 9)))
    assert acks(core) == [True, False] and core.master == "n3"


def test_a_voter_refuses_a_claimant_that_is_not_a_voter() -> None:
    core = voter(Pos(1, 5))
    m = membership(3, 2)
    m = Membership(
        epoch=1, seq=1, members=m.members, in_sync=frozenset({"n1", "n2"}), quorum=MAJORITY
    )
    core.step(UpdateMaster(src="n3", dst="n2", epoch=2, membership=m, last=Pos(1, 5)))
    assert acks(core) == [False]


def candidate(n: int = 5) -> Core:
    m = membership(n, epoch=1)
    core = Core("n1", "n1:1", Durable(epoch=1, last=Pos(1, 7), epochs=((1, 1),), membership=m))
    sent = [a.message for a in core.take_actions() if isinstance(a, Send)]
    assert {x.dst for x in sent if isinstance(x, CheckMaster)} == set(IDS[1:n])
    return core


def reply(src: str, last: Pos, n: int = 5) -> CheckMasterReply:
    return CheckMasterReply(
        src=src, dst="n1", epoch=1, role=Role.CANDIDATE, master="", last=last,
        eligible=False, membership=membership(n, epoch=1),
    )  # fmt: skip


def claims(core: Core) -> list[UpdateMaster]:
    return [
        a.message
        for a in core.take_actions()
        if isinstance(a, Send) and isinstance(a.message, UpdateMaster)
    ]


def test_a_candidate_with_a_minority_of_answers_claims_nothing() -> None:
    """A minority side never elects, nor raises its epoch."""
    core = candidate()
    core.step(reply("n2", Pos(1, 3)))
    for nid in ("n3", "n4", "n5"):
        core.report_unreachable(nid)
        core.report_unreachable(nid)  # (the second failure counts)
    assert claims(core) == [] and core.epoch == 1 and core.role is Role.CANDIDATE


def test_a_candidate_with_a_majority_claims_and_takes_office_on_a_majority() -> None:
    core = candidate()
    answered(core, n2=Pos(1, 3), n3=Pos(1, 6))
    sent = claims(core)
    assert {c.dst for c in sent} == {"n2", "n3", "n4", "n5"} and {c.epoch for c in sent} == {2}
    (version,) = {c.membership.version for c in sent}
    core.step(UpdateAck(src="n2", dst="n1", epoch=2, version=version, ok=True))
    assert core.role is Role.CANDIDATE  # n1 and n2: two of five
    core.step(UpdateAck(src="n4", dst="n1", epoch=2, version=version, ok=False))
    core.step(UpdateAck(src="n3", dst="n1", epoch=2, version=version, ok=True))
    assert role(core) is Role.MASTER and core.epoch == 2


def test_the_most_up_to_date_of_a_majority_is_chosen() -> None:
    core = candidate()
    answered(core, n2=Pos(1, 9), n3=Pos(1, 2))
    assert claims(core) == []  # n2's log is longer: n2 should be master, not n1


def role(core: Core) -> Role:
    return core.role


def answered(core: Core, **logs: Pos) -> None:
    """The candidate n1 hears from the nodes named (their logs ending where
    given); the calls to n4 and n5 fail twice (the second failure counts)."""
    for nid, last in logs.items():
        core.step(reply(nid, last))
    for nid in ("n4", "n5"):
        core.report_unreachable(nid)
        core.report_unreachable(nid)


def test_a_lagging_voter_catches_up_on_heartbeats_alone() -> None:
    """A new master guesses each follower's log ends where its own does; a
    voter that lags (here n2, restarted empty) says otherwise in its answer
    to the first heartbeat, and is sent what it lacks at once: in a quiet
    cluster, with no new write, it catches up all the same."""
    from tests.test_core_traces import World

    w = World()
    w.run("cluster n1 n2 n3 quorum=majority")
    for command in ("crash n2", "crash n3", "write n1 2", "stabilize", "run 4"):
        w.run(command)
    assert w.core("n1").role is Role.CANDIDATE  # no majority: it stepped down
    w.run("restart n2 seeds=n1")
    for _ in range(10):
        w.run("run 1")
        if w.core("n1").role is Role.MASTER:
            break
    assert w.core("n1").role is Role.MASTER and w.core("n1").epoch == 2
    w.run("run n1 2")  # heartbeats only: no write
    assert w.node("n2").log == w.node("n1").log and len(w.node("n1").log) == 2


def test_a_member_back_from_a_partition_gets_the_membership_it_missed() -> None:
    """The claim of the majority side's new master (its UpdateMaster, with
    the membership of its epoch) is lost in the partition; after the heal
    the master sends that membership again to the member not known to hold
    it, without a membership change to carry it."""
    from tests.test_core_traces import World

    w = World()
    w.run("cluster n1 n2 n3 quorum=majority")
    for command in ("write n1 1", "stabilize", "partition n1", "run 3", "run 3"):
        w.run(command)
    assert w.core("n2").role is Role.MASTER and w.core("n2").epoch == 2
    assert w.core("n1").membership.version == (1, 4)
    w.run("heal")
    w.run("run 4")
    assert w.core("n1").master == "n2"
    assert w.core("n1").membership == w.core("n2").membership
    assert w.node("n1").membership == w.core("n2").membership  # durable too
