"""Operator commands: `chatd status` and `chatd members remove`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

import grpc

from chatd.contract import secret_metadata
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.tls import credentials_of
from chatd.tools.secret import refused
from chatd.tools.secret import secret_of as secret_of  # (the other commands take it here)


def channel(args: argparse.Namespace, address: str) -> grpc.aio.Channel:
    """A channel as the command's TLS flags say (plaintext without any)."""
    credentials = credentials_of(args)
    if credentials is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, credentials)


def fail(server: str, exc: grpc.aio.AioRpcError) -> int:
    return refused(server, exc.code().name, exc.details() or "")


# -- status --


def status(args: argparse.Namespace) -> int:
    try:
        reply = asyncio.run(_fetch_status(args, secret_of(args), deadline=args.timeout))
    except grpc.aio.AioRpcError as exc:
        return fail(args.server, exc)
    doc = status_document(reply)
    doc["asked"] = args.server
    print(json.dumps(doc, indent=2) if args.json else format_status(doc))
    return 0


async def _fetch_status(
    args: argparse.Namespace, secret: str | None, *, deadline: float
) -> cluster_pb2.NodeStatus:
    async with channel(args, args.server) as ch:
        stub = cluster_pb2_grpc.NodeAdminStub(ch)
        return await stub.Status(
            cluster_pb2.StatusRequest(), metadata=secret_metadata(secret), timeout=deadline
        )


def status_document(s: cluster_pb2.NodeStatus) -> dict[str, object]:
    doc = _document(s)
    if s.quorum == "majority":  # the in-sync set is the voters there
        for m in doc["members"]:  # type: ignore[attr-defined]
            m["voter"] = m["in_sync"]
    return doc


def _document(s: cluster_pb2.NodeStatus) -> dict[str, object]:
    return {
        "node_id": s.node_id,
        "address": s.address,
        "peer_address": s.peer_address,
        "web_origin": s.web_origin,  # ("": no web client)
        "members_seen_by": s.members_seen_by,
        "role": s.role,
        "epoch": s.epoch,
        "quorum": s.quorum or "in-sync",
        "master": s.master,
        "master_peer_address": s.master_peer_address,
        "master_id": s.master_id,
        "applied_index": s.applied_index,
        "commit_index": s.commit_index,
        # "digest" is the log digest, under its name of old (for scripts that read it)
        "digest": s.log_digest,
        "log_digest": s.log_digest,
        "state_digest": s.state_digest,
        "rolled_back": s.rolled_back,
        "rollback_files": s.rollback_files,
        "min_in_sync": s.min_in_sync or 1,
        "writes_refused": s.writes_refused,
        "diverged": [
            {
                "node_id": d.node_id,
                "index": d.index,
                "state_digest": d.state_digest,
                "master_state_digest": d.master_state_digest,
            }
            for d in s.diverged
        ],
        "members": [
            {
                "node_id": m.node_id,
                "address": m.address,
                "role": m.role,
                "in_sync": m.in_sync,
                "alive": m.alive,
                "applied_index": m.applied_index,
                "lag": m.lag,
                "applied_known": not m.applied_unknown,  # (else applied_index, lag: 0)
                "left_reason": m.left_reason,
                "min_in_sync": m.min_in_sync,  # (0: unknown)
                "web_origin": m.web_origin,  # ("": none, or unknown)
            }
            for m in s.members
        ],
    }


def _master_at(doc: dict[str, object]) -> str:
    """Where the master is: its client address, or (a slave that has not
    heard it yet) its peer address."""
    if doc.get("master"):
        return f" at {doc['master']}"
    if doc.get("master_peer_address"):
        return f" (peers at {doc['master_peer_address']})"
    return ""


def _asked(doc: dict[str, object]) -> list[str]:
    """The address the command was given, when the node is not there by
    its own account (the addresses shown are the ones the nodes advertise:
    in a container network, those of that network)."""
    asked = doc.get("asked")
    if not asked or asked in (doc["address"], doc.get("peer_address")):
        return []
    return [f"asked    at {asked}: the addresses shown are the ones the nodes advertise"]


