"""Round trips through chatd/server/cluster/wire.py, and its checks, property-tested
(hypothesis).

Every core message that wire.py translates goes to its cluster protobuf, through
the bytes a peer would read, and back to an equal message, for every value the
checks accept; every value they refuse (a number above 2**63-1, a malformed
node id or address, a membership too large or with repeats, an unknown role,
an Append whose count is not its entries') raises WireError. What a translation
legitimately does not carry is asserted exactly: `dst` (the receiver fills in
its own id), a CheckMasterReply's wire-only `master_address`, an
AcceptUpdatesResponse's `snapshot_installed`, and an Append's entries (they
travel beside the message and come out of `batch.entries`). Messages are built
with keyword arguments only, as the core's messages are becoming keyword-only.
"""

from __future__ import annotations

import dataclasses
import inspect
import string
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from google.protobuf.message import Message as PbMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.config import NODE_ID_RE, is_node_address
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
from chatd.server.cluster import wire
from chatd.server.cluster.peer_service import SnapshotReceiver
from chatd.server.errors import WireError

P = TypeVar("P", bound=PbMessage)

UINT64_MAX = 2**64 - 1  # every epoch, index, count and seq is a uint64 in cluster.proto
MAX_INT = 2**63 - 1  # what the wire lets through: SQLite's INTEGER
SETTINGS = settings(max_examples=150, deadline=None)

numbers = st.one_of(st.integers(0, MAX_INT), st.sampled_from([0, 1, MAX_INT]))
MAX_EPOCH = 2**62  # epochs keep room to count up
epochs = st.one_of(st.integers(0, MAX_EPOCH), st.sampled_from([0, 1, MAX_EPOCH]))
too_large = st.one_of(st.integers(MAX_INT + 1, UINT64_MAX), st.sampled_from([2**63, UINT64_MAX]))
# what `--node-id` accepts (chatd.config.NODE_ID_RE, [A-Za-z0-9_.-]{1,64}): the
# same strings as st.from_regex would draw, built as text of that alphabet,
# which hypothesis draws many times faster (test_the_id_alphabet_is_the_rules)
ID_CHARS = string.ascii_letters + string.digits + "_.-"
valid_ids = st.text(ID_CHARS, min_size=1, max_size=64)
node_ids = valid_ids
maybe_ids = st.one_of(st.just(""), valid_ids)  # fields where "" means "none"
addresses = st.builds(
    "{}:{}".format,
    st.one_of(
        st.text(ID_CHARS + "%:[]", min_size=1, max_size=40),  # [A-Za-z0-9_.%:\[\]-]{1,40}
        st.sampled_from(["127.0.0.1", "::1", "[::1]", "chatd1", "fe80::1%eth0"]),
    ),
    st.integers(1, 65535),
)
# proto3 strings are UTF-8: anything UTF-8 can encode, the empty string included
text = st.text(st.characters(codec="utf-8"), max_size=24)
positions = st.builds(Pos, epoch=epochs, index=numbers)


