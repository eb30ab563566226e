"""Logging: one line per event, as text or JSON, each with the node's id
and current epoch."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

# gRPC's C core writes log lines of its own to fd 2 (at GRPC_VERBOSITY,
# ERROR unless set, and what GRPC_TRACE turns on), reading both when grpc is
# imported.
GRPC_LOG_ENV = ("GRPC_VERBOSITY", "GRPC_TRACE")
_grpc_log_env: dict[str, str] | None = None  # as they were before quiet_grpc()

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(node)s e%(epoch)s]: %(message)s"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class NodeContext(logging.Filter):
    """Adds `node` and `epoch` to every record, read when it is logged."""

    def __init__(self) -> None:
        super().__init__()
        self.source: Callable[[], tuple[str, int]] = lambda: ("-", 0)

    def filter(self, record: logging.LogRecord) -> bool:
        record.node, record.epoch = self.source()
        return True


REPEAT_EVERY_S = 60.0  # how often a condition that lasts is said again


class Repeated:
    """A condition a loop meets again and again, said once: `due(text)` is
    True the first time, when `text` changed, and every `every` seconds
    while it lasts (None: never again)."""

    def __init__(self, every: float | None = REPEAT_EVERY_S) -> None:
        self.every = every
        self.text: str | None = None
        self.at = 0.0

    def due(self, text: str) -> bool:
        now = time.monotonic()
        if text == self.text and (self.every is None or now - self.at < self.every):
            return False
        self.text, self.at = text, now
        return True

    def clear(self) -> None:
        """The condition ended: the next `due` is True."""
        self.text = None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            # RFC 3339 in UTC: comparable across nodes in other time zones
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in doc:
                doc[key] = value if isinstance(value, int | float | str | bool) else str(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup(level: str, fmt: str) -> NodeContext:
    context = NodeContext()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(context)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return context


def quiet_grpc() -> None:
    """Keeps gRPC's C-core log lines off an interactive client's screen (the
    terminal is its fd 2): a lost connection is the client's own status
    line. Runs before grpc is imported, when it is read."""
    global _grpc_log_env
    if "grpc" in sys.modules:
        raise RuntimeError("quiet_grpc() must run before grpc is imported")
    if _grpc_log_env is None:
        _grpc_log_env = {k: os.environ[k] for k in GRPC_LOG_ENV if k in os.environ}
    os.environ.pop("GRPC_TRACE", None)
    os.environ["GRPC_VERBOSITY"] = "NONE"


def node_grpc_log() -> None:
    """A node's gRPC log: errors only (a port scan's failed TLS handshakes,
    one INFO line each, are not the node's to log, and would be plain text
    in a JSON log), unless the user set GRPC_VERBOSITY or GRPC_TRACE. Runs
    before grpc is imported, when it is read."""
    if "grpc" in sys.modules:
        raise RuntimeError("node_grpc_log() must run before grpc is imported")
    if not any(k in os.environ for k in GRPC_LOG_ENV):
        os.environ["GRPC_VERBOSITY"] = "ERROR"


def grpc_log_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child process (a node the demo runs) with gRPC's log
    settings as they were before quiet_grpc()."""
    if _grpc_log_env is None:
        return env
    return {**{k: v for k, v in env.items() if k not in GRPC_LOG_ENV}, **_grpc_log_env}
