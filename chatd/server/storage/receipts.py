"""Read receipts: who shares them (the `receipt_settings` table and the
apply function of ShareReceipts), and who is told of a read marker that
moved (MarkRead's receipt, chatd.server.storage.delivery).

A user shares receipts unless a ShareReceipts entry said otherwise (a row
with share = 0; default, no row: shared). One who does not share is
neither shown to others nor shown theirs. The table has no cache: apply
and the reads query it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from chatd.proto import log_pb2
from chatd.server.storage.rooms import Db
from chatd.server.storage.rows import Applied
from chatd.server.storage.tables import Tables

SCHEMA = """
CREATE TABLE IF NOT EXISTS receipt_settings (
    uid INTEGER PRIMARY KEY,
    share INTEGER NOT NULL
);
"""


def sharing(db: Db, uids: list[int]) -> set[int]:
    """Those of `uids` who share their receipts."""
    rows = db.execute(  # type: ignore[attr-defined]
        "SELECT value FROM json_each(?) WHERE value NOT IN "
        "(SELECT uid FROM receipt_settings WHERE share = 0)",
        (json.dumps(uids),),
    ).fetchall()
    return {int(r[0]) for r in rows}


def markers(db: Db, conv: int, uids: list[int]) -> list[tuple[int, int]]:
    """(uid, upto) of the read markers of `conv` that those of `uids` who
    share receipts hold."""
    rows = db.execute(  # type: ignore[attr-defined]
        "SELECT uid, upto FROM read_markers WHERE conv = ? AND uid IN "
        "(SELECT value FROM json_each(?)) AND uid NOT IN "
        "(SELECT uid FROM receipt_settings WHERE share = 0) ORDER BY uid",
        (conv, json.dumps(uids)),
    ).fetchall()
    return [(int(a), int(b)) for a, b in rows]


def apply_share_receipts(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.share_receipts
    if (user := t.directory.known(out, op.username)) is None:
        return out
    if op.share:
        t.db.execute("DELETE FROM receipt_settings WHERE uid = ?", (user.uid,))
    else:
        t.db.execute(
            "INSERT INTO receipt_settings(uid, share) VALUES (?, 0) "
            "ON CONFLICT(uid) DO UPDATE SET share = 0",
            (user.uid,),
        )
    return out


APPLY: dict[str, Callable[[Tables, Applied, log_pb2.Entry], Applied]] = {
    "share_receipts": apply_share_receipts,
}