def format_status(doc: dict[str, object]) -> str:
    lines = [
        f"node     {doc['node_id']} ({doc['role']}) at {doc['address']}"
        + (f", peers at {doc['peer_address']}" if doc.get("peer_address") else "")
        + (f", web at {doc['web_origin']}" if doc.get("web_origin") else ""),
        *_asked(doc),
        f"epoch    {doc['epoch']}",
        f"quorum   {doc.get('quorum', 'in-sync')}",
        f"master   {doc['master_id'] or '(none)'}{_master_at(doc)}",
        f"applied  {doc['applied_index']} (committed {doc['commit_index']})",
        f"log      digest {doc['log_digest']}",
        f"state    digest {doc['state_digest']}",
    ]
    if doc.get("writes_refused"):
        members = doc["members"]
        assert isinstance(members, list)
        in_sync = len([m for m in members if m["in_sync"]])
        lines.append(
            f"WRITES   refused: {in_sync} node{'' if in_sync == 1 else 's'} in sync, fewer "
            f"than --min-in-sync {doc['min_in_sync']}"
        )
    if doc.get("rolled_back"):
        lines.append(
            f"ROLLBACK {doc['rolled_back']} entries dropped from this node's log, in "
            f"{doc['rollback_files']} files of its data dir (chatd rollback list DATA_DIR)"
        )
    diverged = doc["diverged"]
    assert isinstance(diverged, list)
    for d in diverged:
        lines.append(
            f"DIVERGED {d['node_id']}: state digest {d['state_digest']} at index {d['index']}, "
            f"the master's {d['master_state_digest']}"
        )
    seen_by = doc.get("members_seen_by")
    if seen_by and seen_by != doc["node_id"]:
        lines.append(f"members  as the master {seen_by} sees them")
    elif not seen_by:
        lines.append("members  liveness unknown: no master answered (this node's own view)")
    lines.append("")
    # (in majority mode the in-sync set is the set of voters: members that
    # have caught up once, left only by removal)
    sync = "VOTER" if doc.get("quorum") == "majority" else "IN SYNC"
    headings = ("NODE", "PEER ADDRESS", "ROLE", sync, "ALIVE", "APPLIED", "LAG", "MIN IN SYNC")
    members = doc["members"]
    assert isinstance(members, list)
    web = any(m.get("web_origin") for m in members)  # (a column only when a member has one)
    rows = [(*headings, *(("WEB ORIGIN",) if web else ()), "WHY OUT OF SYNC")]
    for m in members:
        rows.append(
            (
                m["node_id"],
                m["address"],
                m["role"],
                "yes" if m["in_sync"] else "no",
                "yes" if m["alive"] else "no",
                str(m["applied_index"]) if m.get("applied_known", True) else "?",
                str(m["lag"]) if m.get("applied_known", True) else "?",
                str(m.get("min_in_sync") or "?"),
                *((str(m.get("web_origin") or "-"),) if web else ()),
                str(m.get("left_reason", "")),
            )
        )
    return "\n".join([*lines, table(rows)])


def table(rows: Sequence[tuple[str, ...]]) -> str:
    """Rows as aligned columns, two spaces apart (the first row: headings)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


# -- members remove --


def remove_member(args: argparse.Namespace) -> int:
    try:
        ok, error = asyncio.run(_remove(args, args.node_id, secret_of(args), deadline=args.timeout))
    except grpc.aio.AioRpcError as exc:
        return fail(args.server, exc)
    if not ok:
        print(f"chatd: cannot remove {args.node_id}: {error}", file=sys.stderr)
        return 1
    print(f"removed {args.node_id} from the cluster")
    return 0


async def _remove(
    args: argparse.Namespace, node_id: str, secret: str | None, *, deadline: float
) -> tuple[bool, str]:
    """Asks the node at `server`; a slave carries the request to the master."""
    async with channel(args, args.server) as ch:
        r = await cluster_pb2_grpc.NodeAdminStub(ch).RemoveMember(
            cluster_pb2.RemoveMemberRequest(node_id=node_id),
            metadata=secret_metadata(secret),
            timeout=deadline,
        )
    return r.ok, r.error
