"""Settings of one node: one dataclass, built from flags, CHATD_* variables
and a --config file.

Each setting is declared once, as a field of Config: its default, check,
choices and help; its name gives the flag --some-name, the variable
CHATD_SOME_NAME and the file key some-name (SETTINGS lists them). A flag on
the command line wins over the environment, the environment over the file.
The rules between settings are in one place, _validate. A new setting is a
Config field and a row of docs/operations.md's table (tests/test_settings.py
checks the table); a chat limit is also a ChatLimits field of its name.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def _answer_timeout(text: str) -> float:
    """--web-answer-timeout: a duration of 1s (the page looks once a second) to 1h."""
    value = parse_duration(text)
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not in 1s..1h")
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


WEB_ORIGIN_RE = re.compile(r"(https?)://([A-Za-z0-9._%\[\]:-]+?)(?::(\d{1,5}))?", re.IGNORECASE)


def web_origin(text: str) -> str:
    """A web origin, scheme://host[:port], as browsers send it in Origin
    (no path; the default port dropped)."""
    m = WEB_ORIGIN_RE.fullmatch(text.rstrip("/")) if len(text) <= MAX_ADDRESS_CHARS else None
    if m is None or (m.group(3) is not None and not 1 <= int(m.group(3)) <= 65535):
        raise argparse.ArgumentTypeError(
            f"not a web origin like http://host:8080 or https://chat.example.com: {text!r}"
        )
    scheme, host, port = m.group(1).lower(), m.group(2), m.group(3)
    default = "443" if scheme == "https" else "80"
    return f"{scheme}://{host.lower()}" + ("" if port in (None, default) else f":{port}")


def ip_list(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts:
        raise argparse.ArgumentTypeError("expected IP[,IP...]")
    for part in parts:
        try:
            ipaddress.ip_address(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an IP address: {part!r}") from None
    return parts


@dataclass(frozen=True)
class Setting:
    """How one `serve` setting is given: its flag, its CHATD_* variable, its
    key in a --config file, its default and its check."""

    field: str  # the Config field it sets
    flag: str  # "--session-ttl"
    default: object
    type: Callable[[str], object] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    help: str | None = None
    shown: str | None = None  # the default as --help shows it (%(default)s)
    switch: bool = False  # store_true; CHATD_<NAME> other than "", "0", "false" sets it
    inverted: bool = False  # the switch sets its field to False (--no-reflection)

    @property
    def key(self) -> str:
        """Its name in a --config file (or with _ for -)."""
        return self.flag.removeprefix("--")

    @property
    def env_var(self) -> str:
        return "CHATD_" + self.key.upper().replace("-", "_")

    @property
    def shown_help(self) -> str | None:
        shown = str(self.default) if self.shown is None else self.shown
        return None if self.help is None else self.help.replace("%(default)s", shown)


def _setting(
    default: Any = None,
    type: Callable[[str], object] | None = None,
    *,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    help: str | None = None,
    flag: str | None = None,
    switch: bool = False,
    shown: str | None = None,
) -> Any:
    """A Config field that is a `serve` setting: --NAME, CHATD_NAME and the
    file key NAME, all from the field's name unless `flag` says otherwise."""
    spec: dict[str, object] = {"type": type, "choices": choices, "metavar": metavar}
    spec |= {"help": help, "flag": flag, "switch": switch, "shown": shown}
    return field(default=default, metadata={"setting": spec})


def _duration(text: str, help: str) -> Any:
    """A duration setting whose default is `text` ("30d"), shown as given."""
    return _setting(parse_duration(text), parse_duration, help=help, shown=text)


