"""Round trips through chatd/server/wire.py, property-tested (hypothesis).

Every core message that wire.py translates goes to its cluster protobuf, through
the bytes a peer would read, and back to an equal message. What a translation
legitimately does not carry is asserted exactly: `dst` (the receiver fills in
its own id), a CheckMasterReply's wire-only `master_address`, an
AcceptUpdatesResponse's `snapshot_installed`, and an Append's entries (they
travel beside the message and come out of `batch.entries`). Messages are built
with keyword arguments only, as the core's messages are becoming keyword-only.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import TypeVar

import pytest
from google.protobuf.message import Message as PbMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core import types
from chatd.core.types import (
    Append,
    AppendReply,
    CheckMaster,
    CheckMasterReply,
    Membership,
    Pos,
    Register,
    RegisterReply,
    Role,
    UpdateAck,
    UpdateMaster,
    UpdateSlaves,
)
from chatd.proto import cluster_pb2 as pb
from chatd.server import wire

P = TypeVar("P", bound=PbMessage)

UINT64_MAX = 2**64 - 1  # every epoch, index, count and seq is a uint64 in cluster.proto
SETTINGS = settings(max_examples=150, deadline=None)

uint64 = st.one_of(
    st.integers(0, UINT64_MAX), st.sampled_from([0, 1, 2**63 - 1, 2**63, UINT64_MAX])
)
# proto3 strings are UTF-8: anything UTF-8 can encode, the empty string included
text = st.text(st.characters(codec="utf-8"), max_size=24)
node_ids = st.one_of(st.just(""), text)
positions = st.builds(Pos, epoch=uint64, index=uint64)


@st.composite
def memberships(draw: st.DrawFn, max_members: int = 12) -> Membership:
    # The core keeps `members` sorted by node id (Membership.with_changes,
    # Machine: tuple(sorted(...))), one address per id.
    members = draw(st.dictionaries(node_ids, text, max_size=max_members))
    ids = st.sampled_from(sorted(members)) if members else node_ids
    return Membership(
        epoch=draw(uint64),
        seq=draw(uint64),
        members=tuple(sorted(members.items())),
        in_sync=draw(st.frozensets(st.one_of(ids, node_ids), max_size=max_members)),
        retired=draw(st.frozensets(node_ids, max_size=max_members)),
    )


def through_the_wire(msg: P) -> P:
    """What the peer parses from the bytes `msg` is sent as."""
    data = msg.SerializeToString()
    parsed = type(msg).FromString(data)
    assert parsed == msg
    return parsed


def same(got: object, want: object) -> None:
    """Equal, field by field, with the same Python types (a bool stays a bool,
    an int an int), recursively through nested dataclasses."""
    assert got == want
    assert type(got) is type(want)
    if dataclasses.is_dataclass(want):
        for f in dataclasses.fields(want):
            same(getattr(got, f.name), getattr(want, f.name))
    elif isinstance(want, tuple | frozenset):
        for g, w in zip(sorted(got), sorted(want), strict=True):  # type: ignore[call-overload]
            same(g, w)


# -- Append (with its batch entries) --


@SETTINGS
@given(
    src=node_ids,
    dst=node_ids,
    receiver=node_ids,
    epoch=uint64,
    prev=positions,
    count=uint64,
    entry_epoch=uint64,
    commit=uint64,
    in_sync=st.booleans(),
    echo=uint64,
    entries=st.lists(st.binary(max_size=64), max_size=20),
)
def test_append_round_trip(
    src: str,
    dst: str,
    receiver: str,
    epoch: int,
    prev: Pos,
    count: int,
    entry_epoch: int,
    commit: int,
    in_sync: bool,
    echo: int,
    entries: list[bytes],
) -> None:
    m = Append(
        src=src,
        dst=dst,
        epoch=epoch,
        prev=prev,
        count=count,
        entry_epoch=entry_epoch,
        commit=commit,
        in_sync=in_sync,
        echo=echo,
    )
    r = through_the_wire(wire.batch_to(m, entries))
    assert r.HasField("batch") and not r.HasField("snapshot")
    assert list(r.batch.entries) == entries  # the payloads, in order, byte for byte
    same(wire.batch_from(r, receiver), dataclasses.replace(m, dst=receiver))


def test_a_heartbeat_append_carries_no_entries() -> None:
    m = Append(
        src="n1",
        dst="n2",
        epoch=3,
        prev=Pos(epoch=3, index=7),
        count=0,
        entry_epoch=3,
        commit=7,
        in_sync=True,
    )
    r = through_the_wire(wire.batch_to(m, []))
    assert r.HasField("batch") and len(r.batch.entries) == 0
    same(wire.batch_from(r, "n2"), m)


# -- AppendReply: snapshot_installed is wire-only --


@SETTINGS
@given(
    src=node_ids,
    dst=node_ids,
    receiver=node_ids,
    epoch=uint64,
    ok=st.booleans(),
    durable=positions,
    diverged=st.booleans(),
    probe=uint64,
)
def test_append_reply_round_trip(
    src: str,
    dst: str,
    receiver: str,
    epoch: int,
    ok: bool,
    durable: Pos,
    diverged: bool,
    probe: int,
) -> None:
    m = AppendReply(
        src=src, dst=dst, epoch=epoch, ok=ok, durable=durable, diverged=diverged, probe=probe
    )
    r = through_the_wire(wire.append_reply_to(m))
    assert r.snapshot_installed is False  # only the snapshot receiver sets it
    same(wire.append_reply_from(r, receiver), dataclasses.replace(m, dst=receiver))


# -- Register and RegisterReply --


@SETTINGS
@given(src=node_ids, dst=node_ids, receiver=node_ids, epoch=uint64, address=text, last=positions)
def test_register_round_trip(
    src: str, dst: str, receiver: str, epoch: int, address: str, last: Pos
) -> None:
    m = Register(src=src, dst=dst, epoch=epoch, address=address, last=last)
    r = through_the_wire(wire.register_to(m))
    same(wire.register_from(r, receiver), dataclasses.replace(m, dst=receiver))


@SETTINGS
@given(
    src=node_ids, dst=node_ids, receiver=node_ids, epoch=uint64, ok=st.booleans(), master=node_ids
)
def test_register_reply_round_trip(
    src: str, dst: str, receiver: str, epoch: int, ok: bool, master: str
) -> None:
    m = RegisterReply(src=src, dst=dst, epoch=epoch, ok=ok, master=master)
    r = through_the_wire(wire.register_reply_to(m))
    same(wire.register_reply_from(r, receiver), dataclasses.replace(m, dst=receiver))


# -- CheckMasterReply: master_address is wire-only --


@SETTINGS
@given(
    src=node_ids,
    dst=node_ids,
    receiver=node_ids,
    epoch=uint64,
    role=st.sampled_from(Role),
    master=node_ids,
    last=positions,
    eligible=st.booleans(),
    membership=memberships(),
    master_address=text,
)
def test_check_master_reply_round_trip(
    src: str,
    dst: str,
    receiver: str,
    epoch: int,
    role: Role,
    master: str,
    last: Pos,
    eligible: bool,
    membership: Membership,
    master_address: str,
) -> None:
    m = CheckMasterReply(
        src=src,
        dst=dst,
        epoch=epoch,
        role=role,
        master=master,
        last=last,
        eligible=eligible,
        membership=membership,
    )
    r = through_the_wire(wire.check_reply_to(m, master_address))
    assert r.master_address == master_address  # carried beside the message, not in it
    assert r.role == role.value
    same(wire.check_reply_from(r, receiver), dataclasses.replace(m, dst=receiver))


@SETTINGS
@given(src=node_ids, receiver=node_ids, epoch=uint64)
def test_check_master_round_trip(src: str, receiver: str, epoch: int) -> None:
    m = CheckMaster(src=src, dst="ignored", epoch=epoch)
    r = through_the_wire(wire.check_master_to(m))
    # the receiver names the asker itself (a caller that is not a node has no id)
    same(wire.check_master_from(r, receiver, src), dataclasses.replace(m, dst=receiver))


def test_a_role_the_core_does_not_know_is_refused() -> None:
    r = pb.CheckMasterResponse(node_id="n1", epoch=1, role="emperor")
    with pytest.raises(ValueError):
        wire.check_reply_from(r, "n2")


# -- UpdateMaster, UpdateSlaves, UpdateAck --


@SETTINGS
@given(
    src=node_ids,
    dst=node_ids,
    receiver=node_ids,
    epoch=uint64,
    membership=memberships(),
    last=positions,
)
def test_update_master_round_trip(
    src: str, dst: str, receiver: str, epoch: int, membership: Membership, last: Pos
) -> None:
    m = UpdateMaster(src=src, dst=dst, epoch=epoch, membership=membership, last=last)
    r = through_the_wire(wire.update_master_to(m))
    same(wire.update_master_from(r, receiver), dataclasses.replace(m, dst=receiver))


@SETTINGS
@given(src=node_ids, dst=node_ids, receiver=node_ids, epoch=uint64, membership=memberships())
def test_update_slaves_round_trip(
    src: str, dst: str, receiver: str, epoch: int, membership: Membership
) -> None:
    m = UpdateSlaves(src=src, dst=dst, epoch=epoch, membership=membership)
    r = through_the_wire(wire.update_slaves_to(m))
    same(wire.update_slaves_from(r, receiver), dataclasses.replace(m, dst=receiver))


@SETTINGS
@given(
    src=node_ids,
    dst=node_ids,
    receiver=node_ids,
    epoch=uint64,
    version=st.tuples(uint64, uint64),
    ok=st.booleans(),
)
def test_update_ack_round_trip(
    src: str, dst: str, receiver: str, epoch: int, version: tuple[int, int], ok: bool
) -> None:
    m = UpdateAck(src=src, dst=dst, epoch=epoch, version=version, ok=ok)
    r = through_the_wire(wire.ack_to(m))
    same(wire.ack_from(r, receiver), dataclasses.replace(m, dst=receiver))


# -- Pos and Membership on their own --


@SETTINGS
@given(positions)
def test_pos_round_trip(p: Pos) -> None:
    same(wire.pos_from(through_the_wire(wire.pos_to(p))), p)


@settings(max_examples=25, deadline=None)
@given(memberships(max_members=300))
def test_membership_round_trip(m: Membership) -> None:
    same(wire.membership_from(through_the_wire(wire.membership_to(m))), m)


def test_many_members_round_trip() -> None:
    members = {f"n{i:05d}": f"10.0.{i // 256}.{i % 256}:7000" for i in range(5000)}
    m = Membership(
        epoch=UINT64_MAX,
        seq=UINT64_MAX,
        members=tuple(sorted(members.items())),
        in_sync=frozenset(list(members)[::2]),
        retired=frozenset(f"gone{i}" for i in range(1000)),
    )
    same(wire.membership_from(through_the_wire(wire.membership_to(m))), m)


def test_membership_is_normalized_on_arrival() -> None:
    """The wire keeps members in the sender's order and sets as lists; the
    receiver sorts members by id (the core's own order) and drops repeats."""
    r = pb.MembershipInfo(
        epoch=1,
        seq=2,
        members=[
            pb.ClusterMember(node_id="n3", address="c"),
            pb.ClusterMember(node_id="n1", address="a"),
        ],
        in_sync=["n3", "n1", "n3"],
        retired=["n9", "n9"],
    )
    same(
        wire.membership_from(r),
        Membership(
            epoch=1,
            seq=2,
            members=(("n1", "a"), ("n3", "c")),
            in_sync=frozenset({"n1", "n3"}),
            retired=frozenset({"n9"}),
        ),
    )


def test_empty_messages_read_as_the_zero_values() -> None:
    """An empty (all defaults) request reads as zeros and empty strings."""
    same(
        wire.update_slaves_from(pb.UpdateSlavesRequest(), "me"),
        UpdateSlaves(src="", dst="me", epoch=0, membership=Membership()),
    )
    same(
        wire.register_from(pb.RegisterSlaveRequest(), "me"),
        Register(src="", dst="me", epoch=0, address="", last=Pos()),
    )


# -- the edges of the wire --


@pytest.mark.parametrize("bad", [-1, UINT64_MAX + 1])
def test_numbers_outside_uint64_are_refused_not_wrapped(bad: int) -> None:
    with pytest.raises(ValueError):
        wire.pos_to(Pos(epoch=bad, index=0))
    with pytest.raises(ValueError):
        wire.ack_to(UpdateAck(src="n1", dst="n2", epoch=1, version=(0, bad), ok=True))
    m = Append(
        src="n1",
        dst="n2",
        epoch=1,
        prev=Pos(),
        count=bad,
        entry_epoch=1,
        commit=0,
        in_sync=False,
    )
    with pytest.raises(ValueError):
        wire.batch_to(m, [])


def test_what_wire_translates() -> None:
    """The inventory this file covers: a core message type gaining (or losing)
    a translation shows up here."""
    translated = set()
    for name, fn in inspect.getmembers(wire, inspect.isfunction):
        if fn.__module__ != wire.__name__:
            continue
        hints = inspect.get_annotations(fn, eval_str=True)
        for value in hints.values():
            if inspect.isclass(value) and value.__module__ == types.__name__:
                translated.add(value.__name__)
        assert name.endswith(("_to", "_from")), name
    assert translated == {
        "Append",
        "AppendReply",
        "CheckMaster",
        "Register",
        "RegisterReply",
        "CheckMasterReply",
        "UpdateMaster",
        "UpdateSlaves",
        "UpdateAck",
        "Pos",
        "Membership",
    }