@st.composite
def memberships(draw: st.DrawFn, max_members: int = 12) -> Membership:
    # The core keeps `members` sorted by node id (Membership.with_changes,
    # Machine: tuple(sorted(...))), one address per id.
    members = draw(st.dictionaries(node_ids, addresses, max_size=max_members))
    ids = st.sampled_from(sorted(members)) if members else node_ids
    return Membership(
        epoch=draw(epochs),
        seq=draw(numbers),
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
    epoch=epochs,
    prev_epoch=epochs,
    prev_index=numbers,
    entry_epoch=epochs,
    commit=numbers,
    in_sync=st.booleans(),
    echo=numbers,
    entries=st.lists(st.binary(max_size=64), max_size=20),
)
def test_append_round_trip(
    src: str,
    dst: str,
    receiver: str,
    epoch: int,
    prev_epoch: int,
    prev_index: int,
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
        prev=Pos(epoch=prev_epoch, index=min(prev_index, MAX_INT - len(entries))),
        count=len(entries),  # a batch carries exactly its count of entries
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
    epoch=epochs,
    ok=st.booleans(),
    durable=positions,
    diverged=st.booleans(),
    probe=numbers,
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
@given(
    src=node_ids, dst=node_ids, receiver=node_ids, epoch=epochs, address=addresses, last=positions
)
def test_register_round_trip(
    src: str, dst: str, receiver: str, epoch: int, address: str, last: Pos
) -> None:
    m = Register(src=src, dst=dst, epoch=epoch, address=address, last=last)
    r = through_the_wire(wire.register_to(m))
    same(wire.register_from(r, receiver), dataclasses.replace(m, dst=receiver))


@SETTINGS
@given(
    src=node_ids, dst=node_ids, receiver=node_ids, epoch=epochs, ok=st.booleans(), master=node_ids
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
    epoch=epochs,
    role=st.sampled_from(Role),
    master=maybe_ids,
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
@given(src=maybe_ids, receiver=node_ids, epoch=epochs)
def test_check_master_round_trip(src: str, receiver: str, epoch: int) -> None:
    m = CheckMaster(src=src, dst="ignored", epoch=epoch)
    r = through_the_wire(wire.check_master_to(m))
    # a caller that names no node, or the receiver itself, asks anonymously
    asker = wire.ANONYMOUS if src == receiver else src
    same(wire.check_master_from(r, receiver), dataclasses.replace(m, src=asker, dst=receiver))


# -- UpdateMaster, UpdateSlaves, UpdateAck --


@SETTINGS
@given(
    src=node_ids,
    dst=node_ids,
    receiver=node_ids,
    epoch=epochs,
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
@given(src=node_ids, dst=node_ids, receiver=node_ids, epoch=epochs, membership=memberships())
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
    epoch=epochs,
    version=st.tuples(epochs, numbers),
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


def test_the_most_members_round_trip() -> None:
    members = {f"n{i:05d}": f"10.0.{i // 256}.{i % 256}:7000" for i in range(wire.MAX_MEMBERS)}
    m = Membership(
        epoch=MAX_EPOCH,
        seq=MAX_INT,
        members=tuple(sorted(members.items())),
        in_sync=frozenset(members),
        retired=frozenset(f"gone{i}" for i in range(10_000)),
    )
    same(wire.membership_from(through_the_wire(wire.membership_to(m))), m)


def test_membership_is_sorted_on_arrival() -> None:
    """The wire keeps members in the sender's order and sets as lists; the
    receiver sorts members by id (the core's own order)."""
    r = pb.MembershipInfo(
        epoch=1,
        seq=2,
        members=[
            pb.ClusterMember(node_id="n3", address="c:3"),
            pb.ClusterMember(node_id="n1", address="a:1"),
        ],
        in_sync=["n3", "n1"],
        retired=["n9"],
    )
    same(
        wire.membership_from(r),
        Membership(
            epoch=1,
            seq=2,
            members=(("n1", "a:1"), ("n3", "c:3")),
            in_sync=frozenset({"n1", "n3"}),
            retired=frozenset({"n9"}),
        ),
    )


def test_an_empty_request_names_no_sender_and_is_refused() -> None:
    """An empty (all defaults) request reads as zeros and empty strings, and
    a sender that is no node is refused; only CheckMaster may come from
    anyone (a tool or a client asks it too)."""
    with pytest.raises(WireError, match="sender '' is not a node id"):
        wire.update_slaves_from(pb.UpdateSlavesRequest(), "me")
    with pytest.raises(WireError, match="sender '' is not a node id"):
        wire.register_from(pb.RegisterSlaveRequest(), "me")
    same(
        wire.check_master_from(pb.CheckMasterRequest(), "me"),
        CheckMaster(src=wire.ANONYMOUS, dst="me", epoch=0),
    )


# -- every check: one valid message of each kind, one field spoiled at a time --


def _membership() -> pb.MembershipInfo:
    return pb.MembershipInfo(
        epoch=2,
        seq=1,
        members=[
            pb.ClusterMember(node_id="n1", address="127.0.0.1:7001"),
            pb.ClusterMember(node_id="n2", address="127.0.0.1:7002"),
        ],
        in_sync=["n1", "n2"],
        retired=["n0"],
    )


# kind -> (a valid message, its translation into the core's message)
KINDS: dict[str, tuple[Callable[[], Any], Callable[[Any], object]]] = {
    "batch": (
        lambda: pb.AcceptUpdatesRequest(
            node_id="n1",
            epoch=3,
            batch=pb.UpdateBatch(
                prev=pb.LogPos(epoch=3, index=7),
                count=2,
                entry_epoch=3,
                commit=7,
                in_sync=True,
                entries=[b"a", b"b"],
                echo=1,
            ),
        ),
        lambda r: wire.batch_from(r, "n2"),
    ),
    "snapshot": (
        lambda: pb.AcceptUpdatesRequest(
            node_id="n1",
            epoch=3,
            snapshot=pb.SnapshotChunk(
                data=b"x" * 10, pos=pb.LogPos(epoch=3, index=9), total_bytes=100
            ),
        ),
        wire.snapshot_offer_from,
    ),
    "append_reply": (
        lambda: pb.AcceptUpdatesResponse(
            node_id="n2", epoch=3, ok=True, durable=pb.LogPos(epoch=3, index=9), probe=4
        ),
        lambda r: wire.append_reply_from(r, "n1"),
    ),
    "register": (
        lambda: pb.RegisterSlaveRequest(
            node_id="n2", epoch=3, address="127.0.0.1:7002", last=pb.LogPos(epoch=2, index=5)
        ),
        lambda r: wire.register_from(r, "n1"),
    ),
    "register_reply": (
        lambda: pb.RegisterSlaveResponse(node_id="n1", epoch=3, ok=True, master_id="n1"),
        lambda r: wire.register_reply_from(r, "n2"),
    ),
    "check_master": (
        lambda: pb.CheckMasterRequest(node_id="n2", epoch=3),
        lambda r: wire.check_master_from(r, "n1"),
    ),
    "check_reply": (
        lambda: pb.CheckMasterResponse(
            node_id="n1",
            epoch=3,
            role="master",
            master_id="n1",
            master_address="127.0.0.1:7001",
            last=pb.LogPos(epoch=3, index=9),
            eligible=True,
            membership=_membership(),
        ),
        lambda r: wire.check_reply_from(r, "n2"),
    ),
    "update_master": (
        lambda: pb.NewMasterRequest(
            node_id="n2", epoch=4, membership=_membership(), last=pb.LogPos(epoch=3, index=9)
        ),
        lambda r: wire.update_master_from(r, "n1"),
    ),
    "update_slaves": (
        lambda: pb.UpdateSlavesRequest(node_id="n1", epoch=3, membership=_membership()),
        lambda r: wire.update_slaves_from(r, "n2"),
    ),
    "ack": (
        lambda: pb.UpdateAck(node_id="n2", epoch=3, version_epoch=3, version_seq=2, ok=True),
        lambda r: wire.ack_from(r, "n1"),
    ),
}


def _set(r: Any, path: str, value: object) -> None:
    """Sets the field at a dotted path; "in_sync.0" is an element of a list."""
    *parents, last = path.split(".")
    for part in parents:
        r = r[int(part)] if part.isdigit() else getattr(r, part)
    if last.isdigit():
        r[int(last)] = value
    else:
        setattr(r, last, value)


NUMBER_FIELDS = [
    ("batch", "epoch"),
    ("batch", "batch.prev.epoch"),
    ("batch", "batch.prev.index"),
    ("batch", "batch.count"),
    ("batch", "batch.entry_epoch"),
    ("batch", "batch.commit"),
    ("batch", "batch.echo"),
    ("snapshot", "epoch"),
    ("snapshot", "snapshot.pos.epoch"),
    ("snapshot", "snapshot.pos.index"),
    ("snapshot", "snapshot.total_bytes"),
    ("append_reply", "epoch"),
    ("append_reply", "durable.epoch"),
    ("append_reply", "durable.index"),
    ("append_reply", "probe"),
    ("register", "epoch"),
    ("register", "last.epoch"),
    ("register", "last.index"),
    ("register_reply", "epoch"),
    ("check_master", "epoch"),
    ("check_reply", "epoch"),
    ("check_reply", "last.epoch"),
    ("check_reply", "last.index"),
    ("check_reply", "membership.epoch"),
    ("check_reply", "membership.seq"),
    ("update_master", "epoch"),
    ("update_master", "last.epoch"),
    ("update_master", "last.index"),
    ("update_master", "membership.epoch"),
    ("update_master", "membership.seq"),
    ("update_slaves", "epoch"),
    ("update_slaves", "membership.epoch"),
    ("update_slaves", "membership.seq"),
    ("ack", "epoch"),
    ("ack", "version_epoch"),
    ("ack", "version_seq"),
]
# a count or a size at 2**63-1 is refused for other reasons (more entries or
# bytes than carried, or allowed), and so is a last index past 2**63-1
BOUNDED_OTHERWISE = {
    ("batch", "batch.count"),
    ("batch", "batch.prev.index"),
    ("snapshot", "snapshot.total_bytes"),
}
ID_FIELDS = [
    ("batch", "node_id"),
    ("snapshot", "node_id"),
    ("append_reply", "node_id"),
    ("register", "node_id"),
    ("register_reply", "node_id"),
    ("register_reply", "master_id"),
    ("check_master", "node_id"),
    ("check_reply", "node_id"),
    ("check_reply", "master_id"),
    ("check_reply", "membership.members.0.node_id"),
    ("check_reply", "membership.in_sync.0"),
    ("check_reply", "membership.retired.0"),
    ("update_master", "node_id"),
    ("update_master", "membership.members.1.node_id"),
    ("update_master", "membership.in_sync.1"),
    ("update_master", "membership.retired.0"),
    ("update_slaves", "node_id"),
    ("update_slaves", "membership.members.0.node_id"),
    ("ack", "node_id"),
]
# where "" means "no node": no master known, or a caller that is not a node
MAY_BE_EMPTY = {
    ("register_reply", "master_id"),
    ("check_master", "node_id"),
    ("check_reply", "master_id"),
}
ADDRESS_FIELDS = [
    ("register", "address"),
    ("check_reply", "membership.members.0.address"),
    ("update_master", "membership.members.1.address"),
    ("update_slaves", "membership.members.0.address"),
]


def _not_an_id(t: str) -> bool:
    return NODE_ID_RE.fullmatch(t) is None


def _not_an_address(t: str) -> bool:
    return not is_node_address(t)


# not a node id: empty, too long, or a character --node-id refuses
bad_ids = st.one_of(
    st.sampled_from(["", "x" * 65, "n 1", "n1\n", "n/1", "@127.0.0.1:7001", "nœud", "n1\x00"]),
    text.filter(_not_an_id),
)
bad_addresses = st.one_of(
    st.sampled_from(
        [
            "",
            "host",
            "host:",
            ":7001",
            "host:0",
            "host:65536",
            "host:123456",
            "host:-1",
            "ho st:7001",
            "host:7001\n",
            "h" * 260 + ":7001",
            "host/path:7001",
        ]
    ),
    text.filter(_not_an_address),
)


def _is_epoch(path: str) -> bool:
    return path.rsplit(".", 1)[-1].endswith("epoch")


def test_every_check_starts_from_valid_messages() -> None:
    for make, translate in KINDS.values():
        translate(through_the_wire(make()))


@pytest.mark.parametrize(("kind", "path"), NUMBER_FIELDS)
@settings(max_examples=20, deadline=None)
@given(bad=too_large)
def test_a_number_above_2_63_minus_1_is_refused(kind: str, path: str, bad: int) -> None:
    make, translate = KINDS[kind]
    r = make()
    _set(r, path, bad)
    with pytest.raises(WireError):
        translate(through_the_wire(r))


@pytest.mark.parametrize(("kind", "path"), sorted(set(NUMBER_FIELDS) - BOUNDED_OTHERWISE))
def test_2_63_minus_1_is_accepted(kind: str, path: str) -> None:
    """(2**62 for an epoch: epochs keep room to count up.)"""
    top = MAX_EPOCH if _is_epoch(path) else MAX_INT
    make, translate = KINDS[kind]
    r = make()
    _set(r, path, top)
    got = translate(through_the_wire(r))
    assert str(top) in repr(got)


@pytest.mark.parametrize(
    ("kind", "path"), [(k, p) for k, p in NUMBER_FIELDS if _is_epoch(p)], ids=str
)
def test_an_epoch_above_2_62_is_refused(kind: str, path: str) -> None:
    """A node that wins an election takes the highest epoch it saw + 1: a
    peer's epoch of 2**63-1 would leave it one it cannot store."""
    make, translate = KINDS[kind]
    for bad in (MAX_EPOCH + 1, MAX_INT):
        r = make()
        _set(r, path, bad)
        with pytest.raises(WireError, match=r"outside 0\.\.2\*\*62"):
            translate(through_the_wire(r))


def test_a_negative_number_is_refused() -> None:
    """A protobuf uint64 cannot carry one (see below), but the check holds
    on its own for whatever reads as a negative integer."""
    for epoch, index in ((-1, 0), (0, -1), (-(2**63), 0)):
        with pytest.raises(WireError, match=r"outside 0\.\.2\*\*6"):
            wire.pos_from(SimpleNamespace(epoch=epoch, index=index))  # type: ignore[arg-type]
    with pytest.raises(WireError):
        wire.ack_from(
            SimpleNamespace(node_id="n2", epoch=-5, version_epoch=1, version_seq=1, ok=True),  # type: ignore[arg-type]
            "n1",
        )


def test_a_last_index_past_2_63_minus_1_is_refused() -> None:
    make, translate = KINDS["batch"]
    r = make()
    r.batch.prev.index = MAX_INT - 1  # entries MAX_INT and MAX_INT + 1
    with pytest.raises(WireError, match="last index"):
        translate(r)
    r.batch.prev.index = MAX_INT - 2
    assert translate(r) == wire.batch_from(r, "n2")
    heartbeat = make()
    heartbeat.batch.prev.index = MAX_INT
    heartbeat.batch.count = 0
    del heartbeat.batch.entries[:]
    assert wire.batch_from(heartbeat, "n2").prev.index == MAX_INT


@pytest.mark.parametrize(("kind", "path"), ID_FIELDS)
@settings(max_examples=25, deadline=None)
@given(bad=bad_ids)
def test_a_malformed_node_id_is_refused(kind: str, path: str, bad: str) -> None:
    if bad == "" and (kind, path) in MAY_BE_EMPTY:
        return
    make, translate = KINDS[kind]
    r = make()
    _set(r, path, bad)
    with pytest.raises(WireError):
        translate(through_the_wire(r))


def test_the_id_alphabet_is_the_rules() -> None:
    """valid_ids draws exactly the strings NODE_ID_RE accepts: its alphabet
    is the regex's one-character matches, its lengths the regex's bounds."""
    one = {chr(i) for i in range(0x3000) if NODE_ID_RE.fullmatch(chr(i))}
    assert one == set(ID_CHARS), sorted(one ^ set(ID_CHARS))
    assert NODE_ID_RE.fullmatch("a" * 64) and not NODE_ID_RE.fullmatch("a" * 65)
    assert not NODE_ID_RE.fullmatch("")


@pytest.mark.parametrize(("kind", "path"), ID_FIELDS)
@settings(max_examples=10, deadline=None)
@given(good=valid_ids)
def test_any_node_id_the_command_line_accepts_is_accepted(kind: str, path: str, good: str) -> None:
    make, translate = KINDS[kind]
    r = make()
    _set(r, path, good)
    try:
        translate(through_the_wire(r))
    except WireError as exc:  # only a repeat of an id already listed may fail
        assert "twice" in str(exc)


@pytest.mark.parametrize(("kind", "path"), sorted(MAY_BE_EMPTY))
def test_no_node_is_an_empty_id_where_the_field_allows_it(kind: str, path: str) -> None:
    make, translate = KINDS[kind]
    r = make()
    _set(r, path, "")
    translate(through_the_wire(r))


@pytest.mark.parametrize(("kind", "path"), ADDRESS_FIELDS)
@settings(max_examples=25, deadline=None)
@given(bad=bad_addresses)
def test_a_malformed_address_is_refused(kind: str, path: str, bad: str) -> None:
    make, translate = KINDS[kind]
    r = make()
    _set(r, path, bad)
    with pytest.raises(WireError):
        translate(through_the_wire(r))


@pytest.mark.parametrize(
    "good",
    ["127.0.0.1:1", "chatd1:65535", "::1:50051", "[::1]:50051", "fe80::1%eth0:7000", "a_b.c-d:80"],
)
def test_the_addresses_a_node_gives_are_accepted(good: str) -> None:
    make, translate = KINDS["register"]
    r = make()
    r.address = good
    assert translate(r) == wire.register_from(r, "n1")


@pytest.mark.parametrize("kind", ["check_reply", "update_master", "update_slaves"])
def test_a_membership_too_large_or_with_repeats_is_refused(kind: str) -> None:
    make, translate = KINDS[kind]
    spoil: list[tuple[Callable[[pb.MembershipInfo], None], str]] = [
        (
            lambda m: m.members.extend(
                pb.ClusterMember(node_id=f"x{i}", address=f"h:{i + 1}")
                for i in range(wire.MAX_MEMBERS)
            ),
            "members, more than",
        ),
        (lambda m: m.in_sync.extend(f"x{i}" for i in range(wire.MAX_MEMBERS)), "more than"),
        (lambda m: m.retired.extend(f"x{i}" for i in range(wire.MAX_RETIRED)), "more than"),
        (
            lambda m: m.members.append(pb.ClusterMember(node_id="n1", address="other:1")),
            "listed twice",
        ),
        (lambda m: m.in_sync.append("n1"), "listed twice"),
        (lambda m: m.retired.append("n0"), "listed twice"),
    ]
    for change, reason in spoil:
        r = make()
        change(r.membership)
        with pytest.raises(WireError, match=reason):
            translate(through_the_wire(r))


@pytest.mark.parametrize("role", ["emperor", "", "MASTER", "master "])
def test_a_role_the_core_does_not_know_is_refused(role: str) -> None:
    make, translate = KINDS["check_reply"]
    r = make()
    r.role = role
    with pytest.raises(WireError, match="role"):
        translate(r)


@settings(max_examples=50, deadline=None)
@given(count=st.integers(0, 2 * wire.MAX_APPEND_ENTRIES), carried=st.integers(0, 40))
def test_an_appends_count_must_be_its_entries(count: int, carried: int) -> None:
    make, translate = KINDS["batch"]
    r = make()
    r.batch.count = count
    r.batch.ClearField("entries")
    r.batch.entries.extend([b"e"] * carried)
    if count == carried:
        assert wire.batch_from(r, "n2").count == count
    else:
        with pytest.raises(WireError, match="entries"):
            translate(r)


def test_an_append_of_more_than_a_batch_is_refused() -> None:
    make, translate = KINDS["batch"]
    for n, ok in ((wire.MAX_APPEND_ENTRIES, True), (wire.MAX_APPEND_ENTRIES + 1, False)):
        r = make()
        r.batch.count = n
        r.batch.ClearField("entries")
        r.batch.entries.extend([b""] * n)
        if ok:
            translate(r)
        else:
            with pytest.raises(WireError, match="more than"):
                translate(r)


def test_a_snapshot_offer_is_bounded() -> None:
    make, translate = KINDS["snapshot"]
    for total, data, ok in (
        (wire.MAX_SNAPSHOT_BYTES, b"x", True),
        (wire.MAX_SNAPSHOT_BYTES + 1, b"x", False),
        (0, b"", False),
        (5, b"x" * 6, False),
        (6, b"x" * 6, True),
    ):
        r = make()
        r.snapshot.total_bytes = total
        r.snapshot.data = data
        if ok:
            assert translate(r) == wire.SnapshotOffer(
                src="n1", epoch=3, pos=Pos(3, 9), total_bytes=total
            )
        else:
            with pytest.raises(WireError, match="snapshot"):
                translate(r)


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
        if fn.__module__ != wire.__name__ or name.startswith("_"):
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


# -- a snapshot's chunks, as the receiving node collects them --


async def test_snapshot_chunks_must_continue_the_offer_they_began(tmp_path: Path) -> None:
    offer = wire.SnapshotOffer(src="n1", epoch=3, pos=Pos(3, 9), total_bytes=10)

    def chunk(data: bytes, last: bool = False) -> pb.SnapshotChunk:
        return pb.SnapshotChunk(data=data, last=last, pos=pb.LogPos(epoch=3, index=9))

    ok = SnapshotReceiver(tmp_path / "ok", offer)
    assert not await ok.add(offer, chunk(b"x" * 4))
    assert await ok.add(offer, chunk(b"y" * 6, last=True))
    assert (tmp_path / "ok").read_bytes() == b"xxxxyyyyyy"
    spoilt: list[tuple[wire.SnapshotOffer, pb.SnapshotChunk, str]] = [
        (dataclasses.replace(offer, src="n2"), chunk(b"y"), "in the middle of"),
        (dataclasses.replace(offer, epoch=4), chunk(b"y"), "in the middle of"),
        (dataclasses.replace(offer, pos=Pos(3, 10)), chunk(b"y"), "in the middle of"),
        (dataclasses.replace(offer, total_bytes=11), chunk(b"y"), "in the middle of"),
        (offer, chunk(b"y" * 7), "more than the 10 offered"),
        (offer, chunk(b"y" * 6), "does not say it is the last"),
        (offer, chunk(b"y" * 5, last=True), "says it is the last"),
        (offer, chunk(b""), "empty"),
    ]
    for i, (other, c, reason) in enumerate(spoilt):
        r = SnapshotReceiver(tmp_path / f"bad{i}", offer)
        await r.add(offer, chunk(b"x" * 4))
        with pytest.raises(WireError, match=reason):
            await r.add(other, c)
        r.discard()
        assert not (tmp_path / f"bad{i}").exists()


def test_a_digest_report_is_checked() -> None:
    """MasterService.ReportDigest, like every cluster call: bad values refused
    (the servicer answers INVALID_ARGUMENT), good ones passed on as they are."""
    good = pb.DigestReport(
        node_id="n2", epoch=3, index=MAX_INT, log_digest=b"l" * 32, state_digest=b"s" * 32
    )
    r = wire.digest_report_from(through_the_wire(good))
    assert (r.node_id, r.index, r.log_digest, r.state_digest) == (
        "n2",
        MAX_INT,
        b"l" * 32,
        b"s" * 32,
    )
    bad: list[dict[str, object]] = [
        {"log_digest": b"l" * 31},
        {"state_digest": b""},
        {"state_digest": b"s" * 33},
        {"node_id": "n 2"},
        {"index": MAX_INT + 1},
        {"epoch": MAX_EPOCH + 1},
    ]
    for change in bad:
        r2 = pb.DigestReport()
        r2.CopyFrom(good)
        for field, value in change.items():
            setattr(r2, field, value)
        with pytest.raises(WireError):
            wire.digest_report_from(through_the_wire(r2))
