"""Settings of one node: one dataclass, built from flags and CHATD_* variables.

Every `serve` flag --some-name can also be given as CHATD_SOME_NAME; a flag
on the command line wins over the environment.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# An address a node gives the others (--advertise, or the --listen host with
# the port it bound): HOST:PORT, the host a name, an IPv4 address, or an IPv6
# one bare ("::1:50051", as a node listening on [::1] says) or in brackets,
# a zone (%eth0) allowed. The cluster wire refuses any other form
# (chatd.server.cluster.wire), as it refuses a node id NODE_ID_RE does not match.
NODE_ADDRESS_RE = re.compile(r"([A-Za-z0-9_.%:\[\]-]+):([0-9]{1,5})")
PEER_PORT = 50052  # --peer-listen's default port (clients: 50051)
MAX_ADDRESS_CHARS = 262  # a 253-character DNS name in brackets, ':', 5 digits
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """'100ms', '1.5s', '10m', '12h', '30d' or plain seconds, as seconds."""
    m = _DURATION_RE.fullmatch(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 100ms, 30s, 30d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port_s = text.rpartition(":")
    if not sep or not host or not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise argparse.ArgumentTypeError(f"not a HOST:PORT address: {text!r}")
    return host.strip("[]"), int(port_s)


def address(text: str) -> str:
    parse_address(text)
    return text


def is_node_address(text: str) -> bool:
    m = NODE_ADDRESS_RE.fullmatch(text) if len(text) <= MAX_ADDRESS_CHARS else None
    return m is not None and 1 <= int(m.group(2)) <= 65535


def node_address(text: str) -> str:
    if not is_node_address(text):
        raise argparse.ArgumentTypeError(
            f"not a HOST:PORT address other nodes can be given "
            f"(host letters, digits and ._%:[]-, port 1..65535): {text!r}"
        )
    return text


def node_id(text: str) -> str:
    if not NODE_ID_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"node id must match {NODE_ID_RE.pattern}: {text!r}")
    return text


def _nonnegative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not in {lo}..{hi}")
        return value

    return parse


def address_list(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts:
        raise argparse.ArgumentTypeError("expected HOST:PORT[,HOST:PORT...]")
    for part in parts:
        parse_address(part)
    return parts


@dataclass(frozen=True)
class Config:
    role: str = "master"
    join: tuple[str, ...] = ()
    node_id: str | None = None
    listen: str = "127.0.0.1:50051"
    advertise: str | None = None
    peer_listen: str = "127.0.0.1:50052"
    peer_advertise: str | None = None
    data_dir: Path = Path("chatd-data")
    cluster_secret: str | None = None
    log_level: str = "info"
    min_password_length: int = 8
    max_message_chars: int = 4096
    session_ttl: float = 30 * 86400.0
    password_hash_cost: int = 14
    sync: str = "full"
    max_request_bytes: int = 256 * 1024
    subscriber_queue: int = 1000
    heartbeat_interval: float = 0.1
    failover_timeout: float = 0.5
    max_lag_time: float = 1.0
    quorum: str | None = None  # None: in-sync when founding, else the cluster's
    min_in_sync: int = 1
    log_retention: int = 100_000
    reflection: bool = True
    send_rate: float = 100.0
    send_burst: int = 200
    max_streams_per_user: int = 16
    max_room_members: int = 1000
    max_rooms_per_user: int = 100
    account_rate: float = 20.0
    room_rate: float = 30.0
    invite_rate: float = 60.0
    room_write_rate: float = 20.0
    max_invitations: int = 100
    first_frame_timeout: float = 5.0
    max_unopened_streams: int = 16
    log_format: str = "text"
    metrics_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    restore: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def listen_host(self) -> str:
        return parse_address(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return parse_address(self.listen)[1]

    @property
    def peer_host(self) -> str:
        return parse_address(self.peer_listen)[0]

    @property
    def peer_port(self) -> int:
        return parse_address(self.peer_listen)[1]


@dataclass(frozen=True)
class _Flag:
    """One `serve` flag; its default is CHATD_<NAME> when that is set, else `default`."""

    name: str
    default: object = None
    type: Callable[[str], object] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    help: str | None = None
    switch: bool = False  # store_true; CHATD_<NAME> other than "", "0", "false" sets it

    @property
    def env_var(self) -> str:
        return "CHATD_" + self.name.removeprefix("--").upper().replace("-", "_")


_D = Config()

# In the order `chatd serve --help` lists them (the order is part of the CLI).
_SERVE_FLAGS = (
    # Identity, listening and cluster membership.
    _Flag(
        "--role",
        choices=("master",),
        help="master: found a new cluster (the default without --join; a data dir "
        "that already holds a node rejoins its cluster instead)",
    ),
    _Flag(
        "--quorum",
        choices=("in-sync", "majority"),
        help="when founding a cluster: in-sync (default) acknowledges a write once "
        "every in-sync node has it, N+1 nodes survive N crashes; majority once a "
        "majority has it, 2f+1 nodes survive f crashes and any network partition. "
        "Kept in the cluster's membership: a joining node follows the cluster's (a "
        "node whose data dir holds another mode refuses to start)",
    ),
    _Flag(
        "--join",
        type=address_list,
        metavar="HOST:PORT[,HOST:PORT...]",
        help="join the cluster through any of these live members' peer addresses",
    ),
    _Flag(
        "--advertise",
        type=node_address,
        help="HOST:PORT clients reach this node at (default: --listen); clients are "
        "told it to find the master",
    ),
    _Flag(
        "--peer-advertise",
        type=node_address,
        help="HOST:PORT other nodes reach this node at (default: --peer-listen)",
    ),
    _Flag(
        "--node-id",
        type=node_id,
        help="this node's id (default: generated once, kept in the data dir)",
    ),
    _Flag(
        "--listen",
        _D.listen,
        address,
        help="HOST:PORT to serve clients on, requests held to --max-request-bytes "
        "(default %(default)s)",
    ),
    _Flag(
        "--peer-listen",
        type=address,
        help="HOST:PORT to serve the other nodes on (replication, joins, relayed client "
        "calls), every call but health checks behind the cluster secret (default: the "
        "--listen host, port 50052; port 0 when --listen's port is 0)",
    ),
    _Flag(
        "--data-dir",
        _D.data_dir,
        Path,
        help="where the SQLite file lives (default %(default)s)",
    ),
    _Flag(
        "--restore",
        type=Path,
        metavar="FILE",
        help="found a new cluster from a backup (chatd backup): the node checks the "
        "file and takes its data into an empty data dir (started again with the same "
        "backup, it goes on from its data dir); excludes --join",
    ),
    _Flag(
        "--cluster-secret",
        help="shared secret of the cluster services (CHATD_CLUSTER_SECRET)",
    ),
    _Flag(
        "--cluster-secret-file",
        type=Path,
        metavar="FILE",
        help="read the cluster secret from FILE (its first line; e.g. a Docker secret, "
        "/run/secrets/NAME) instead of --cluster-secret",
    ),
    _Flag("--log-level", _D.log_level, choices=("debug", "info", "warning", "error")),
    # Accounts and messages.
    _Flag("--min-password-length", _D.min_password_length, _int_range(1, 1024)),
    _Flag("--max-message-chars", _D.max_message_chars, _int_range(1, 65536)),
    _Flag(
        "--session-ttl",
        "30d",
        parse_duration,
        help="idle time after which a session ends (default 30d)",
    ),
    _Flag(
        "--password-hash-cost",
        _D.password_hash_cost,
        _int_range(4, 20),
        help="scrypt cost: N = 2**cost (default %(default)s)",
    ),
    # Storage.
    _Flag(
        "--sync",
        _D.sync,
        choices=("full", "normal"),
        help="SQLite synchronous mode: full survives power loss (default)",
    ),
    # Limits on what one client may ask for.
    _Flag(
        "--max-request-bytes",
        _D.max_request_bytes,
        _int_range(1024, 64 * 1024 * 1024),
        help="largest request a client may send; gRPC refuses a larger one before "
        "buffering it (default %(default)s)",
    ),
    _Flag(
        "--subscriber-queue",
        _D.subscriber_queue,
        _int_range(1, 1_000_000),
        help="messages a slow Subscribe stream may fall behind before it is ended",
    ),
    _Flag(
        "--send-rate",
        _D.send_rate,
        _nonnegative,
        help="Sends a second allowed per user (all their sessions together), 0 for no "
        "limit (default %(default)s)",
    ),
    _Flag(
        "--send-burst",
        _D.send_burst,
        _int_range(1, 10**6),
        help="Sends a session may make at once above the rate (default %(default)s)",
    ),
    _Flag(
        "--account-rate",
        _D.account_rate,
        _nonnegative,
        help="accounts one client address may create an hour, 0 for no limit (default %(default)s)",
    ),
    _Flag(
        "--max-streams-per-user",
        _D.max_streams_per_user,
        _int_range(1, 10**5),
        help="open Subscribe streams allowed per user (default %(default)s)",
    ),
    _Flag(
        "--max-room-members",
        _D.max_room_members,
        _int_range(2, 10**6),
        help="members a room may have, joined or invited (default %(default)s)",
    ),
    _Flag(
        "--max-rooms-per-user",
        _D.max_rooms_per_user,
        _int_range(1, 10**6),
        help="rooms a user may have joined (invitations wait outside it; before the "
        "cluster speaks protocol 3: joined or invited) (default %(default)s)",
    ),
    _Flag(
        "--max-invitations",
        _D.max_invitations,
        _int_range(1, 10**6),
        help="invitations a user may hold unanswered; a new one drops the oldest "
        "(default %(default)s)",
    ),
    _Flag(
        "--room-rate",
        _D.room_rate,
        _nonnegative,
        help="rooms a user may create an hour, 0 for no limit (default %(default)s)",
    ),
    _Flag(
        "--invite-rate",
        _D.invite_rate,
        _nonnegative,
        help="room invitations a user may send a minute, 0 for no limit (default %(default)s)",
    ),
    _Flag(
        "--room-write-rate",
        _D.room_write_rate,
        _nonnegative,
        help="other room changes (join, leave, remove, admin, decline, delete) and read "
        "markers a user may make a second, in bursts of 5 seconds' worth, 0 for no "
        "limit (default %(default)s)",
    ),
    _Flag(
        "--first-frame-timeout",
        "5s",
        parse_duration,
        help="a Connect stream whose open frame has not come this long after it "
        "started is ended (default 5s)",
    ),
    _Flag(
        "--max-unopened-streams",
        _D.max_unopened_streams,
        _int_range(1, 10**6),
        help="Connect streams one client address may hold before their open frame; "
        "at the bound a new one ends the oldest (default %(default)s)",
    ),
    # Operations: log format, TLS, metrics, reflection.
    _Flag(
        "--log-format",
        _D.log_format,
        choices=("text", "json"),
        help="one line per event, as text or JSON (default %(default)s)",
    ),
    _Flag("--tls-cert", type=Path, help="PEM certificate (chain) of this node: serve TLS"),
    _Flag("--tls-key", type=Path, help="PEM private key of --tls-cert"),
    _Flag(
        "--tls-ca",
        type=Path,
        help="PEM CA of the cluster: the peer listener requires a certificate it "
        "signed (mutual TLS between nodes); clients show none",
    ),
    _Flag(
        "--metrics-port",
        type=_int_range(0, 65535),
        help="serve Prometheus metrics over HTTP on this port (on the --listen host)",
    ),
    _Flag("--no-reflection", switch=True, help="do not serve gRPC server reflection"),
    # Replication timing.
    _Flag(
        "--heartbeat-interval",
        "100ms",
        parse_duration,
        help="how often nodes exchange heartbeats (default 100ms)",
    ),
    _Flag(
        "--failover-timeout",
        "500ms",
        parse_duration,
        help="silence after which a peer is presumed dead (default 500ms)",
    ),
    _Flag(
        "--max-lag-time",
        "1s",
        parse_duration,
        help="an in-sync slave that holds the writes back this long leaves the in-sync "
        "set until it has caught up; 0 never drops a slow slave (default 1s; in-sync "
        "mode only: a majority master waits for no particular slave)",
    ),
    _Flag(
        "--min-in-sync",
        _D.min_in_sync,
        _int_range(1, 1000),
        metavar="K",
        help="in-sync mode: the nodes, the master counted, that must hold a write before "
        "it is acknowledged; with fewer in sync the master refuses writes (UNAVAILABLE) "
        "until a slave is back (default 1: the last node standing serves). Majority "
        "mode has its own rule (a majority): refused with --quorum majority, ignored "
        "with a warning in a majority cluster",
    ),
    _Flag(
        "--log-retention",
        _D.log_retention,
        _int_range(100, 10**9),
        help="log entries kept for catch-up; a node further behind gets a snapshot",
    ),
)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The `serve` flags. A flag not given is None here: `config_from_args`
    takes it from CHATD_<NAME>, else from the --config file, each checked
    exactly as the flag is, or else from its default."""
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="a TOML file of serve settings, named as the flags (listen = "
        '"0.0.0.0:50051", data-dir = "/data"); flags and CHATD_* variables win over it '
        "(default: CHATD_CONFIG)",
    )
    for flag in _SERVE_FLAGS:
        shown = None if flag.help is None else flag.help.replace("%(default)s", str(flag.default))
        if flag.switch:
            p.add_argument(flag.name, action="store_true", default=None, help=shown)
            continue
        options: dict[str, Any] = {
            "choices": None if flag.choices is None else list(flag.choices),
            "default": None,
            "metavar": flag.metavar,
            "help": shown,
        }
        if flag.type is not None:  # typeshed will not take type=None ("no conversion")
            options["type"] = flag.type
        p.add_argument(flag.name, **options)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _from_environment(flag: _Flag) -> object:
    """The flag's value from CHATD_<NAME> (checked as the flag is), else its
    default. ArgumentTypeError names the variable."""
    text = os.environ.get(flag.env_var)
    if text is None:
        value = flag.default
        if flag.switch:
            return False
        return flag.type(value) if isinstance(value, str) and flag.type is not None else value
    source = f"{flag.env_var}={text!r}"
    if flag.switch:
        if text.strip().lower() not in _TRUE + _FALSE:
            choices = ", ".join(_TRUE + _FALSE[1:])
            raise argparse.ArgumentTypeError(f"{source}: expected one of {choices}")
        return text.strip().lower() in _TRUE
    return _checked(flag, text, source)


