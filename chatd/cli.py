"""The `chatd` command: parses, builds one Config, and hands over.

Subcommands: serve (run a node), status (a node's view of itself). Bad flags
give a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from typing import NoReturn

import grpc

from chatd import __version__
from chatd.cluster import secret_metadata
from chatd.config import Config, add_serve_arguments, address, config_from_args
from chatd.node import Node, StartupError
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.store import StoreError

log = logging.getLogger("chatd")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> Parser:
    parser = Parser(prog="chatd", description="chatd: a replicated chat daemon")
    parser.add_argument("--version", action="version", version=f"chatd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    serve = sub.add_parser("serve", help="run a node")
    add_serve_arguments(serve)
    status = sub.add_parser("status", help="show a node's view of itself and its cluster")
    status.add_argument(
        "--server",
        type=address,
        default="127.0.0.1:50051",
        help="HOST:PORT of the node (default %(default)s)",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--cluster-secret", default=None, help="the cluster secret (default: CHATD_CLUSTER_SECRET)"
    )
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "status":
        return status(args)
    parser.print_help()
    return 2


# -- serve --


def serve(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except argparse.ArgumentTypeError as exc:
        print(f"chatd serve: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(_serve(config))
    return uvloop.run(_serve(config))


async def _serve(config: Config) -> int:
    node = Node(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.request_stop)
    try:
        await node.start()
    except (StartupError, StoreError) as exc:
        print(f"chatd: error: {exc}", file=sys.stderr)
        return 1
    await node.wait_stopped()
    await node.stop()
    if node.fatal is not None:
        print(f"chatd: fatal: {node.fatal}", file=sys.stderr)
        return 1
    return 0


# -- status --


def status(args: argparse.Namespace) -> int:
    secret = args.cluster_secret or os.environ.get("CHATD_CLUSTER_SECRET")
    try:
        reply = asyncio.run(_fetch_status(args.server, secret, deadline=args.timeout))
    except grpc.aio.AioRpcError as exc:
        print(f"chatd: {args.server}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    doc = status_document(reply)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_status(doc))
    return 0


async def _fetch_status(
    server: str, secret: str | None, *, deadline: float
) -> cluster_pb2.NodeStatus:
    async with grpc.aio.insecure_channel(server) as channel:
        stub = cluster_pb2_grpc.NodeAdminStub(channel)
        return await stub.Status(
            cluster_pb2.StatusRequest(), metadata=secret_metadata(secret), timeout=deadline
        )


def status_document(s: cluster_pb2.NodeStatus) -> dict[str, object]:
    return {
        "node_id": s.node_id,
        "address": s.address,
        "role": s.role,
        "epoch": s.epoch,
        "master": s.master,
        "master_id": s.master_id,
        "applied_index": s.applied_index,
        "commit_index": s.commit_index,
        "digest": s.digest,
        "members": [
            {
                "node_id": m.node_id,
                "address": m.address,
                "role": m.role,
                "in_sync": m.in_sync,
                "alive": m.alive,
                "applied_index": m.applied_index,
                "lag": m.lag,
            }
            for m in s.members
        ],
    }


def format_status(doc: dict[str, object]) -> str:
    lines = [
        f"node     {doc['node_id']} ({doc['role']}) at {doc['address']}",
        f"epoch    {doc['epoch']}",
        f"master   {doc['master_id']} at {doc['master']}",
        f"applied  {doc['applied_index']} (committed {doc['commit_index']})",
        f"digest   {doc['digest']}",
        "",
    ]
    rows = [("NODE", "ADDRESS", "ROLE", "IN SYNC", "ALIVE", "APPLIED", "LAG")]
    members = doc["members"]
    assert isinstance(members, list)
    for m in members:
        rows.append(
            (
                m["node_id"],
                m["address"],
                m["role"],
                "yes" if m["in_sync"] else "no",
                "yes" if m["alive"] else "no",
                str(m["applied_index"]),
                str(m["lag"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
