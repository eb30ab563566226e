"""The `chatd` command: parses, builds one Config, and hands over.

Subcommands: serve (run a node), status (a node's view of itself). Bad flags
give a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import NoReturn

from chatd import __version__, logs
from chatd.client import terminal
from chatd.config import Config, add_serve_arguments, address, config_from_args
from chatd.server.node import Node, StartupError
from chatd.server.store import StoreError
from chatd.tools import admin, bench
from chatd.tools import demo as demo_mod

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
    admin.add_tls_arguments(status)
    bench_p = sub.add_parser("bench", help="measure a cluster (or serve the no-op baseline)")
    bench.add_arguments(bench_p)
    demo = sub.add_parser("demo", help="a 3-node cluster on loopback and a terminal client")
    demo_mod.add_arguments(demo)
    chat = sub.add_parser("chat", help="the interactive terminal client")
    terminal.add_arguments(chat)
    gui_p = sub.add_parser("gui", help="the desktop (Tk) client")
    # (declared here: the GUI module loads Tk, which a server image need not have)
    gui_p.add_argument(
        "--server",
        default="127.0.0.1:50051",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="the nodes to use (any one is enough; default %(default)s)",
    )
    admin.add_tls_arguments(gui_p)
    health = sub.add_parser("health", help="a node's gRPC health (exit 0 when SERVING)")
    health.add_argument("--server", type=address, default="127.0.0.1:50051")
    health.add_argument("--service", default="", help="service name (default: the node)")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait")
    admin.add_tls_arguments(health)
    members = sub.add_parser("members", help="manage the cluster's members")
    msub = members.add_subparsers(dest="members_command", metavar="ACTION", parser_class=Parser)
    remove = msub.add_parser("remove", help="retire a node from the cluster for good")
    remove.add_argument("node_id", metavar="NODE_ID")
    for p in (remove,):
        p.add_argument(
            "--server",
            type=address,
            default="127.0.0.1:50051",
            help="HOST:PORT of any member (default %(default)s)",
        )
        p.add_argument(
            "--cluster-secret",
            default=None,
            help="the cluster secret (default: CHATD_CLUSTER_SECRET)",
        )
        p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
        admin.add_tls_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "bench":
        return bench.main(args)
    if args.command == "demo":
        return demo_mod.main(args)
    if args.command == "chat":
        return terminal.main(args)
    if args.command == "gui":
        from chatd.client import gui  # Tk is loaded only for the GUI

        return gui.main(args)
    if args.command == "health":
        return admin.health(args)
    if args.command == "status":
        return admin.status(args)
    if args.command == "members" and args.members_command == "remove":
        return admin.remove_member(args)
    parser.print_help()
    return 2


# -- serve --


def serve(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except argparse.ArgumentTypeError as exc:
        print(f"chatd serve: error: {exc}", file=sys.stderr)
        return 2
    log_context = logs.setup(config.log_level, config.log_format)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(_serve(config, log_context))
    return uvloop.run(_serve(config, log_context))


async def _serve(config: Config, log_context: logs.NodeContext) -> int:
    node = Node(config)
    log_context.source = node.log_context
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


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
