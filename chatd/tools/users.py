"""`chatd users list|show|disable|enable|delete|reset-password|logout`: an
operator's account administration over NodeAdmin.ManageUser, behind the
cluster secret; any node is asked (a slave carries it to the master), and
every change is a replicated log entry the master logs."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

import grpc

from chatd.contract import secret_metadata
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.tools.admin import channel, fail, secret_of, table
from chatd.words import counted

Action = cluster_pb2.UserAdminRequest.Action
ACTIONS = {
    "list": Action.LIST,
    "show": Action.SHOW,
    "disable": Action.DISABLE,
    "enable": Action.ENABLE,
    "delete": Action.DELETE,
    "reset-password": Action.RESET_PASSWORD,
    "logout": Action.LOGOUT,
}
DONE = {
    "disable": "disabled {name}: logins are refused",
    "enable": "enabled {name}",
    "delete": "deleted {name}",
    "reset-password": "set a new password for {name}",
    "logout": "logged {name} out everywhere",
}


def _time(us: int) -> str:
    if not us:
        return "-"
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _doc(a: cluster_pb2.AccountInfo, full: bool) -> dict[str, object]:
    doc: dict[str, object] = {
        "username": a.username,
        "disabled": a.disabled,
        "sessions": a.sessions,
        "online": a.online,
        "last_active": _time(a.last_active_us),
    }
    if full:
        doc |= {
            "created": _time(a.created_us),
            "disabled_since": _time(a.disabled_since_us),
            "messages_received": a.messages_received,
            "undelivered": a.undelivered,
            "rooms": a.rooms,
        }
    return doc


def _table(docs: list[dict[str, object]]) -> str:
    rows = [("NAME", "STATE", "SESSIONS", "ONLINE", "LAST ACTIVE")]
    for d in docs:
        state = "disabled" if d["disabled"] else "active"
        online = "yes" if d["online"] else "no"
        rows.append((str(d["username"]), state, str(d["sessions"]), online, str(d["last_active"])))
    return table(rows)


def _new_password(name: str) -> str | None:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("again: ") != first:
        print("chatd users: the passwords differ; nothing changed", file=sys.stderr)
        return None
    return first


async def _ask(args: argparse.Namespace, request: cluster_pb2.UserAdminRequest) -> Any:
    async with channel(args, args.server) as ch:
        return await cluster_pb2_grpc.NodeAdminStub(ch).ManageUser(
            request, metadata=secret_metadata(secret_of(args)), timeout=args.timeout
        )


def main(args: argparse.Namespace) -> int:
    action = args.users_command
    request = cluster_pb2.UserAdminRequest(action=ACTIONS[action])
    if action == "list":
        request.pattern = args.pattern
    else:
        request.username = args.name
    if action == "reset-password":
        password = _new_password(args.name)
        if password is None:
            return 1
        request.password = password
    try:
        r = asyncio.run(_ask(args, request))
    except grpc.aio.AioRpcError as exc:
        return fail(args.server, exc)
    if not r.ok:
        print(f"chatd users {action}: {r.error}", file=sys.stderr)
        return 1
    if action in ("list", "show"):
        docs = [_doc(a, full=action == "show") for a in r.accounts]
        if args.json:
            print(json.dumps(docs if action == "list" else docs[0], indent=2))
        elif action == "list":
            print(_table(docs) if docs else "no accounts match" if args.pattern else "no accounts")
        else:
            print("\n".join(f"{k:<18} {v}" for k, v in docs[0].items()))
        return 0
    n = r.sessions_ended
    ended = f" ({counted(n, 'session')} ended)" if n else ""
    print(DONE[action].format(name=args.name) + ended)
    return 0
