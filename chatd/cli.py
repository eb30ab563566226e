"""The `chatd` command: parses, builds one Config, and hands over.

Every subcommand's flags are declared here, so parsing imports nothing
heavy; only then is the chosen subcommand's module imported (`serve` does
not load the terminal client, `chat` does not load the server, and the
health check every few seconds loads neither). Bad flags give a one-line
error and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from chatd import __version__, logs
from chatd.config import SHORT_SECRET, Config, add_serve_arguments, address, config_from_args
from chatd.tls import TlsError

log = logging.getLogger("chatd")

DEFAULT_SERVER = "127.0.0.1:50051"
# how the README installs the server's part (a bare pip install is refused by
# a system Python that is externally managed, PEP 668)
SERVER_INSTALL = "./scripts/install in chatd's source (or pip install 'chatd[server]' in a venv)"


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
    add_admin_arguments(status, "HOST:PORT of the node", 5.0)
    status.add_argument("--json", action="store_true", help="print JSON")
    bench = sub.add_parser("bench", help="measure a cluster (or serve the no-op baseline)")
    add_bench_arguments(bench)
    demo = sub.add_parser("demo", help="a 3-node cluster on loopback and a terminal client")
    demo.add_argument("--no-client", action="store_true", help="only run the cluster, until Ctrl-C")
    demo.add_argument(
        "--keep-data", action="store_true", help="keep the temporary data directory at the end"
    )
    chat = sub.add_parser("chat", help="the interactive terminal client")
    add_nodes_argument(chat)
    chat.add_argument("--user", default=None, help="log in as this user at start")
    add_retry_argument(chat)
    add_tls_arguments(chat)
    gui = sub.add_parser("gui", help="the desktop (Tk) client")
    add_nodes_argument(gui)
    add_retry_argument(gui)
    add_tls_arguments(gui)
    health = sub.add_parser("health", help="a node's gRPC health (exit 0 when SERVING)")
    add_admin_arguments(health, "HOST:PORT of the node, its client or its peer address", 3.0)
    health.add_argument("--service", default="", help="service name (default: the node)")
    members = sub.add_parser("members", help="manage the cluster's members")
    msub = members.add_subparsers(dest="members_command", metavar="ACTION", parser_class=Parser)
    remove = msub.add_parser("remove", help="retire a node from the cluster for good")
    remove.add_argument("node_id", metavar="NODE_ID")
    add_admin_arguments(remove, "HOST:PORT of any member", 10.0)
    users = sub.add_parser("users", help="administer accounts (behind the cluster secret)")
    usub = users.add_subparsers(dest="users_command", metavar="ACTION", parser_class=Parser)
    add_users_arguments(usub)
    for p in usub.choices.values():
        add_admin_arguments(p, "HOST:PORT of any member", 30.0)
    add_rollback_arguments(sub)
    backup = sub.add_parser("backup", help="take a consistent backup of a running cluster")
    backup.add_argument(
        "file", metavar="FILE", help="where to write it (an SQLite file, readable by you only)"
    )
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export = sub.add_parser("export", help="one user's data as JSON lines (for data requests)")
    export.add_argument(
        "--user", required=True, help="whose data (stdout, if a file, is made readable by you only)"
    )
    export.add_argument(
        "--backup",
        metavar="FILE",
        default=None,
        help="read a backup file (default: take a fresh backup from --server)",
    )
    for p in (backup, export):
        add_admin_arguments(p, "HOST:PORT of any member", 600.0)
    return parser


def add_users_arguments(sub: argparse._SubParsersAction[Parser]) -> None:
    """The ACTIONs of `chatd users` (their --server etc. are added by the caller)."""
    ls = sub.add_parser("list", help="every account (or those whose name holds PATTERN)")
    ls.add_argument("pattern", nargs="?", default="", metavar="PATTERN")
    show = sub.add_parser("show", help="one account in full")
    for p in (ls, show):
        p.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("name", metavar="NAME")
    for action, text in (
        ("disable", "end the account's sessions and refuse its logins"),
        ("enable", "allow a disabled account to log in again"),
        ("delete", "delete the account, as its user could"),
        ("reset-password", "set a new password (asked, or one line on stdin); sessions end"),
        ("logout", "end every session of the account"),
    ):
        sub.add_parser(action, help=text).add_argument("name", metavar="NAME")


def add_rollback_arguments(sub: argparse._SubParsersAction[Parser]) -> None:
    rb = sub.add_parser(
        "rollback", help="entries a node dropped when another master's log replaced its own"
    )
    rsub = rb.add_subparsers(dest="rollback_command", metavar="ACTION", parser_class=Parser)
    ls = rsub.add_parser("list", help="show the entries of rollback files")
    ls.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="rollback files, or a node's data dir"
    )
    ls.add_argument("--json", action="store_true", help="print the records as JSON lines")
    resend = rsub.add_parser("resend", help="write their messages again, as new messages")
    resend.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="rollback files, or a node's data dir"
    )
    resend.add_argument(
        "--no-note",
        action="store_true",
        help="the text alone (default: a note with the original time starts it)",
    )
    resend.add_argument("--verbose", action="store_true", help="a line for each message written")
    add_admin_arguments(resend, "HOST:PORT of any member", 30.0)


def add_admin_arguments(p: argparse.ArgumentParser, server_help: str, timeout: float) -> None:
    """--server, --cluster-secret, --timeout and the TLS flags of an operator command."""
    p.add_argument(
        "--server",
        type=address,
        default=_first_server(),
        help=f"{server_help} (default: the first of CHATD_SERVER's, else {DEFAULT_SERVER})",
    )
    p.add_argument(
        "--cluster-secret", default=None, help="the cluster secret (default: CHATD_CLUSTER_SECRET)"
    )
    p.add_argument(
        "--cluster-secret-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="read the cluster secret from FILE (its first line; default: "
        "CHATD_CLUSTER_SECRET_FILE)",
    )
    p.add_argument("--timeout", type=float, default=timeout, help="seconds to wait")
    add_tls_arguments(p)


def add_nodes_argument(p: argparse.ArgumentParser) -> None:
    """A client's --server: any number of nodes, as the client library takes them."""
    p.add_argument(
        "--server",
        default=os.environ.get("CHATD_SERVER") or DEFAULT_SERVER,
        metavar="HOST:PORT[,HOST:PORT...]",
        help="the nodes to use (any one is enough; default: CHATD_SERVER, else %(default)s)",
    )


