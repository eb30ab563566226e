"""Rollback files: what a node dropped from its log, kept for a person.

In in-sync mode two sides of a partition may each acknowledge writes alone;
at the heal the side whose master is superseded drops its tail when the
other master's snapshot replaces its store. Nothing of it is lost silently:
before the store is replaced, every entry the replacing log does not hold
(chatd.core.log.Log.superseded_by) is written here, one JSON object a line,
to `DATA_DIR/rollback/<UTC time>-e<epoch>.jsonl` (the directory 0700, the
file 0600, fsynced before the store is replaced), and the node logs one
ERROR line naming the file. `chatd rollback list|resend` reads them; resend
writes each message again as a new message.

A record: kind (the log entry's op), epoch and index (where it stood in
the dropped log), time (the master's, ISO UTC) and time_us, acknowledged
("yes": this node knew it committed, so a client was told it was written;
"perhaps": this node had not learned of its commit, which a master cut off
with it may have reached all the same), and the entry's own fields without
secrets (no password or session hashes). A message also has sender,
recipient or room, text, request_id and message_id (the id its sender was
given); a client's retry of one (the same request id, written twice and
applied once) has duplicate_of: the index of the first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatd.proto import log_pb2

DIR = "rollback"
SECRET_FIELDS = frozenset({"password_hash", "session_hash"})
MESSAGE = "send_message"


def describe(entry: log_pb2.Entry, epoch: int, index: int, acknowledged: bool) -> dict[str, Any]:
    """One dropped entry as a rollback record (no message id yet)."""
    kind = entry.WhichOneof("op") or ""
    record: dict[str, Any] = {
        "kind": kind,
        "epoch": epoch,
        "index": index,
        "time": datetime.fromtimestamp(entry.time_us / 1e6, UTC).isoformat(),
        "time_us": entry.time_us,
        "acknowledged": "yes" if acknowledged else "perhaps",
    }
    if not kind:
        return record
    op = getattr(entry, kind)
    for f in op.DESCRIPTOR.fields:
        if f.name in SECRET_FIELDS:
            continue
        value = getattr(op, f.name)
        if isinstance(value, bytes):
            continue
        if f.enum_type is not None:
            value = f.enum_type.values_by_number[value].name
        elif not isinstance(value, str | int | bool | float):
            value = list(value)
        if value != "" or f.name == "body":  # (unset strings say nothing)
            record["text" if f.name == "body" else f.name] = value
    return record


def identify(messages: list[dict[str, Any]], ids: dict[tuple[str, int, str], int]) -> None:
    """Gives each message record the id its message got (`ids`: by sender,
    time and text), and a client's retry of an earlier one (the same
    request id) `duplicate_of` that one's index."""
    firsts: dict[tuple[str, str], int] = {}  # (sender, request id) -> its first entry
    for r in messages:
        r["message_id"] = ids.get((r["sender"], r["time_us"], r["text"]))
        if r.get("request_id"):
            key = (r["sender"], r["request_id"])
            if key in firsts:  # applied as the first one: no message of its own
                r["duplicate_of"] = firsts[key]
            firsts.setdefault(key, r["index"])


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # whatever the umask, and if it was made before


def write(data_dir: Path, records: list[dict[str, Any]], epoch: int, now: datetime) -> Path:
    """Writes the records to a new rollback file (0600, fsynced, as its
    directory entry is); returns its path."""
    directory = data_dir / DIR
    _private_dir(directory)
    stem = f"{now.strftime('%Y%m%dT%H%M%S')}-e{epoch}"
    for n in range(1000):  # bounded: another rollback within the same second
        path = directory / (f"{stem}.jsonl" if n == 0 else f"{stem}-{n}.jsonl")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"{directory}: no free name for {stem}.jsonl")
    try:
        os.fchmod(fd, 0o600)
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return path


def files(paths: Iterable[Path]) -> list[Path]:
    """The rollback files named: files as given, a rollback dir's files, a
    data dir's rollback dir's files; in order of name."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            d = p / DIR if (p / DIR).is_dir() else p
            out.extend(sorted(d.glob("*.jsonl")))
        else:
            out.append(p)
    return out


def read(path: Path) -> list[dict[str, Any]]:
    """The records of one rollback file (ValueError naming the line if one
    is not a record)."""
    out = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{n}: not a rollback file (not UTF-8 text)") from exc
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON: {exc}") from exc
            if not isinstance(record, dict) or not {"kind", "epoch", "index"} <= record.keys():
                raise ValueError(f"{path}:{n}: not a rollback record")
            out.append(record)
    return out


@dataclass
class Tally:
    """The rollback files in a data dir and the entries they hold: counted
    once at start, then as the node writes more."""

    files: int = 0
    entries: int = 0

    @classmethod
    def of(cls, data_dir: Path) -> Tally:
        t = cls()
        d = data_dir / DIR
        if d.is_dir():
            for path in d.glob("*.jsonl"):
                with path.open("rb") as f:
                    t.add(sum(1 for line in f if line.strip()))
        return t

    def add(self, entries: int) -> None:
        self.files += 1
        self.entries += entries