@dataclass(frozen=True)
class Config:
    """A node's settings, each declared once here, in the order `chatd serve
    --help` lists them (the order is part of the CLI)."""

    # Identity, listening and cluster membership.
    role: str = _setting(
        "master",
        choices=("master",),
        help="master: found a new cluster (the default without --join; a data dir "
        "that already holds a node rejoins its cluster instead)",
    )
    quorum: str | None = _setting(  # None: in-sync when founding, else the cluster's
        choices=("in-sync", "majority"),
        help="when founding a cluster: in-sync (default) acknowledges a write once "
        "every in-sync node has it, N+1 nodes survive N crashes; majority once a "
        "majority has it, 2f+1 nodes survive f crashes and any network partition. "
        "Kept in the cluster's membership: a joining node follows the cluster's (a "
        "node whose data dir holds another mode refuses to start)",
    )
    join: tuple[str, ...] = _setting(
        (),
        address_list,
        metavar="HOST:PORT[,HOST:PORT...]",
        help="join the cluster through any of these live members' peer addresses",
    )
    advertise: str | None = _setting(
        None,
        node_address,
        help="HOST:PORT clients reach this node at (default: --listen); clients are "
        "told it to find the master",
    )
    peer_advertise: str | None = _setting(
        None,
        node_address,
        help="HOST:PORT other nodes reach this node at (default: --peer-listen)",
    )
    node_id: str | None = _setting(
        None, node_id, help="this node's id (default: generated once, kept in the data dir)"
    )
    listen: str = _setting(
        "127.0.0.1:50051",
        address,
        help="HOST:PORT to serve clients on, requests held to --max-request-bytes "
        "(default %(default)s)",
    )
    peer_listen: str = _setting(  # when not given: from --listen (see _validate)
        f"127.0.0.1:{PEER_PORT}",
        address,
        help="HOST:PORT to serve the other nodes on (replication, joins, relayed client "
        "calls), every call but health checks behind the cluster secret (default: the "
        "--listen host, port 50052; port 0 when --listen's port is 0)",
    )
    data_dir: Path = _setting(
        Path("chatd-data"), Path, help="where the SQLite file lives (default %(default)s)"
    )
    restore: Path | None = _setting(
        None,
        Path,
        metavar="FILE",
        help="found a new cluster from a backup (chatd backup): the node checks the "
        "file and takes its data into an empty data dir (started again with the same "
        "backup, it goes on from its data dir); excludes --join",
    )
    cluster_secret: str | None = _setting(
        help="shared secret of the cluster services (CHATD_CLUSTER_SECRET)"
    )
    cluster_secret_file: Path | None = _setting(
        None,
        Path,
        metavar="FILE",
        help="read the cluster secret from FILE (its first line; e.g. a Docker secret, "
        "/run/secrets/NAME) instead of --cluster-secret",
    )
    log_level: str = _setting("info", choices=("debug", "info", "warning", "error"))
    # Accounts and messages.
    min_password_length: int = _setting(8, _int_range(1, 1024))
    max_message_chars: int = _setting(4096, _int_range(1, 65536))
    session_ttl: float = _duration(
        "30d", help="idle time after which a session ends (default %(default)s)"
    )
    password_hash_cost: int = _setting(
        14, _int_range(4, 20), help="scrypt cost: N = 2**cost (default %(default)s)"
    )
    # Storage.
    sync: str = _setting(
        "full",
        choices=("full", "normal"),
        help="SQLite synchronous mode: full survives power loss (default)",
    )
    # Limits on what one client may ask for.
    max_request_bytes: int = _setting(
        256 * 1024,
        _int_range(1024, 64 * 1024 * 1024),
        help="largest request a client may send; gRPC refuses a larger one before "
        "buffering it (default %(default)s)",
    )
    subscriber_queue: int = _setting(
        1000,
        _int_range(1, 1_000_000),
        help="messages a slow Subscribe stream may fall behind before it is ended",
    )
    send_rate: float = _setting(
        100.0,
        _nonnegative,
        help="Sends a second allowed per user (all their sessions together), 0 for no "
        "limit (default %(default)s)",
    )
    send_burst: int = _setting(
        200,
        _int_range(1, 10**6),
        help="Sends a session may make at once above the rate (default %(default)s)",
    )
    account_rate: float = _setting(
        20.0,
        _nonnegative,
        help="accounts one client address may create an hour, 0 for no limit (default %(default)s)",
    )
    max_streams_per_user: int = _setting(
        16,
        _int_range(1, 10**5),
        help="open Subscribe streams allowed per user (default %(default)s)",
    )
    max_room_members: int = _setting(
        1000,
        _int_range(2, 10**6),
        help="members a room may have, joined or invited (default %(default)s)",
    )
    max_rooms_per_user: int = _setting(
        100,
        _int_range(1, 10**6),
        help="rooms a user may have joined (invitations wait outside it; before the "
        "cluster speaks protocol 3: joined or invited) (default %(default)s)",
    )
    max_invitations: int = _setting(
        100,
        _int_range(1, 10**6),
        help="invitations a user may hold unanswered; a new one drops the oldest "
        "(default %(default)s)",
    )
    room_rate: float = _setting(
        30.0,
        _nonnegative,
        help="rooms a user may create an hour, 0 for no limit (default %(default)s)",
    )
    invite_rate: float = _setting(
        60.0,
        _nonnegative,
        help="room invitations a user may send a minute, 0 for no limit (default %(default)s)",
    )
    room_write_rate: float = _setting(
        20.0,
        _nonnegative,
        help="other room changes (join, leave, remove, admin, decline, delete) and read "
        "markers a user may make a second, in bursts of 5 seconds' worth, 0 for no "
        "limit (default %(default)s)",
    )
    edit_window: float = _duration(
        "1d",
        help="how long after sending a message its author may edit it, 0 for no limit "
        "(default %(default)s)",
    )
    max_file_bytes: int = _setting(
        10 * 1024 * 1024,
        _int_range(1024, 1 << 30),
        help="largest file a user may upload, in bytes (default %(default)s: 10 MiB)",
    )
    max_user_file_bytes: int = _setting(
        100 * 1024 * 1024,
        _int_range(1024, 1 << 40),
        help="the bytes of all a user's files together (default %(default)s: 100 MiB)",
    )
    upload_rate: float = _setting(
        60.0,
        _nonnegative,
        help="uploads a user may start an hour, 0 for no limit (default %(default)s)",
    )
    first_frame_timeout: float = _duration(
        "5s",
        help="a Connect stream whose open frame has not come this long after it "
        "started is ended (default %(default)s)",
    )
    max_unopened_streams: int = _setting(
        16,
        _int_range(1, 10**6),
        help="Connect streams one client address may hold before their open frame; "
        "at the bound a new one ends the oldest, once that one is 0.1 s old "
        "(default %(default)s)",
    )
    # Operations: log format, TLS, metrics, reflection.
    log_format: str = _setting(
        "text",
        choices=("text", "json"),
        help="one line per event, as text or JSON (default %(default)s)",
    )
    tls_cert: Path | None = _setting(
        None, Path, help="PEM certificate (chain) of this node: serve TLS"
    )
    tls_key: Path | None = _setting(None, Path, help="PEM private key of --tls-cert")
    tls_ca: Path | None = _setting(
        None,
        Path,
        help="PEM CA of the cluster: the peer listener requires a certificate it "
        "signed (mutual TLS between nodes); clients show none",
    )
    metrics_port: int | None = _setting(
        None,
        _int_range(0, 65535),
        help="serve Prometheus metrics over HTTP on this port (on the --listen host)",
    )
    web_listen: str | None = _setting(
        None,
        address,
        metavar="HOST:PORT",
        help="serve the web client (a page and its WebSocket) on this address",
    )
    web_advertise: str | None = _setting(
        None,
        web_origin,
        metavar="URL",
        help="the origin browsers reach this node's web client at, e.g. "
        "https://chat1.example.com:8443 (default: http(s)://--web-listen); the page "
        "fails over to the members' origins, and a WebSocket is taken only from one",
    )
    web_trusted_proxies: tuple[str, ...] = _setting(
        (),
        ip_list,
        metavar="IP[,IP...]",
        help="reverse proxies in front of the web listener: from these peers only, "
        "the last X-Forwarded-For address is the client's (limits and throttles "
        "are kept per client address)",
    )
    web_answer_timeout: float = _setting(
        parse_duration("10s"),
        _answer_timeout,
        metavar="D",
        shown="10s",
        help="a page whose calls this node leaves unanswered this long goes to the "
        "next member's origin (a hung node keeps its socket open); told to the page "
        "in its hello; 1s to 1h (default %(default)s)",
    )
    reflection: bool = _setting(
        True, flag="--no-reflection", switch=True, help="do not serve gRPC server reflection"
    )
    # Replication timing.
    heartbeat_interval: float = _duration(
        "100ms", help="how often nodes exchange heartbeats (default %(default)s)"
    )
    failover_timeout: float = _duration(
        "500ms", help="silence after which a peer is presumed dead (default %(default)s)"
    )
    max_lag_time: float = _duration(
        "1s",
        help="an in-sync slave that holds the writes back this long leaves the in-sync "
        "set until it has caught up; 0 never drops a slow slave (default %(default)s; "
        "in-sync mode only: a majority master waits for no particular slave)",
    )
    min_in_sync: int = _setting(
        1,
        _int_range(1, 1000),
        metavar="K",
        help="in-sync mode: the nodes, the master counted, that must hold a write before "
        "it is acknowledged; with fewer in sync the master refuses writes (UNAVAILABLE) "
        "until a slave is back (default 1: the last node standing serves). Majority "
        "mode has its own rule (a majority): refused with --quorum majority, ignored "
        "with a warning in a majority cluster",
    )
    log_retention: int = _setting(
        100_000,
        _int_range(100, 10**9),
        help="log entries kept for catch-up; a node further behind gets a snapshot",
    )

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
    def web_origin(self) -> str:
        """Where browsers reach this node's web client ("" with no
        --web-listen, or on port 0 before the node bound one)."""
        if self.web_listen is None:
            return ""
        return self.web_origin_at(*parse_address(self.web_listen))

    def web_origin_at(self, host: str, port: int) -> str:
        """The web origin of a web listener bound at host:port: --web-advertise,
        else http(s)://host:port (the --listen host, or localhost, for a
        listener on every interface; "" for a port 0, not bound yet)."""
        if self.web_advertise is not None:
            return self.web_advertise
        if port == 0:
            return ""
        anywhere = ("", "0.0.0.0", "::")
        if host in anywhere:
            host = self.listen_host if self.listen_host not in anywhere else "localhost"
        host = f"[{host}]" if ":" in host else host
        return web_origin(f"{'https' if self.tls else 'http'}://{host}:{port}")

    @property
    def peer_host(self) -> str:
        return parse_address(self.peer_listen)[0]

    @property
    def peer_port(self) -> int:
        return parse_address(self.peer_listen)[1]


