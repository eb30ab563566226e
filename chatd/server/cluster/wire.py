"""Conversions between the core's messages and the cluster protobufs.

Nothing read from the cluster wire reaches the core unchecked: every `*_from`
function checks every field it reads and raises `WireError` (a ValueError)
for a message the core's types, or the store, cannot hold:

- every number, epoch, node id and address passes its check
  (`chatd.server.cluster.checks`: numbers within 0..2**63-1, epochs within
  0..2**62, node ids and HOST:PORT addresses as the command line takes
  them), and an Append's last index (prev.index + count) is a number too;
- a membership lists at most `MAX_MEMBERS` members (and as many in-sync
  ids, `MAX_RETIRED` retired ids), none twice;
- a role is one the core knows;
- an Append carries exactly `count` entries, at most `MAX_APPEND_ENTRIES`
  (the core's batch size);
- a digest report carries a log digest and a state digest of 32 bytes each;
- a snapshot chunk names a position in range and a total size of at most
  `MAX_SNAPSHOT_BYTES`, and carries no more data than that total.

The receiving servicer refuses such a message (INVALID_ARGUMENT) before it
changes anything; a peer's answer that fails counts as the peer being
unreachable (`chatd.server.cluster.peers`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from chatd.core.quorum import IN_SYNC, MODES
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
    Timing,
    UpdateAck,
    UpdateMaster,
    UpdateSlaves,
)
from chatd.proto import cluster_pb2 as pb
from chatd.server.cluster import checks
from chatd.server.errors import WireError
from chatd.server.storage.statedigest import DIGEST_BYTES as STATE_DIGEST_BYTES

LOG_DIGEST_BYTES = hashlib.sha256().digest_size  # store.chain_digest
MAX_MEMBERS = 1000
MAX_RETIRED = 100_000  # ids removed for good accumulate over a cluster's life
MAX_APPEND_ENTRIES = Timing().max_batch
MAX_SNAPSHOT_BYTES = 64 << 30  # 64 GiB: a larger database cannot be sent as a snapshot
# the sender of a CheckMaster from a caller that is no node: its reply goes
# back by its request's id (chatd.server.cluster.replies), never by this name
ANONYMOUS = ""


def pos_to(p: Pos) -> pb.LogPos:
    return pb.LogPos(epoch=p.epoch, index=p.index)


def pos_from(p: pb.LogPos, what: str = "position") -> Pos:
    return Pos(checks.epoch(p.epoch, f"{what} epoch"), checks.number(p.index, f"{what} index"))


def membership_to(m: Membership) -> pb.MembershipInfo:
    return pb.MembershipInfo(
        epoch=m.epoch,
        seq=m.seq,
        members=[pb.ClusterMember(node_id=n, address=a) for n, a in m.members],
        in_sync=sorted(m.in_sync),
        retired=sorted(m.retired),
        quorum=m.quorum,
    )


def membership_from(m: pb.MembershipInfo) -> Membership:
    if len(m.members) > MAX_MEMBERS:
        raise WireError(f"membership: {len(m.members)} members, more than {MAX_MEMBERS}")
    members = tuple(
        sorted(
            (
                checks.node_id(x.node_id, "member"),
                checks.address(x.address, f"address of member {x.node_id}"),
            )
            for x in m.members
        )
    )
    if len({n for n, _ in members}) != len(members):
        raise WireError("membership: a member is listed twice")
    return Membership(
        epoch=checks.epoch(m.epoch, "membership epoch"),
        seq=checks.number(m.seq, "membership seq"),
        members=members,
        in_sync=checks.ids(m.in_sync, "in-sync set", MAX_MEMBERS),
        retired=checks.ids(m.retired, "retired ids", MAX_RETIRED),
        quorum=_quorum(m.quorum),
    )


def _quorum(value: str) -> str:
    if value == "":  # a node from before quorum modes: in-sync is all it knew
        return IN_SYNC
    if value not in MODES:
        raise WireError(f"membership: unknown quorum mode {checks.show(value)}")
    return value


def batch_to(m: Append, entries: list[bytes]) -> pb.AcceptUpdatesRequest:
    return pb.AcceptUpdatesRequest(
        node_id=m.src,
        epoch=m.epoch,
        batch=pb.UpdateBatch(
            prev=pos_to(m.prev),
            count=m.count,
            entry_epoch=m.entry_epoch,
            commit=m.commit,
            in_sync=m.in_sync,
            entries=entries,
            echo=m.echo,
        ),
    )


def sender_from(r: pb.AcceptUpdatesRequest) -> str:
    """Who sends a log stream (every message of it names the same node)."""
    return checks.node_id(r.node_id, "sender")


def batch_from(r: pb.AcceptUpdatesRequest, dst: str) -> Append:
    """The Append a batch carries; its entries (`r.batch.entries`, exactly
    `count` of them) travel beside it."""
    b = r.batch
    prev = pos_from(b.prev, "prev")
    count = checks.number(b.count, "count")
    if count > MAX_APPEND_ENTRIES:
        raise WireError(f"count {count} is more than {MAX_APPEND_ENTRIES} entries a batch")
    if count != len(b.entries):
        raise WireError(f"count {count} but {len(b.entries)} entries carried")
    checks.number(prev.index + count, "last index")
    return Append(
        src=checks.node_id(r.node_id, "sender"),
        dst=dst,
        epoch=checks.epoch(r.epoch, "epoch"),
        prev=prev,
        count=count,
        entry_epoch=checks.epoch(b.entry_epoch, "entry epoch"),
        commit=checks.number(b.commit, "commit index"),
        in_sync=b.in_sync,
        echo=checks.number(b.echo, "echo"),
    )


@dataclass(frozen=True, slots=True)
class SnapshotOffer:
    """What every chunk of one snapshot repeats: who sends it at what epoch,
    where its log ends, and its size in bytes."""

    src: str
    epoch: int
    pos: Pos
    total_bytes: int


def snapshot_offer_from(r: pb.AcceptUpdatesRequest) -> SnapshotOffer:
    """The offer a snapshot chunk belongs to (checked, with its data's size;
    whether chunks follow one another is the receiver's to check)."""
    c = r.snapshot
    total = checks.number(c.total_bytes, "snapshot size")
    if not 0 < total <= MAX_SNAPSHOT_BYTES:
        raise WireError(f"snapshot size {total} is outside 1..{MAX_SNAPSHOT_BYTES} bytes")
    if len(c.data) > total:
        raise WireError(f"a snapshot chunk of {len(c.data)} bytes, more than its {total}")
    return SnapshotOffer(
        src=checks.node_id(r.node_id, "sender"),
        epoch=checks.epoch(r.epoch, "epoch"),
        pos=pos_from(c.pos, "snapshot position"),
        total_bytes=total,
    )


def append_reply_to(m: AppendReply) -> pb.AcceptUpdatesResponse:
    return pb.AcceptUpdatesResponse(
        node_id=m.src,
        epoch=m.epoch,
        ok=m.ok,
        durable=pos_to(m.durable),
        diverged=m.diverged,
        probe=m.probe,
    )


def append_reply_from(r: pb.AcceptUpdatesResponse, dst: str) -> AppendReply:
    return AppendReply(
        src=checks.node_id(r.node_id, "sender"),
        dst=dst,
        epoch=checks.epoch(r.epoch, "epoch"),
        ok=r.ok,
        durable=pos_from(r.durable, "durable position"),
        diverged=r.diverged,
        probe=checks.number(r.probe, "probe"),
    )


def register_to(m: Register) -> pb.RegisterSlaveRequest:
    return pb.RegisterSlaveRequest(
        node_id=m.src, epoch=m.epoch, address=m.address, last=pos_to(m.last)
    )


def register_from(r: pb.RegisterSlaveRequest, dst: str) -> Register:
    return Register(
        src=checks.node_id(r.node_id, "sender"),
        dst=dst,
        epoch=checks.epoch(r.epoch, "epoch"),
        address=checks.address(r.address, "address"),
        last=pos_from(r.last, "last position"),
    )


def register_reply_to(m: RegisterReply) -> pb.RegisterSlaveResponse:
    return pb.RegisterSlaveResponse(node_id=m.src, epoch=m.epoch, ok=m.ok, master_id=m.master)


def register_reply_from(r: pb.RegisterSlaveResponse, dst: str) -> RegisterReply:
    return RegisterReply(
        src=checks.node_id(r.node_id, "sender"),
        dst=dst,
        epoch=checks.epoch(r.epoch, "epoch"),
        ok=r.ok,
        master=checks.node_id(r.master_id, "master", empty=True),
    )


def check_master_to(m: CheckMaster) -> pb.CheckMasterRequest:
    return pb.CheckMasterRequest(node_id=m.src, epoch=m.epoch)


def check_master_from(r: pb.CheckMasterRequest, dst: str) -> CheckMaster:
    """Who asks is the node the request names, or `ANONYMOUS` for a caller
    that names none (a tool, a client) or names the receiver itself."""
    asker = checks.node_id(r.node_id, "sender", empty=True)
    return CheckMaster(
        src=ANONYMOUS if asker == dst else asker, dst=dst, epoch=checks.epoch(r.epoch, "epoch")
    )


def check_reply_to(m: CheckMasterReply, master_address: str) -> pb.CheckMasterResponse:
    return pb.CheckMasterResponse(
        node_id=m.src,
        epoch=m.epoch,
        role=m.role.value,
        master_id=m.master,
        master_address=master_address,
        last=pos_to(m.last),
        eligible=m.eligible,
        membership=membership_to(m.membership),
    )


def check_reply_from(r: pb.CheckMasterResponse, dst: str) -> CheckMasterReply:
    try:
        role = Role(r.role)
    except ValueError:
        raise WireError(
            f"role {checks.show(r.role)} is not one of {[x.value for x in Role]}"
        ) from None
    return CheckMasterReply(
        src=checks.node_id(r.node_id, "sender"),
        dst=dst,
        epoch=checks.epoch(r.epoch, "epoch"),
        role=role,
        master=checks.node_id(r.master_id, "master", empty=True),
        last=pos_from(r.last, "last position"),
        eligible=r.eligible,
        membership=membership_from(r.membership),
    )


def update_master_to(m: UpdateMaster) -> pb.NewMasterRequest:
    return pb.NewMasterRequest(
        node_id=m.src, epoch=m.epoch, membership=membership_to(m.membership), last=pos_to(m.last)
    )


def update_master_from(r: pb.NewMasterRequest, dst: str) -> UpdateMaster:
    return UpdateMaster(
        src=checks.node_id(r.node_id, "sender"),
        dst=dst,
        epoch=checks.epoch(r.epoch, "epoch"),
        membership=membership_from(r.membership),
        last=pos_from(r.last, "last position"),
    )


def update_slaves_to(m: UpdateSlaves) -> pb.UpdateSlavesRequest:
    return pb.UpdateSlavesRequest(
        node_id=m.src, epoch=m.epoch, membership=membership_to(m.membership)
    )


def update_slaves_from(r: pb.UpdateSlavesRequest, dst: str) -> UpdateSlaves:
    return UpdateSlaves(
        src=checks.node_id(r.node_id, "sender"),
        dst=dst,
        epoch=checks.epoch(r.epoch, "epoch"),
        membership=membership_from(r.membership),
    )


def ack_to(m: UpdateAck) -> pb.UpdateAck:
    return pb.UpdateAck(
        node_id=m.src,
        epoch=m.epoch,
        version_epoch=m.version[0],
        version_seq=m.version[1],
        ok=m.ok,
    )


def ack_from(r: pb.UpdateAck, dst: str) -> UpdateAck:
    version = (
        checks.epoch(r.version_epoch, "membership version epoch"),
        checks.number(r.version_seq, "membership version seq"),
    )
    return UpdateAck(
        src=checks.node_id(r.node_id, "sender"),
        dst=dst,
        epoch=checks.epoch(r.epoch, "epoch"),
        version=version,
        ok=r.ok,
    )


@dataclass(frozen=True, slots=True)
class DigestReport:
    """A slave's digests at its applied index (`MasterService.ReportDigest`)."""

    node_id: str
    index: int
    log_digest: bytes
    state_digest: bytes
    min_in_sync: int = 0  # the slave's own --min-in-sync (0: unknown)
    # its web origin as it says ("": none, or unknown), checked where it is
    # kept (chatd.server.cluster.web_origins): a bad one does not cost the report
    web_origin: str = ""


def digest_report_from(r: pb.DigestReport) -> DigestReport:
    sizes = (
        ("log digest", r.log_digest, LOG_DIGEST_BYTES),
        ("state digest", r.state_digest, STATE_DIGEST_BYTES),
    )
    for name, value, size in sizes:
        if len(value) != size:
            raise WireError(f"{name} of {len(value)} bytes, not {size}")
    checks.epoch(r.epoch, "epoch")
    return DigestReport(
        node_id=checks.node_id(r.node_id, "sender"),
        index=checks.number(r.index, "index"),
        log_digest=r.log_digest,
        state_digest=r.state_digest,
        min_in_sync=checks.number(r.min_in_sync, "min_in_sync"),
        web_origin=r.web_origin,
    )
