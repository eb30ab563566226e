"""chatd.core.election.decide, table-tested: a pure function from what the
deciding node knows of itself (a Voter) and the answers it collected
(CheckMasterReply) to a Decision.

Every case names a cluster of n1..n4 whose membership is written
"epoch.seq members | in-sync set | retired"; the voter is n2 unless a case
says otherwise, and answers come from the other nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import pairwise

import pytest

from chatd.core.election import Decision, Voter, decide
from chatd.core.types import CheckMasterReply, Membership, Pos, Role, UpdateAck, seed_dst


def ms(text: str) -> Membership:
    """ "2.1 n1 n2 n3 | n1 n2 | n4" -> Membership."""
    head, _, rest = text.partition(" ")
    epoch, seq = head.split(".")
    members, in_sync, *retired = (part.split() for part in rest.split("|"))
    return Membership(
        epoch=int(epoch),
        seq=int(seq),
        members=tuple(sorted((n, f"{n}:1") for n in members)),
        in_sync=frozenset(in_sync),
        retired=frozenset(retired[0] if retired else ()),
    )


M = ms("2.1 n1 n2 n3 | n1 n2 n3")
M4 = ms("2.1 n1 n2 n3 n4 | n1 n2 n3")  # n4 a member, not in sync


def pos(text: str) -> Pos:
    epoch, index = text.split(".")
    return Pos(int(epoch), int(index))


def voter(
    id: str = "n2",
    *,
    epoch: int = 2,
    last: str = "2.5",
    eligible: bool = True,
    diverged: bool = False,
    membership: Membership = M,
) -> Voter:
    return Voter(
        id=id,
        address=f"{id}:1",
        epoch=epoch,
        durable=pos(last),
        eligible=eligible,
        diverged=diverged,
        membership=membership,
    )


def reply(
    src: str,
    *,
    epoch: int = 2,
    role: Role = Role.CANDIDATE,
    master: str = "",
    last: str = "2.5",
    eligible: bool = True,
    membership: Membership = M,
) -> CheckMasterReply:
    return CheckMasterReply(
        src=src,
        dst="me",
        epoch=epoch,
        role=role,
        master=master,
        last=pos(last),
        eligible=eligible,
        membership=membership,
    )


@dataclass(frozen=True)
class Want:
    """The expected decision; `epoch` set means the voter won."""

    master: str = ""
    winner: str = ""
    learned: tuple[int, int] | None = None
    epoch: int | None = None
    version: tuple[int, int] | None = None
    members: frozenset[str] = field(default_factory=frozenset)
    in_sync: frozenset[str] = field(default_factory=frozenset)
    retired: frozenset[str] = field(default_factory=frozenset)
    awaiting: frozenset[str] = field(default_factory=frozenset)
    reason: str = ""


def won(
    epoch: int,
    *,
    in_sync: str,
    awaiting: str,
    members: str = "n1 n2 n3",
    retired: str = "",
    winner: str = "n2",
    learned: tuple[int, int] | None = None,
    version: tuple[int, int] | None = None,
) -> Want:
    pool = sorted(in_sync.split())
    return Want(
        winner=winner,
        learned=learned,
        epoch=epoch,
        version=version or (epoch, 0),
        members=frozenset(members.split()),
        in_sync=frozenset(pool),
        retired=frozenset(retired.split()),
        awaiting=frozenset(awaiting.split()),
        reason=f"elected by {pool} at epoch {epoch}",
    )


CASES = [
    # -- a live master answered: follow it, nothing else counts --
    pytest.param(
        voter(),
        [reply("n1", role=Role.MASTER, master="n1"), reply("n3")],
        set(),
        Want(master="n1"),
        id="a live master answered: follow it",
    ),
    pytest.param(
        voter(),
        [
            reply("n1", epoch=3, role=Role.MASTER, master="n1"),
            reply("n3", epoch=4, role=Role.MASTER, master="n3"),
        ],
        set(),
        Want(master="n3"),
        id="two masters answered: follow the highest epoch's",
    ),
    pytest.param(
        voter(epoch=3, last="2.5"),
        [reply("n1", epoch=2, role=Role.MASTER, master="n1", last="2.4"), reply("n3")],
        set(),
        won(4, in_sync="n1 n2 n3", awaiting="n1 n3"),
        id="a master of an older epoch than the voter's is not followed",
    ),
    # -- who may be chosen --
    pytest.param(
        voter(eligible=False),
        [reply("n3", eligible=False)],
        {"n1"},
        Want(),
        id="nobody confirmed in sync, the in-sync set incomplete: no decision",
    ),
    pytest.param(
        voter(eligible=False),
        [reply("n1", eligible=False, last="2.9"), reply("n3", eligible=True, last="2.4")],
        set(),
        Want(winner="n3"),
        id="only the confirmed count, even with a shorter log",
    ),
    pytest.param(
        voter(eligible=False, last="2.5"),
        [reply("n1", eligible=False, last="2.7"), reply("n3", eligible=False, last="2.6")],
        set(),
        Want(winner="n1"),
        id="full restart: everyone answered, none eligible, the longest log wins",
    ),
    pytest.param(
        voter(eligible=False, last="2.8"),
        [reply("n1", eligible=False, last="2.7"), reply("n3", eligible=False, last="2.6")],
        set(),
        won(3, in_sync="n1 n2 n3", awaiting="n1 n3"),
        id="full restart: the voter has the longest log and wins with everyone in sync",
    ),
    pytest.param(
        voter(eligible=True, last="2.9"),
        [reply("n1", last="3.1"), reply("n3", last="2.9")],
        set(),
        Want(winner="n1"),
        id="the epoch of the last entry outranks its index",
    ),
    pytest.param(
        voter(last="2.5"),
        [reply("n1", last="2.5"), reply("n3", last="2.5")],
        set(),
        Want(winner="n1"),
        id="a tie on (epoch, index) goes to the lowest id",
    ),
    pytest.param(
        voter(last="2.5"),
        [reply("n3", last="2.5")],
        {"n1"},
        won(3, in_sync="n2 n3", awaiting="n3"),
        id="a tie the voter wins as the lowest id that answered",
    ),
    pytest.param(
        voter(last="2.5", membership=M4),
        [reply("n1", last="2.5", membership=M4), reply("n4", last="2.9", membership=M4)],
        {"n3"},
        Want(winner="n1"),
        id="a member outside the in-sync set is never a candidate",
    ),
    # -- retired nodes --
    pytest.param(
        voter(last="2.5"),
        [reply("n1", role=Role.RETIRED, last="2.9"), reply("n3", last="2.4")],
        set(),
        won(3, in_sync="n2 n3", awaiting="n3", members="n2 n3", retired="n1"),
        id="a retired node answering is excluded and put in retired",
    ),
    pytest.param(
        voter(eligible=False, last="2.5"),
        [reply("n1", role=Role.RETIRED, eligible=False, last="2.9"), reply("n3", eligible=False)],
        set(),
        won(3, in_sync="n2 n3", awaiting="n3", members="n2 n3", retired="n1"),
        id="a retired node's answer completes the in-sync set after a full restart",
    ),
    # -- rival memberships of one version --
    pytest.param(
        voter(last="2.5", membership=ms("2.1 n1 n2 n3 | n1 n2")),
        [reply("n3", last="2.6", membership=ms("2.1 n1 n2 n3 | n2 n3"))],
        {"n1"},
        Want(),
        id="rival memberships: every node of the union must answer",
    ),
    pytest.param(
        voter(last="2.5", membership=ms("2.1 n1 n2 n3 | n1 n2")),
        [
            reply("n1", last="2.4", membership=ms("2.1 n1 n2 n3 | n1 n2")),
            reply("n3", last="2.6", eligible=True, membership=ms("2.1 n1 n2 n3 | n2 n3")),
        ],
        set(),
        Want(winner="n3"),
        id="rival memberships: the union decides, longest log, nobody's eligibility counts",
    ),
    pytest.param(
        voter(last="2.7", eligible=True, membership=ms("2.1 n1 n2 n3 | n1 n2")),
        [
            reply("n1", last="2.4", eligible=False, membership=ms("2.1 n1 n2 n3 | n1 n2")),
            reply("n3", last="2.6", eligible=False, membership=ms("2.1 n1 n2 n3 | n2 n3")),
        ],
        set(),
        won(3, in_sync="n1 n2 n3", awaiting="n1 n3", version=(3, 0)),
        id="rival memberships: the voter wins with the whole union in sync",
    ),
    # -- the voter may not decide --
    pytest.param(
        voter(last="2.9", membership=ms("2.1 n1 n2 n3 | n1 n3")),
        [
            reply("n1", last="2.5", membership=ms("2.1 n1 n2 n3 | n1 n3")),
            reply("n3", membership=ms("2.1 n1 n2 n3 | n1 n3")),
        ],
        set(),
        Want(),
        id="the voter is not in the in-sync set: no decision",
    ),
    pytest.param(
        voter(last="2.9", diverged=True),
        [reply("n1", last="2.5"), reply("n3")],
        set(),
        Want(),
        id="the voter diverged: no decision",
    ),
    pytest.param(
        voter(last="2.9", membership=ms("2.1 n1 n2 n3 | n1 n2 n3 | n2")),
        [reply("n1", last="2.5"), reply("n3")],
        set(),
        Want(),
        id="the voter is retired: no decision",
    ),
    # -- the voter wins --
    pytest.param(
        voter(epoch=2, last="2.9"),
        [reply("n1", epoch=4, last="2.5"), reply("n3", epoch=3, last="2.5")],
        set(),
        won(5, in_sync="n1 n2 n3", awaiting="n1 n3"),
        id="the voter wins: epoch is the highest seen + 1",
    ),
    pytest.param(
        voter(last="2.9"),
        [reply("n1", last="2.5", eligible=False)],
        {"n3"},
        won(3, in_sync="n2", awaiting="n1"),
        id="the voter wins: awaiting excludes the unreachable, in sync only the confirmed",
    ),
    pytest.param(
        voter(last="2.9"),
        [],
        {"n1", "n3"},
        won(3, in_sync="n2", awaiting=""),
        id="the voter wins alone when everyone else is unreachable",
    ),
    pytest.param(
        # n3, master of epoch 3, crashed while taking n2 into its in-sync
        # set (n2 has 3.1, n3 only 3.0, where it is in sync alone) and came
        # back; a failure naming n3 was reported to n2 too (a call of an
        # older round, a lost reply). n3 answered: it is not down, and may
        # claim epoch 4 alone on 3.0; n2's claim must wait for it.
        voter(epoch=3, eligible=False, membership=ms("3.1 n1 n2 n3 | n2 n3")),
        [reply("n3", epoch=3, eligible=False, membership=ms("3.0 n1 n2 n3 | n3"))],
        {"n1", "n3"},
        won(4, in_sync="n2 n3", awaiting="n3"),
        id="a node that answered is awaited, though a failure naming it was reported",
    ),
    # -- a newer membership learned from a reply --
    pytest.param(
        voter(last="2.5"),
        [reply("n1", last="2.4", membership=ms("2.3 n1 n2 n3 | n1 n2")), reply("n3")],
        set(),
        won(3, in_sync="n1 n2", awaiting="n1", learned=(2, 3)),
        id="a newer membership learned from a reply, and used to decide",
    ),
    pytest.param(
        voter(last="2.9"),
        [reply("n1", last="2.4", membership=ms("3.0 n1 n2 n3 | n1 n3")), reply("n3")],
        set(),
        Want(learned=(3, 0)),
        id="a newer membership leaves the voter out: it learns it, and decides nothing",
    ),
]


@pytest.mark.parametrize(("me", "replies", "unreachable", "want"), CASES)
def test_decide(
    me: Voter, replies: list[CheckMasterReply], unreachable: set[str], want: Want
) -> None:
    d = decide(me, replies, unreachable)
    assert got(d) == want


def got(d: Decision) -> Want:
    learned = d.learned.version if d.learned is not None else None
    if d.won is None:
        return Want(master=d.master, winner=d.winner, learned=learned)
    m = d.won.membership
    return Want(
        master=d.master,
        winner=d.winner,
        learned=learned,
        epoch=d.won.epoch,
        version=m.version,
        members=frozenset(m.addresses),
        in_sync=m.in_sync,
        retired=m.retired,
        awaiting=d.won.awaiting,
        reason=d.won.reason,
    )


def test_the_winners_membership_keeps_its_own_address() -> None:
    me = Voter(
        id="n2",
        address="new-host:9",
        epoch=2,
        durable=Pos(2, 9),
        eligible=True,
        diverged=False,
        membership=M,
    )
    d = decide(me, [reply("n1"), reply("n3")], set())
    assert d.won is not None
    assert d.won.membership.addresses["n2"] == "new-host:9"
    assert d.won.epoch == d.won.membership.epoch == 3


def test_a_claim_is_void_once_the_candidate_saw_a_newer_epoch() -> None:
    """n3 claims epoch 3; before the acceptances come back it learns of epoch
    4 (another node's claim went further). The acceptances of epoch 3 must not
    make it master at epoch 4, where the other claimant may hold office."""
    from chatd.core import Core, Durable
    from chatd.core.types import RoleChanged, UpdateAck, UpdateMaster

    durable = Durable(epoch=2, last=pos("2.5"), epochs=((2, 1),), membership=M)
    core = Core("n3", "n3:1", durable)
    core.take_actions()
    for src in ("n1", "n2"):
        reply = CheckMasterReply(
            src=src, dst="n3", epoch=2, role=Role.CANDIDATE, master="",
            last=pos("2.4"), eligible=False, membership=M,
        )  # fmt: skip
        core.step(reply)
    claims = [a.message for a in core.take_actions() if hasattr(a, "message")]
    assert {c.epoch for c in claims if isinstance(c, UpdateMaster)} == {3}
    newer = CheckMasterReply(
        src="n1", dst="n3", epoch=4, role=Role.SLAVE, master="n2",
        last=pos("2.5"), eligible=True, membership=M,
    )  # fmt: skip
    core.step(newer)
    for src in ("n1", "n2"):
        core.step(UpdateAck(src=src, dst="n3", epoch=3, version=(3, 0), ok=True))
    became = [a for a in core.take_actions() if isinstance(a, RoleChanged)]
    assert core.role is not Role.MASTER, became


def test_a_claim_that_lacks_an_acknowledged_entry_is_refused() -> None:
    """A node refuses a claimant whose log ends before an entry it knows was
    acknowledged, whatever the claimant's epoch: a claimant that decided on
    answers given before this node acknowledged more would drop those."""
    from chatd.core import Core, Durable
    from chatd.core.types import UpdateMaster

    core = Core("n1", "n1:1", Durable(), found=True)
    for i in (1, 2, 3):
        core.local_appended(pos(f"1.{i}"))
    assert core.commit == 3 and core.role is Role.MASTER
    core.take_actions()
    m = ms("1.1 n1 n2 | n1 n2")
    core.step(UpdateMaster(src="n2", dst="n1", epoch=5, membership=m, last=pos("1.2")))
    assert [a.ok for a in acks_of(core)] == [False]
    assert (core.role, core.epoch) == (Role.MASTER, 1)
    core.step(UpdateMaster(src="n2", dst="n1", epoch=6, membership=m, last=pos("1.3")))
    assert [a.ok for a in acks_of(core)] == [True]  # it has every acknowledged entry: accepted
    assert (core.role, core.master) == (Role.SLAVE, "n2")


def acks_of(core: object) -> list[UpdateAck]:
    actions = core.take_actions()  # type: ignore[attr-defined]
    return [a.message for a in actions if isinstance(getattr(a, "message", None), UpdateAck)]


def test_only_a_node_of_no_cluster_founds_one() -> None:
    """Restart is not bootstrap: a node that holds an epoch or a membership
    does not found a cluster, whatever it is told. A node restored from a
    backup (a log, but no epoch and no members of its own) founds one at the
    epoch after its log's last, so no entry of the new cluster is mistaken
    for one of the old."""
    import pytest

    from chatd.core import Core, Durable, LocalProtocolError

    for durable in (
        Durable(epoch=3, last=pos("3.10")),
        Durable(last=pos("3.10"), membership=ms("3.1 n1 | n1")),
    ):
        with pytest.raises(LocalProtocolError, match="only a node of no cluster"):
            Core("n1", "n1:1", durable, found=True)
    restored = Core("n1", "n1:1", Durable(last=pos("3.10"), epochs=((1, 1), (3, 6))), found=True)
    assert (restored.role, restored.epoch, restored.master) == (Role.MASTER, 4, "n1")
    assert Core("n1", "n1:1", Durable(), found=True).epoch == 1


@pytest.mark.parametrize(
    ("me", "replies", "unreachable", "stuck"),
    [
        pytest.param(
            voter(eligible=False),
            [reply("n3", eligible=False)],
            {"n1"},
            "none of ['n2', 'n3'] is confirmed in sync by a master since it started, and n1"
            " of the in-sync set ['n1', 'n2', 'n3'] did not answer: only with its answer can"
            " the cluster tell which node holds every acknowledged write; start n1 again",
            id="nobody confirmed, the in-sync set incomplete: names who must come back",
        ),
        pytest.param(
            voter(membership=ms("2.1 n1 n2 n3 | n1 n3")),
            [],
            {"n1", "n3"},
            "it is not in the in-sync set ['n1', 'n3'] (membership 2.1), and none of those"
            " answered: only one of them may become master; start n1, n3 again",
            id="outside the in-sync set",
        ),
        pytest.param(
            replace(voter(epoch=0, last="0.0", membership=Membership()), seeds=("h:50052",)),
            [],
            {seed_dst("h:50052")},
            "it has not joined a cluster yet; it looks for the master via its seeds"
            " (h:50052), and none of them answered",
            id="never joined: its seeds, never an empty in-sync set or name",
        ),
        pytest.param(
            voter(epoch=0, last="0.0", membership=Membership()),
            [],
            set(),
            "it has not joined a cluster and has no seed to look for one (--join)",
            id="never joined, no seed",
        ),
        pytest.param(
            voter(membership=replace(M, quorum="majority")),
            [],
            {"n1", "n3"},
            "heard from ['n2'] only of the voters ['n1', 'n2', 'n3']: a majority must answer",
            id="majority mode without a majority",
        ),
        pytest.param(
            voter(eligible=False),
            [reply("n1", eligible=False), reply("n3", eligible=False)],
            set(),
            "",
            id="a decision says nothing",
        ),
    ],
)
def test_why_no_master_can_be_chosen(
    me: Voter, replies: list[CheckMasterReply], unreachable: set[str], stuck: str
) -> None:
    assert decide(me, replies, unreachable).stuck == stuck


def test_a_stalled_election_is_said_at_a_bounded_rate() -> None:
    """A candidate that cannot choose says why once it has looked for the
    failover timeout, then again every STALL_REPEAT failover timeouts while
    nothing changes (never silent, never once a round), and at once (but at
    most once a failover timeout) when the reason changes."""
    from chatd.core import Core, Durable, Timing
    from chatd.core.machine import STALL_REPEAT
    from chatd.core.types import ElectionStalled

    timing = Timing(failover=3, election=2)
    durable = Durable(epoch=2, last=pos("2.5"), epochs=((2, 1),), membership=M)
    core = Core("n2", "n2:1", durable, timing)  # restarted: not eligible
    said: list[tuple[int, str]] = []
    for _ in range(3 * STALL_REPEAT * timing.failover):
        core.tick()
        for a in core.take_actions():
            if isinstance(a, ElectionStalled):
                said.append((core.now, a.reason))
            elif hasattr(a, "message") and a.message.dst in ("n1", "n3"):
                core.report_unreachable(a.message.dst)
        for a in core.take_actions():
            if isinstance(a, ElectionStalled):
                said.append((core.now, a.reason))
    assert core.role is Role.CANDIDATE
    ticks = [t for t, _ in said]
    assert ticks[0] <= 2 * timing.failover
    gaps = {b - a for a, b in pairwise(ticks)}
    assert len(said) == 3 and all(g >= STALL_REPEAT * timing.failover for g in gaps), said
    assert "n1, n3 of the in-sync set ['n1', 'n2', 'n3'] did not answer" in said[0][1]
    assert said[0][1].endswith("start n1, n3 again")


@pytest.mark.parametrize("hears", ["answer", "question"])
def test_a_newer_epoch_voids_in_sync_confirmed_at_an_older_one(hears: str) -> None:
    """n2 restarts and the master of epoch 2 (n1) confirms it in sync. Then it
    learns from n1 of epoch 4 (n1's answer to n2's question, or n1's own
    question as a candidate, which n2 answers but whose epoch it does not
    take): a master of a newer epoch may have taken office without n2 and
    acknowledged entries it lacks (n1 has entry 4.6 of it, n2 does not). n2
    is no longer eligible: with n1 and n3 silent it must not elect itself
    alone, but wait for them (schedule 10001769 of the simulation)."""
    from chatd.core import Core, Durable, Timing
    from chatd.core.types import Append, CheckMaster, ElectionStalled, Message, UpdateMaster

    durable = Durable(epoch=2, last=pos("2.5"), epochs=((2, 1),), membership=M)
    core = Core("n2", "n2:1", durable, Timing(failover=3, election=2))
    heartbeat = Append(
        src="n1", dst="n2", epoch=2, prev=pos("2.5"), count=0, entry_epoch=2, commit=5,
        in_sync=True,
    )  # fmt: skip
    core.step(heartbeat)
    assert core.role is Role.SLAVE and core.status().eligible
    newer: Message = CheckMasterReply(
        src="n1", dst="n2", epoch=4, role=Role.CANDIDATE, master="",
        last=pos("4.6"), eligible=False, membership=M,
    )  # fmt: skip
    if hears == "question":
        newer = CheckMaster(src="n1", dst="n2", epoch=4)
    core.step(newer)
    assert core.epoch == (4 if hears == "answer" else 2) and not core.status().eligible
    # n1 pauses and n3 is down: n2's master falls silent and nobody answers it
    stalled: list[str] = []
    claims: list[UpdateMaster] = []
    for _ in range(40):
        core.tick()
        for a in core.take_actions():
            msg = getattr(a, "message", None)
            if isinstance(msg, UpdateMaster):
                claims.append(msg)
            elif msg is not None and msg.dst in ("n1", "n3"):
                core.report_unreachable(msg.dst)
            elif isinstance(a, ElectionStalled):
                stalled.append(a.reason)
    assert core.status().role is Role.CANDIDATE and not claims, claims
    assert stalled and stalled[-1].endswith("start n1, n3 again")