def _settings() -> tuple[Setting, ...]:
    out = []
    for f in fields(Config):
        spec = dict(f.metadata["setting"])
        flag = spec.pop("flag") or "--" + f.name.replace("_", "-")
        switch = spec["switch"]
        out.append(Setting(f.name, flag, f.default, inverted=switch and f.default is True, **spec))
    return tuple(out)


SETTINGS = _settings()  # every `serve` setting, in --help's order


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
    for s in SETTINGS:
        if s.switch:
            p.add_argument(
                s.flag, dest=s.field, action="store_true", default=None, help=s.shown_help
            )
            continue
        options: dict[str, Any] = {
            "choices": None if s.choices is None else list(s.choices),
            "default": None,
            "metavar": s.metavar,
            "help": s.shown_help,
            "dest": s.field,
        }
        if s.type is not None:  # typeshed will not take type=None ("no conversion")
            options["type"] = s.type
        p.add_argument(s.flag, **options)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _from_environment(s: Setting, text: str) -> object:
    """A setting's value from CHATD_<NAME>=text, checked as the flag is
    (ArgumentTypeError names the variable)."""
    source = f"{s.env_var}={text!r}"
    if s.switch:
        if text.strip().lower() not in _TRUE + _FALSE:
            choices = ", ".join(_TRUE + _FALSE[1:])
            raise argparse.ArgumentTypeError(f"{source}: expected one of {choices}")
        return text.strip().lower() in _TRUE
    return _checked(s, text, source)


