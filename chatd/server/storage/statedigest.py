"""A digest of the replicated data itself (like etcd's HashKV), not of the log.

The state digest is an order-independent multiset hash of every row of the
replicated tables: the sum, mod 2**256, of a keyed BLAKE2b of each row's
(table, column values) in a canonical encoding. Two nodes hold the same rows
exactly when (short of a collision) their digests agree, however the rows
were written: in which batches, in which order, from the log or from a
snapshot. The log chain digest (`store.chain_digest`) cannot tell that: a
file whose tables were edited, or a forged snapshot, keeps its log digest.

Promise: `StateDigest.value` follows every insert, update and delete the
writer's connection makes on a replicated table (TEMP triggers call back into
Python, so an apply function added later is covered without bookkeeping of
its own), and `scan` recomputes it from the tables. The owner (the store)
makes it transactional: it saves `value` before a savepoint or batch and puts
it back when that is rolled back, since a Python integer does not roll back
with SQLite.

Replicated tables are every table of the schema but the node-local ones
(`NODE_LOCAL_TABLES`), SQLite's own (`sqlite_*`) and virtual tables with
their shadow tables (the search index, chatd.server.storage.search: derived
from `messages`, which is hashed), so a table added to the schema later is
covered too, and a store with the index has the digest of one without it.
The key is a fixed domain separator, not a secret: the digest detects
accidents and operators' edits, not an attacker who can write the file.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable

DIGEST_BYTES = 32
MODULUS = 1 << (8 * DIGEST_BYTES)
_KEY = b"chatd/state-digest/v1"
_BASE = hashlib.blake2b(digest_size=DIGEST_BYTES, key=_KEY)
NODE_LOCAL_TABLES = frozenset({"meta", "log"})
SQL_FUNCTION = "chatd_state_row"


def row_hash(table: str, values: Iterable[object]) -> int:
    """The hash of one row, as an integer below MODULUS. Each column value is
    tagged by its SQLite type and length-prefixed (integers in decimal, ended
    by ';'), so no two different rows encode alike: an integer stored as text
    is another row."""
    out = [table.encode(), b"\x00"]
    for v in values:
        t = type(v)
        if t is int:
            out.append(b"i%d;" % v)  # type: ignore[str-format]
        elif t is str:
            b = v.encode("utf-8", "surrogatepass")  # type: ignore[attr-defined]
            out.append(b"s%d:" % len(b))
            out.append(b)
        elif t is bytes:
            out.append(b"b%d:" % len(v))  # type: ignore[arg-type]
            out.append(v)  # type: ignore[arg-type]
        elif v is None:
            out.append(b"n")
        elif t is float:
            out.append(b"f" + v.hex().encode() + b";")  # type: ignore[attr-defined]
        else:
            raise TypeError(f"a column value of type {t.__name__}")
    h = _BASE.copy()
    h.update(b"".join(out))
    return int.from_bytes(h.digest(), "big")


def replicated_tables(db: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """Every replicated table of the main schema and its columns, in order."""
    names = sorted(str(r[1]) for r in db.execute("PRAGMA main.table_list") if r[2] == "table")
    out: dict[str, tuple[str, ...]] = {}
    for name in names:
        if name in NODE_LOCAL_TABLES or name.startswith("sqlite_"):
            continue
        cols = db.execute(f'PRAGMA main.table_info("{name}")').fetchall()
        out[name] = tuple(str(c[1]) for c in sorted(cols, key=lambda c: int(c[0])))
    return out


def scan(db: sqlite3.Connection) -> int:
    """The digest of the tables as they are, recomputed row by row."""
    total = 0
    for table, cols in replicated_tables(db).items():
        select = ", ".join(f'"{c}"' for c in cols)
        for row in db.execute(f'SELECT {select} FROM main."{table}"'):
            total += row_hash(table, row)
    return total % MODULUS


def to_bytes(value: int) -> bytes:
    return value.to_bytes(DIGEST_BYTES, "big")


def from_bytes(data: bytes) -> int:
    if len(data) != DIGEST_BYTES:
        raise ValueError(f"a state digest has {DIGEST_BYTES} bytes, not {len(data)}")
    return int.from_bytes(data, "big")


class StateDigest:
    """The running digest of one connection's replicated tables."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def _row(self, sign: int, table: str, *values: object) -> None:
        self.value = (self.value + sign * row_hash(table, values)) % MODULUS

    def attach(self, db: sqlite3.Connection) -> None:
        """Registers the callback and creates the TEMP triggers on `db` (per
        connection: call again after reconnecting). REPLACE conflicts delete
        rows too, which fire delete triggers only with recursive triggers on."""
        db.create_function(SQL_FUNCTION, -1, self._row)
        db.execute("PRAGMA recursive_triggers = ON")
        for table, cols in replicated_tables(db).items():
            new = ", ".join(f'NEW."{c}"' for c in cols)
            old = ", ".join(f'OLD."{c}"' for c in cols)
            t = f"'{table}'"
            for event, body in (
                ("INSERT", f"SELECT {SQL_FUNCTION}(1, {t}, {new});"),
                ("DELETE", f"SELECT {SQL_FUNCTION}(-1, {t}, {old});"),
                (
                    "UPDATE",
                    f"SELECT {SQL_FUNCTION}(-1, {t}, {old}), {SQL_FUNCTION}(1, {t}, {new});",
                ),
            ):
                db.execute(
                    f'CREATE TEMP TRIGGER IF NOT EXISTS "state_digest_{table}_{event.lower()}" '
                    f'AFTER {event} ON main."{table}" BEGIN {body} END'
                )
