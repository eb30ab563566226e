"""Which function applies each kind of log entry: one table, `KINDS`,
assembled once from the table families' own (`APPLY` of meta, users,
messages, delivery, room_rules, accounts, edits, receipts and files), and `apply`,
which the store calls inside an entry's savepoint.

Every function takes the store (as `Tables`: what the families use of it),
an `Applied` for the entry's outcome, and the entry; it changes SQL only
and leaves its cache changes in `Applied.after`. An entry of a kind the
table lacks (one of a newer chatd, or none) raises ValueError: nothing of
it is applied. tests/test_apply_table.py checks the table against the log
proto's Entry kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from chatd.proto import log_pb2
from chatd.server.storage import (
    accounts,
    delivery,
    edits,
    files,
    messages,
    meta,
    receipts,
    room_rules,
    tables,
    users,
)
from chatd.server.storage.rows import Applied


class Tables(tables.Tables, meta.Tables, Protocol):
    """All the families use of the store."""


Apply = Callable[[Tables, Applied, log_pb2.Entry], Applied]


def assemble(*families: Mapping[str, Apply]) -> dict[str, Apply]:
    """One table of the families' kinds; a kind claimed twice is an error."""
    table: dict[str, Apply] = {}
    for family in families:
        for kind, fn in family.items():
            if kind in table:
                raise ValueError(f"two apply functions for entry kind {kind!r}")
            table[kind] = fn
    return table


KINDS = assemble(
    meta.APPLY,
    users.APPLY,
    messages.APPLY,
    delivery.APPLY,
    room_rules.APPLY,
    accounts.APPLY,
    edits.APPLY,
    receipts.APPLY,
    files.APPLY,
)


def apply(t: Tables, index: int, entry: log_pb2.Entry) -> Applied:
    """Applies the entry at `index` by its kind's function."""
    kind = entry.WhichOneof("op")
    fn = KINDS.get(kind) if kind is not None else None
    if fn is None:
        raise ValueError(f"log entry {index} has unknown kind {kind!r}")
    return fn(t, Applied(index), entry)