def _checked(s: Setting, text: str, source: str) -> object:
    """A setting's value given as text elsewhere than the command line, checked
    exactly as the flag is (ArgumentTypeError naming `source`)."""
    try:
        if s.choices is not None and text not in s.choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(s.choices)}")
        return s.type(text) if s.type is not None else text
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{source}: {exc}") from None


def _from_file(s: Setting, value: object, source: str) -> object:
    """A --config file's value for a setting, checked as the flag is."""
    if s.switch:
        if not isinstance(value, bool):
            raise argparse.ArgumentTypeError(f"{source}: expected true or false")
        return value
    if isinstance(value, list):  # join = ["a:1", "b:2"]
        value = ",".join(str(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise argparse.ArgumentTypeError(f"{source}: expected a string or a number")
    return _checked(s, str(value), source)


def read_config_file(path: Path) -> dict[str, object]:
    """A --config file's settings by key ("data-dir"; "data_dir" too).
    ArgumentTypeError for a file that cannot be read or parsed, or a key that
    names no setting."""
    import tomllib

    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"--config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"--config {path}: not TOML: {exc}") from None
    known = {s.key for s in SETTINGS}
    out: dict[str, object] = {}
    for key, value in doc.items():
        name = key.replace("_", "-")
        if name not in known:
            raise argparse.ArgumentTypeError(f"--config {path}: {key!r} is not a serve setting")
        out[name] = value
    return out


def _gather(args: argparse.Namespace) -> tuple[dict[str, Any], set[str]]:
    """Each setting's value by field: its flag, else CHATD_<NAME>, else the
    --config file, else its default; and the fields given one of those ways."""
    config = getattr(args, "config", None) or os.environ.get("CHATD_CONFIG") or None
    in_file = read_config_file(Path(config)) if config else {}
    values: dict[str, Any] = {}
    given: set[str] = set()
    for s in SETTINGS:
        value = getattr(args, s.field, None)
        text = os.environ.get(s.env_var)
        if value is None and text is not None:
            value = _from_environment(s, text)
        elif value is None and s.key in in_file:
            value = _from_file(s, in_file[s.key], f"--config {config}: {s.key}")
        if value is None:
            values[s.field] = s.default
            continue
        given.add(s.field)
        values[s.field] = (not value) if s.inverted else value
    return values, given


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


def _source(flagged: set[str], name: str) -> str:
    """Where a setting came from: its flag (or the --config file's setting of
    that name) or its variable."""
    s = next(s for s in SETTINGS if s.field == name)
    if name not in flagged and os.environ.get(s.env_var) is not None:
        return s.env_var
    return s.flag


def _validate(v: dict[str, Any], given: set[str], flagged: set[str]) -> None:
    """The rules between settings, each value already checked alone; fills in
    the cluster secret from its file and --peer-listen from --listen.
    `flagged`: the secret settings given on the command line."""
    if flagged == {"cluster_secret"}:
        v["cluster_secret_file"] = None
    elif flagged == {"cluster_secret_file"}:
        v["cluster_secret"] = None
    if "role" in given and v["join"]:
        raise argparse.ArgumentTypeError("--role master founds a cluster; it excludes --join")
    if v["cluster_secret_file"] is not None:
        if v["cluster_secret"]:
            raise argparse.ArgumentTypeError(
                "--cluster-secret and --cluster-secret-file: give one of them"
            )
        secret_source = _source(flagged, "cluster_secret_file")
        v["cluster_secret"] = read_secret_file(v["cluster_secret_file"], secret_source)
        secret_source = f"the first line of {secret_source} {v['cluster_secret_file']}"
    else:
        secret_source = _source(flagged, "cluster_secret")
    check_secret(v["cluster_secret"], secret_source)
    v["cluster_secret"] = v["cluster_secret"] or None
    if v["restore"] and v["join"]:
        raise argparse.ArgumentTypeError("--restore founds a cluster; it excludes --join")
    if (v["tls_cert"] is None) != (v["tls_key"] is None):
        raise argparse.ArgumentTypeError("--tls-cert and --tls-key go together")
    if v["tls_ca"] is not None and v["tls_cert"] is None:
        raise argparse.ArgumentTypeError("--tls-ca needs --tls-cert and --tls-key")
    if v["failover_timeout"] < 2 * v["heartbeat_interval"]:
        raise argparse.ArgumentTypeError(
            "--failover-timeout must be at least twice --heartbeat-interval"
        )
    if v["max_lag_time"] and v["max_lag_time"] < 2 * v["heartbeat_interval"]:
        raise argparse.ArgumentTypeError(
            "--max-lag-time must be 0 or at least twice --heartbeat-interval"
        )
    if v["quorum"] == "majority" and v["min_in_sync"] > 1:
        raise argparse.ArgumentTypeError(
            "--min-in-sync is for in-sync mode: a majority cluster acknowledges a write "
            "once a majority of its voters has it"
        )
    listen = parse_address(v["listen"])
    if "peer_listen" not in given:
        shown = f"[{listen[0]}]" if ":" in listen[0] else listen[0]
        v["peer_listen"] = f"{shown}:{PEER_PORT if listen[1] else 0}"
    if parse_address(v["peer_listen"]) == listen and listen[1]:
        raise argparse.ArgumentTypeError(
            f"--peer-listen {v['peer_listen']} is --listen's address: give the peers another port"
        )


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config of `chatd serve`'s parsed flags, the CHATD_* variables and
    the --config file (ArgumentTypeError for a bad value or combination)."""
    # the secret and its file: a flag wins over the other from elsewhere
    flagged = {n for n in ("cluster_secret", "cluster_secret_file") if getattr(args, n, None)}
    values, given = _gather(args)
    _validate(values, given, flagged)
    return Config(**values)