def positive_seconds(text: str) -> float:
    """A number of seconds above 0 (ArgumentTypeError otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):  # (NaN is not above 0 either)
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def add_retry_argument(p: argparse.ArgumentParser) -> None:
    """A client's --retry-for: how long a call is tried on the nodes before it fails."""
    p.add_argument(
        "--retry-for",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long a call, a send or a login goes on trying the nodes (one that is "
        "down, or one refusing for now) before it fails and says why (default %(default)s)",
    )


def _first_server() -> str:
    """An operator command's default node: the first of CHATD_SERVER's."""
    listed = (os.environ.get("CHATD_SERVER") or "").split(",")
    return listed[0].strip() or DEFAULT_SERVER


def add_tls_arguments(p: argparse.ArgumentParser) -> None:
    """A client's TLS: --tls (the system's roots), --tls-ca (a CA of one's
    own), --tls-cert/--tls-key (mutual TLS); none of them: plaintext."""
    p.add_argument(
        "--tls",
        action="store_true",
        help="talk TLS, verifying the node's certificate against the system's trusted roots",
    )
    p.add_argument(
        "--tls-ca",
        type=Path,
        default=None,
        metavar="FILE",
        help="talk TLS, verifying the node's certificate against this CA (PEM) instead",
    )
    p.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        metavar="FILE",
        help="show this client certificate (PEM): required at the peer listener of nodes "
        "run with --tls-ca (mutual TLS); the client listener asks for none",
    )
    p.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="key of --tls-cert")