def _checked(flag: _Flag, text: str, source: str) -> object:
    """A flag's value given as text elsewhere than the command line, checked
    exactly as the flag is (ArgumentTypeError naming `source`)."""
    try:
        if flag.choices is not None and text not in flag.choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(flag.choices)}")
        return flag.type(text) if flag.type is not None else text
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{source}: {exc}") from None


def _from_file(flag: _Flag, value: object, source: str) -> object:
    """A --config file's value for a flag, checked as the flag is."""
    if flag.switch:
        if not isinstance(value, bool):
            raise argparse.ArgumentTypeError(f"{source}: expected true or false")
        return value
    if isinstance(value, list):  # join = ["a:1", "b:2"]
        value = ",".join(str(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise argparse.ArgumentTypeError(f"{source}: expected a string or a number")
    return _checked(flag, str(value), source)


def read_config_file(path: Path) -> dict[str, object]:
    """A --config file's settings by flag name ("data-dir"; "data_dir" too).
    ArgumentTypeError for a file that cannot be read or parsed, or a key that
    names no flag."""
    import tomllib

    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"--config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"--config {path}: not TOML: {exc}") from None
    known = {f.name.removeprefix("--") for f in _SERVE_FLAGS}
    out: dict[str, object] = {}
    for key, value in doc.items():
        name = key.replace("_", "-")
        if name not in known:
            raise argparse.ArgumentTypeError(f"--config {path}: {key!r} is not a serve setting")
        out[name] = value
    return out


def _fill_from_environment(args: argparse.Namespace) -> None:
    """Each flag not given: from CHATD_<NAME>, else the --config file, else
    its default."""
    config = getattr(args, "config", None) or os.environ.get("CHATD_CONFIG") or None
    in_file = read_config_file(Path(config)) if config else {}
    for flag in _SERVE_FLAGS:
        dest = flag.name.removeprefix("--").replace("-", "_")
        if getattr(args, dest, None) is not None:
            continue
        name = flag.name.removeprefix("--")
        if os.environ.get(flag.env_var) is None and name in in_file:
            value = _from_file(flag, in_file[name], f"--config {config}: {name}")
        else:
            value = _from_environment(flag)
        setattr(args, dest, value)


def read_secret_file(path: Path, source: str = "--cluster-secret-file") -> str:
    """The cluster secret in a file: its first line (ArgumentTypeError,
    naming `source`, the flag or variable that named the file, if it cannot
    be read or that line is empty)."""
    where = f"{source}={path}" if source.isupper() else f"{source} {path}"
    try:
        first = path.read_text().splitlines()[:1]
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"{where}: {exc}") from None
    if not first or not first[0].strip():
        raise argparse.ArgumentTypeError(f"{where}: the file is empty")
    return first[0].strip()


# .env.example's CHATD_CLUSTER_SECRET (tests/test_secret_checks.py keeps
# them equal): a node refuses it, as everyone who has read the file knows it
PLACEHOLDER_SECRET = "change-me-to-a-long-random-string"
SHORT_SECRET = 16  # characters; a shorter secret is warned about


def check_secret(secret: str | None, source: str) -> None:
    """ArgumentTypeError for the placeholder secret of .env.example."""
    if secret == PLACEHOLDER_SECRET:
        raise argparse.ArgumentTypeError(
            f"{source} is the placeholder of .env.example: choose a secret of your own "
            "(e.g. openssl rand -hex 32)"
        )


def _source(flagged: set[str], dest: str) -> str:
    """Where a serve setting came from: its flag (or the --config file's
    setting of that name) or its variable."""
    flag = next(f for f in _SERVE_FLAGS if f.name == "--" + dest.replace("_", "-"))
    if dest not in flagged and os.environ.get(flag.env_var) is not None:
        return flag.env_var
    return flag.name


def config_from_args(args: argparse.Namespace) -> Config:
    # the secret and its file: a flag wins over the other from elsewhere
    flagged = {n for n in ("cluster_secret", "cluster_secret_file") if getattr(args, n, None)}

    _fill_from_environment(args)
    if flagged == {"cluster_secret"}:
        args.cluster_secret_file = None
    elif flagged == {"cluster_secret_file"}:
        args.cluster_secret = None
    if args.role and args.join:
        raise argparse.ArgumentTypeError("--role master founds a cluster; it excludes --join")
    if args.cluster_secret_file is not None:
        if args.cluster_secret:
            raise argparse.ArgumentTypeError(
                "--cluster-secret and --cluster-secret-file: give one of them"
            )
        secret_source = _source(flagged, "cluster_secret_file")
        args.cluster_secret = read_secret_file(args.cluster_secret_file, secret_source)
        secret_source = f"the first line of {secret_source} {args.cluster_secret_file}"
    else:
        secret_source = _source(flagged, "cluster_secret")
    check_secret(args.cluster_secret, secret_source)
    if args.restore and args.join:
        raise argparse.ArgumentTypeError("--restore founds a cluster; it excludes --join")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise argparse.ArgumentTypeError("--tls-cert and --tls-key go together")
    if args.tls_ca is not None and args.tls_cert is None:
        raise argparse.ArgumentTypeError("--tls-ca needs --tls-cert and --tls-key")
    if args.failover_timeout < 2 * args.heartbeat_interval:
        raise argparse.ArgumentTypeError(
            "--failover-timeout must be at least twice --heartbeat-interval"
        )
    if args.max_lag_time and args.max_lag_time < 2 * args.heartbeat_interval:
        raise argparse.ArgumentTypeError(
            "--max-lag-time must be 0 or at least twice --heartbeat-interval"
        )
    if args.quorum == "majority" and args.min_in_sync > 1:
        raise argparse.ArgumentTypeError(
            "--min-in-sync is for in-sync mode: a majority cluster acknowledges a write "
            "once a majority of its voters has it"
        )
    peer_listen = args.peer_listen
    if peer_listen is None:
        host, port = parse_address(args.listen)
        shown = f"[{host}]" if ":" in host else host
        peer_listen = f"{shown}:{PEER_PORT if port else 0}"
    if parse_address(peer_listen) == parse_address(args.listen) and parse_address(args.listen)[1]:
        raise argparse.ArgumentTypeError(
            f"--peer-listen {peer_listen} is --listen's address: give the peers another port"
        )
    return Config(
        role=args.role or "master",
        join=tuple(args.join or ()),
        node_id=args.node_id,
        listen=args.listen,
        advertise=args.advertise,
        peer_listen=peer_listen,
        peer_advertise=args.peer_advertise,
        data_dir=Path(args.data_dir),
        restore=args.restore,
        cluster_secret=args.cluster_secret or None,
        log_level=args.log_level,
        min_password_length=args.min_password_length,
        max_message_chars=args.max_message_chars,
        session_ttl=args.session_ttl,
        password_hash_cost=args.password_hash_cost,
        sync=args.sync,
        max_request_bytes=args.max_request_bytes,
        subscriber_queue=args.subscriber_queue,
        heartbeat_interval=args.heartbeat_interval,
        failover_timeout=args.failover_timeout,
        max_lag_time=args.max_lag_time,
        quorum=args.quorum,
        min_in_sync=args.min_in_sync,
        log_retention=args.log_retention,
        reflection=not args.no_reflection,
        send_rate=float(args.send_rate),
        send_burst=args.send_burst,
        max_streams_per_user=args.max_streams_per_user,
        max_room_members=args.max_room_members,
        max_rooms_per_user=args.max_rooms_per_user,
        account_rate=float(args.account_rate),
        room_rate=float(args.room_rate),
        invite_rate=float(args.invite_rate),
        room_write_rate=float(args.room_write_rate),
        max_invitations=args.max_invitations,
        first_frame_timeout=args.first_frame_timeout,
        max_unopened_streams=args.max_unopened_streams,
        log_format=args.log_format,
        metrics_port=args.metrics_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
    )
