"""Conversions between the core's messages and the cluster protobufs."""

from __future__ import annotations

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


def pos_to(p: Pos) -> pb.LogPos:
    return pb.LogPos(epoch=p.epoch, index=p.index)


def pos_from(p: pb.LogPos) -> Pos:
    return Pos(int(p.epoch), int(p.index))


def membership_to(m: Membership) -> pb.MembershipInfo:
    return pb.MembershipInfo(
        epoch=m.epoch,
        seq=m.seq,
        members=[pb.ClusterMember(node_id=n, address=a) for n, a in m.members],
        in_sync=sorted(m.in_sync),
        retired=sorted(m.retired),
    )


def membership_from(m: pb.MembershipInfo) -> Membership:
    return Membership(
        epoch=int(m.epoch),
        seq=int(m.seq),
        members=tuple(sorted((x.node_id, x.address) for x in m.members)),
        in_sync=frozenset(m.in_sync),
        retired=frozenset(m.retired),
    )


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


def batch_from(r: pb.AcceptUpdatesRequest, dst: str) -> Append:
    b = r.batch
    return Append(
        src=r.node_id,
        dst=dst,
        epoch=int(r.epoch),
        prev=pos_from(b.prev),
        count=int(b.count),
        entry_epoch=int(b.entry_epoch),
        commit=int(b.commit),
        in_sync=b.in_sync,
        echo=int(b.echo),
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
        src=r.node_id,
        dst=dst,
        epoch=int(r.epoch),
        ok=r.ok,
        durable=pos_from(r.durable),
        diverged=r.diverged,
        probe=int(r.probe),
    )


def register_to(m: Register) -> pb.RegisterSlaveRequest:
    return pb.RegisterSlaveRequest(
        node_id=m.src, epoch=m.epoch, address=m.address, last=pos_to(m.last)
    )


def register_from(r: pb.RegisterSlaveRequest, dst: str) -> Register:
    return Register(
        src=r.node_id, dst=dst, epoch=int(r.epoch), address=r.address, last=pos_from(r.last)
    )


def register_reply_to(m: RegisterReply) -> pb.RegisterSlaveResponse:
    return pb.RegisterSlaveResponse(node_id=m.src, epoch=m.epoch, ok=m.ok, master_id=m.master)


def register_reply_from(r: pb.RegisterSlaveResponse, dst: str) -> RegisterReply:
    return RegisterReply(src=r.node_id, dst=dst, epoch=int(r.epoch), ok=r.ok, master=r.master_id)


def check_master_to(m: CheckMaster) -> pb.CheckMasterRequest:
    return pb.CheckMasterRequest(node_id=m.src, epoch=m.epoch)


def check_master_from(r: pb.CheckMasterRequest, dst: str, src: str) -> CheckMaster:
    """`src`: who asks (a node's id; the driver names an anonymous caller)."""
    return CheckMaster(src=src, dst=dst, epoch=int(r.epoch))


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
    return CheckMasterReply(
        src=r.node_id,
        dst=dst,
        epoch=int(r.epoch),
        role=Role(r.role),
        master=r.master_id,
        last=pos_from(r.last),
        eligible=r.eligible,
        membership=membership_from(r.membership),
    )


def update_master_to(m: UpdateMaster) -> pb.NewMasterRequest:
    return pb.NewMasterRequest(
        node_id=m.src, epoch=m.epoch, membership=membership_to(m.membership), last=pos_to(m.last)
    )


def update_master_from(r: pb.NewMasterRequest, dst: str) -> UpdateMaster:
    return UpdateMaster(
        src=r.node_id,
        dst=dst,
        epoch=int(r.epoch),
        membership=membership_from(r.membership),
        last=pos_from(r.last),
    )


def update_slaves_to(m: UpdateSlaves) -> pb.UpdateSlavesRequest:
    return pb.UpdateSlavesRequest(
        node_id=m.src, epoch=m.epoch, membership=membership_to(m.membership)
    )


def update_slaves_from(r: pb.UpdateSlavesRequest, dst: str) -> UpdateSlaves:
    return UpdateSlaves(
        src=r.node_id, dst=dst, epoch=int(r.epoch), membership=membership_from(r.membership)
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
    version = (int(r.version_epoch), int(r.version_seq))
    return UpdateAck(src=r.node_id, dst=dst, epoch=int(r.epoch), version=version, ok=r.ok)
