"""`chatd rollback list|resend`: the entries a node dropped from its log
when another master's replaced it (chatd.server.storage.rollback), shown, and their
messages written again.

`resend` writes each rolled-back message (kind send_message) as a new
message from its sender to its recipient or room, through any node (a
slave carries it to the master), behind the cluster secret. Each carries
the original request id (or one made of the entry's epoch and index), so a
message already written again, by a client's retry on the new master or by
an earlier resend (of this file or of another node's copy of it), is not
written twice. By default the text starts with a note giving the original
time: the message arrives late and out of its place in the conversation,
and the recipient should not take it for something written now
(`--no-note` re-sends the text alone). Other kinds (logins, read markers,
room changes, accounts) are listed, not replayed: replaying them blindly
could undo what the users did since.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import grpc

from chatd.contract import Code, secret_metadata
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.server.storage import rollback
from chatd.tools.admin import channel, fail, secret_of, table
from chatd.words import counted

TEXT_COLUMN = 40


def note(record: dict[str, Any]) -> str:
    """The note that starts a re-sent message's text."""
    when = str(record.get("time", ""))[:19].replace("T", " ")
    return f"[re-sent: first sent {when} UTC, rolled back by a failover] "


def records_of(paths: list[Path]) -> list[dict[str, Any]]:
    """Every record of the named files (or dirs), once per (epoch, index):
    two nodes cut off together each keep a copy of the same entries."""
    seen: dict[tuple[int, int], dict[str, Any]] = {}
    for path in rollback.files(paths):
        for r in rollback.read(path):
            seen.setdefault((int(r["epoch"]), int(r["index"])), r)
    return [seen[k] for k in sorted(seen)]


def request_id(record: dict[str, Any]) -> str:
    return str(record.get("request_id") or f"rollback-{record['epoch']}-{record['index']}")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_COLUMN else text[: TEXT_COLUMN - 1] + "…"


def _records(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The records of the PATHs given (None: one cannot be read, said)."""
    try:
        return records_of(args.paths)
    except (OSError, ValueError) as exc:
        print(f"chatd rollback {args.rollback_command}: {exc}", file=sys.stderr)
        return None


def list_(args: argparse.Namespace) -> int:
    if (records := _records(args)) is None:
        return 1
    if args.json:
        for r in records:
            print(json.dumps(r, ensure_ascii=False))
        return 0
    if not records:
        print("no rolled-back entries")
        return 0
    rows = [("TIME (UTC)", "EPOCH:INDEX", "KIND", "ACKNOWLEDGED", "FROM", "TO", "TEXT")]
    for r in records:
        to = f"room {r['room']}" if r.get("room") else str(r.get("recipient", ""))
        rows.append(
            (
                str(r.get("time", ""))[:19].replace("T", " "),
                f"{r['epoch']}:{r['index']}",
                str(r["kind"]),
                str(r.get("acknowledged", "")),
                str(r.get("sender", r.get("username", r.get("creator", "")))),
                to,
                _short(str(r.get("text", ""))),
            )
        )
    print(table(rows))
    messages = sum(1 for r in records if r["kind"] == rollback.MESSAGE)
    print(f"\n{counted(len(records), 'entry', 'entries')} ({counted(messages, 'message')})")
    return 0


def _too_long(got: cluster_pb2.ResendResponse) -> bool:
    """Whether the master refused the body as over its --max-message-chars
    (a node older than error_code says so in words only)."""
    if got.ok:
        return False
    return got.error_code == Code.INVALID_MESSAGE or "invalid message" in got.error


async def _resend(args: argparse.Namespace, records: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(written, already there, refused)."""
    written = there = refused = 0
    async with channel(args, args.server) as ch:
        stub = cluster_pb2_grpc.NodeAdminStub(ch)
        metadata = secret_metadata(secret_of(args))
        for r in records:
            text = str(r.get("text", ""))
            request = cluster_pb2.ResendRequest(
                sender=str(r.get("sender", "")),
                recipient=str(r.get("recipient", "")),
                room=str(r.get("room", "")),
                body=text if args.no_note else note(r) + text,
                request_id=request_id(r),
            )
            got = await stub.Resend(request, metadata=metadata, timeout=args.timeout)
            if not args.no_note and _too_long(got):
                request.body = text  # over the master's length limit with the note: alone
                got = await stub.Resend(request, metadata=metadata, timeout=args.timeout)
            where = f"{r['epoch']}:{r['index']}"
            if not got.ok:
                refused += 1
                print(f"{where}: not re-sent: {got.error}", file=sys.stderr)
            elif got.duplicate:
                there += 1
            else:
                written += 1
                if args.verbose:
                    print(f"{where}: re-sent as message {got.message_id}")
    return written, there, refused


def resend(args: argparse.Namespace) -> int:
    if (records := _records(args)) is None:
        return 1
    # (a retry a client made, applied as the entry it repeats, is re-sent
    # with that one: the same request id)
    messages = [r for r in records if r["kind"] == rollback.MESSAGE and "duplicate_of" not in r]
    try:
        written, there, refused = asyncio.run(_resend(args, messages))
    except grpc.aio.AioRpcError as exc:
        return fail(args.server, exc)
    others = len([r for r in records if r["kind"] != rollback.MESSAGE])
    print(
        f"re-sent {counted(written, 'message')}; "
        f"{there} {'was' if there == 1 else 'were'} there already (written again before); "
        f"{refused} refused; {counted(others, 'entry', 'entries')} of other kinds not replayed"
        + (" (chatd rollback list shows them)" if others else "")
    )
    return 1 if refused else 0