def positive_count(text: str) -> int:
    """A whole number above 0 (ArgumentTypeError otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a number above 0: {text!r}")
    return value


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="127.0.0.1:50051", metavar="HOST:PORT[,HOST:PORT...]")
    p.add_argument(
        "--users",
        type=positive_count,
        default=16,
        help="accounts made and logged in, one stream each (default %(default)s)",
    )
    p.add_argument(
        "--concurrency",
        type=positive_count,
        default=32,
        help="workers sending at once (default %(default)s); see --window",
    )
    p.add_argument(
        "--window",
        type=positive_count,
        default=1,
        metavar="W",
        help="sends each worker keeps in flight, each written without waiting for the "
        "previous result and timed from its issue to its result. 1 (the default): a "
        "worker's one send goes as user after user in turn. Above 1: worker i sends as "
        "user i (modulo --users) only, so with stream or web each stream has W sends "
        "in flight (--users N --concurrency N --window W: N streams, W sends in flight "
        "each; workers beyond --users share a user's stream); with unary, W Send calls "
        "of that user under way at once",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="target Sends a second over all workers (default: as fast as it goes)",
    )
    p.add_argument(
        "--transport",
        choices=("unary", "stream", "web"),
        default="unary",
        help="unary: a Send call each, deliveries on Subscribe streams; stream: one "
        "Connect stream per user for its sends and deliveries; web: the same stream "
        "on a WebSocket per user, at the --web origins (default %(default)s)",
    )
    p.add_argument(
        "--web",
        default="",
        metavar="URL[,URL...]",
        help="--transport web: the nodes' web origins (http://HOST:PORT), the users "
        "spread over them; the accounts are still made at --server",
    )
    p.add_argument(
        "--no-streams",
        action="store_true",
        help="unary: open no Subscribe streams (Send alone; no delivery latency)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object, no progress bar")
    p.add_argument(
        "--noop-server",
        type=int,
        metavar="PORT",
        help="serve the no-op baseline on 127.0.0.1:PORT instead",
    )


Command = Callable[[argparse.Namespace], int]


def command(args: argparse.Namespace) -> Command | None:
    """The chosen subcommand's entry point, importing its module and no other
    subcommand's (None: no subcommand chosen)."""
    if args.command == "serve":
        logs.node_grpc_log()
        return serve  # (imports the server when it runs)
    if args.command == "bench":
        from chatd.tools import bench

        return bench.main
    if args.command in ("demo", "chat", "gui"):
        logs.quiet_grpc()  # (their screen is the terminal)
    if args.command == "demo":
        from chatd.tools import demo

        return demo.main
    if args.command == "chat":
        from chatd.client import terminal

        return terminal.main
    if args.command == "gui":
        from chatd.client import gui

        return gui.main
    if args.command == "users" and args.users_command:
        from chatd.tools import users

        return users.main
    if args.command == "rollback" and args.rollback_command:
        from chatd.tools import rollback

        return rollback.list_ if args.rollback_command == "list" else rollback.resend
    if args.command in ("backup", "export"):
        from chatd.tools import backups

        return backups.backup if args.command == "backup" else backups.export
    if args.command == "health":
        from chatd.tools import health

        return health.main
    if args.command in ("status", "members"):
        from chatd.tools import admin

        if args.command == "status":
            return admin.status
        if args.members_command == "remove":
            return admin.remove_member
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        import chatd.contract  # noqa: F401  (it reads CHATD_KEEPALIVE_MS)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        run_command = command(args)
    except ModuleNotFoundError as exc:  # a client-only install asked for the server's part
        print(
            f"chatd {args.command}: error: {exc.name} is not installed; the server's "
            f"part needs it: {SERVER_INSTALL}",
            file=sys.stderr,
        )
        return 1
    if run_command is None:
        parser.print_help()
        return 2
    try:
        rc = run_command(args)
        sys.stdout.flush()  # (here, where a closed pipe is caught)
        return rc
    except (TlsError, argparse.ArgumentTypeError) as exc:  # a file that cannot be read: one line
        print(f"chatd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`chatd status | head -1`): quietly
        _drop_stdout()
        return 1


def _drop_stdout() -> None:
    """Points stdout at /dev/null, so that the interpreter's last flush of
    what could not be written fails no more (as Python's documentation of
    SIGPIPE advises)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# -- serve --


def serve(args: argparse.Namespace) -> int:
    try:
        import chatd.server.node  # noqa: F401  (here: a client-only install says so)
    except ModuleNotFoundError as exc:
        print(
            f"chatd serve: error: {exc.name} is not installed; a node needs the server's "
            f"part: {SERVER_INSTALL}",
            file=sys.stderr,
        )
        return 1
    try:
        config = config_from_args(args)
    except argparse.ArgumentTypeError as exc:
        print(f"chatd serve: error: {exc}", file=sys.stderr)
        return 2
    log_context = logs.setup(config.log_level, config.log_format)
    if config.cluster_secret and len(config.cluster_secret) < SHORT_SECRET:
        log.warning(
            "the cluster secret is %d characters long: anyone who guesses it may replicate, "
            "administer and back up the cluster; choose one of %d characters or more "
            "(e.g. openssl rand -hex 32)",
            len(config.cluster_secret),
            SHORT_SECRET,
        )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(_serve(config, log_context))
    return uvloop.run(_serve(config, log_context))


async def _serve(config: Config, log_context: logs.NodeContext) -> int:
    from chatd.server.build import build
    from chatd.server.errors import StartupError
    from chatd.server.storage.store import StoreError

    loop = asyncio.get_running_loop()
    asked = asyncio.Event()  # a signal while the node is built stops it once it has started
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, asked.set)
    try:
        node = await build(config, log_context)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, node.request_stop)
        await node.start()
        if asked.is_set():
            node.request_stop()
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
