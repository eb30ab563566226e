"""Files and profiles as replicated state (protocol 4): the `uploads`,
`file_chunks`, `files`, `message_files` and `profiles` tables, the apply
functions of FileChunk, FileCommit and SetProfile, and the reads of them.

A file comes through the log in chunks (FileChunk, of at most
CHUNK_BYTES each: the master cuts an upload so), each stored as a row of
`file_chunks` with the byte offset it starts at, for it and for its
thumbnail (`thumb` = 1). Until committed an upload is a row of `uploads`:
its owner, the chunks and bytes it holds and when it last grew. FileCommit
checks in the apply, on the rows alone, that the chunks add up to the size
and SHA-256 the master computed as they came, and that the owner's
committed files stay within the entry's quota; then the `files` row makes
the file readable, immutable (a chunk after it is refused). An upload that
stops growing is dropped by the next FileChunk or FileCommit whose time is
`idle_us` past its last chunk (any user's: deterministic, by the log's
times, not a clock).

Who may read a file: its owner; anyone who may read a message that carries
it (`message_files`: a party of its one-to-one conversation, a member who
joined its room; not once the message is deleted); any logged-in user, if
it is someone's avatar (`profiles`). For any other the answer is the one
for no such file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.storage.rows import Applied, FileRef, StoredMessage
from chatd.server.storage.tables import Tables

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    file_id TEXT PRIMARY KEY,
    owner_uid INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    thumb_chunks INTEGER NOT NULL,
    thumb_bytes INTEGER NOT NULL,
    last_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_last ON uploads(last_us);
CREATE TABLE IF NOT EXISTS file_chunks (
    file_id TEXT NOT NULL,
    thumb INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    start INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (file_id, thumb, seq)
);
CREATE TABLE IF NOT EXISTS files (
    file_id TEXT PRIMARY KEY,
    owner_uid INTEGER NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    thumb_size INTEGER NOT NULL,
    time_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_owner ON files(owner_uid);
CREATE TABLE IF NOT EXISTS message_files (
    message_id INTEGER PRIMARY KEY,
    file_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS message_files_file ON message_files(file_id);
CREATE TABLE IF NOT EXISTS profiles (
    uid INTEGER PRIMARY KEY,
    display_name TEXT NOT NULL,
    avatar TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS profiles_avatar ON profiles(avatar);
"""

# Data of one FileChunk entry. A replication Append carries up to the
# core's max_batch (4096) entries in one message of at most the cluster's
# 64 MiB: 4096 chunks of 15 KiB and their framing fit (tests/test_files.py
# checks it), 64 KiB ones would not, and a slave behind by a few thousand
# chunks could never catch up.
CHUNK_BYTES = 15 * 1024
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
OCTET_STREAM = "application/octet-stream"


def _drop_upload(db: Any, file_id: str) -> None:
    db.execute("DELETE FROM file_chunks WHERE file_id = ?", (file_id,))
    db.execute("DELETE FROM uploads WHERE file_id = ?", (file_id,))


def collect_idle(db: Any, time_us: int, idle_us: int) -> None:
    """Drops the uploads nothing was added to since `idle_us` before `time_us`."""
    if idle_us <= 0:
        return
    for (file_id,) in db.execute(
        "SELECT file_id FROM uploads WHERE last_us < ?", (time_us - idle_us,)
    ).fetchall():
        _drop_upload(db, file_id)


def apply_file_chunk(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.file_chunk
    if (owner := t.directory.known(out, op.owner, Code.NOT_LOGGED_IN)) is None:
        return out
    db = t.db
    collect_idle(db, entry.time_us, op.idle_us)
    if db.execute("SELECT 1 FROM files WHERE file_id = ?", (op.file_id,)).fetchone():
        out.code = Code.INVALID_FILE  # committed: immutable
        return out
    row = db.execute(
        "SELECT owner_uid, chunks, bytes, thumb_chunks, thumb_bytes FROM uploads WHERE file_id = ?",
        (op.file_id,),
    ).fetchone()
    if row is None:
        if op.seq != 0 or op.thumbnail:
            out.code = Code.INVALID_FILE
            return out
        row = (owner.uid, 0, 0, 0, 0)
    owner_uid, chunks, size, thumb_chunks, thumb_size = row
    expected, start = (thumb_chunks, thumb_size) if op.thumbnail else (chunks, size)
    if owner_uid != owner.uid or op.seq != expected or len(op.data) > CHUNK_BYTES:
        out.code = Code.INVALID_FILE
        return out
    if not op.thumbnail and size + len(op.data) > op.max_bytes:
        out.code = Code.FILE_TOO_LARGE
        return out
    if not (chunks or thumb_chunks):  # its first: the upload starts (a refused one leaves none)
        db.execute(
            "INSERT INTO uploads(file_id, owner_uid, chunks, bytes, thumb_chunks, thumb_bytes, "
            "last_us) VALUES (?, ?, 0, 0, 0, 0, ?)",
            (op.file_id, owner.uid, entry.time_us),
        )
    db.execute(
        "INSERT INTO file_chunks(file_id, thumb, seq, start, data) VALUES (?, ?, ?, ?, ?)",
        (op.file_id, int(op.thumbnail), op.seq, start, op.data),
    )
    column = "thumb_" if op.thumbnail else ""
    db.execute(
        f"UPDATE uploads SET {column}chunks = {column}chunks + 1, "
        f"{column}bytes = {column}bytes + ?, last_us = ? WHERE file_id = ?",
        (len(op.data), entry.time_us, op.file_id),
    )
    return out


def _whole(db: Any, file_id: str, thumb: int) -> tuple[int, bytes]:
    """(size, SHA-256) of an upload's chunks (or its thumbnail's), in order."""
    h, size = hashlib.sha256(), 0
    for (data,) in db.execute(
        "SELECT data FROM file_chunks WHERE file_id = ? AND thumb = ? ORDER BY seq",
        (file_id, thumb),
    ):
        h.update(data)
        size += len(data)
    return size, h.digest()


def apply_file_commit(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.file_commit
    if (owner := t.directory.known(out, op.owner, Code.NOT_LOGGED_IN)) is None:
        return out
    db = t.db
    row = db.execute("SELECT owner_uid FROM uploads WHERE file_id = ?", (op.file_id,)).fetchone()
    if row is None or row[0] != owner.uid:
        out.code = Code.NO_SUCH_FILE
        return out
    if op.abandon:
        _drop_upload(db, op.file_id)
        return out
    used = db.execute(
        "SELECT coalesce(sum(size), 0) FROM files WHERE owner_uid = ?", (owner.uid,)
    ).fetchone()[0]
    thumb_sha256 = op.thumb_sha256 if op.thumb_size else hashlib.sha256().digest()
    whole = (op.size, op.sha256) == _whole(db, op.file_id, 0)
    thumb = (op.thumb_size, thumb_sha256) == _whole(db, op.file_id, 1)
    typed = op.content_type in IMAGE_TYPES or (
        op.content_type == OCTET_STREAM and not op.thumb_size
    )
    if not (whole and thumb and typed):
        out.code = Code.INVALID_FILE
    elif used + op.size > op.max_user_bytes:
        out.code = Code.FILE_TOO_LARGE
    if out.code != Code.OK:
        _drop_upload(db, op.file_id)
        return out
    db.execute("DELETE FROM uploads WHERE file_id = ?", (op.file_id,))
    db.execute(
        "INSERT INTO files(file_id, owner_uid, name, content_type, size, sha256, thumb_size, "
        "time_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            op.file_id,
            owner.uid,
            op.name,
            op.content_type,
            op.size,
            op.sha256,
            op.thumb_size,
            entry.time_us,
        ),
    )
    return out


def apply_set_profile(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.set_profile
    if (user := t.directory.known(out, op.username, Code.NOT_LOGGED_IN)) is None:
        return out
    db = t.db
    if op.avatar_file_id:
        row = db.execute(
            "SELECT content_type FROM files WHERE file_id = ? AND owner_uid = ?",
            (op.avatar_file_id, user.uid),
        ).fetchone()
        if row is None or row[0] not in IMAGE_TYPES:
            out.code = Code.NO_SUCH_FILE
            return out
    if not op.display_name and not op.avatar_file_id:
        db.execute("DELETE FROM profiles WHERE uid = ?", (user.uid,))
    else:
        db.execute(
            "INSERT INTO profiles(uid, display_name, avatar) VALUES (?, ?, ?) "
            "ON CONFLICT(uid) DO UPDATE SET display_name = excluded.display_name, "
            "avatar = excluded.avatar",
            (user.uid, op.display_name, op.avatar_file_id),
        )
    return out


# -- a message's file: the send's check and link, the reads' refs --


def ref_of(row: tuple[Any, ...]) -> FileRef:
    """(file_id, name, content_type, size, sha256, thumb_size)."""
    return FileRef(row[0], row[1], row[2], int(row[3]), bytes(row[4]).hex(), bool(row[5]))


_REF = "SELECT f.file_id, f.name, f.content_type, f.size, f.sha256, f.thumb_size FROM files f "


def own_file(db: Any, uid: int, file_id: str) -> FileRef | None:
    """The committed file `file_id` if `uid` uploaded it."""
    row = db.execute(_REF + "WHERE f.file_id = ? AND f.owner_uid = ?", (file_id, uid)).fetchone()
    return None if row is None else ref_of(row)


def attach(db: Any, message_id: int, file_id: str) -> None:
    db.execute(
        "INSERT INTO message_files(message_id, file_id) VALUES (?, ?)", (message_id, file_id)
    )


def with_files(db: Any, page: list[StoredMessage]) -> list[StoredMessage]:
    """The page with each message's file filled in (one query)."""
    ids = [m.id for m in page if not m.kind]
    if not ids:
        return page
    rows = db.execute(
        "SELECT mf.message_id, f.file_id, f.name, f.content_type, f.size, f.sha256, "
        "f.thumb_size FROM message_files mf JOIN files f ON f.file_id = mf.file_id "
        "WHERE mf.message_id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),),
    ).fetchall()
    if not rows:
        return page
    refs = {int(r[0]): ref_of(r[1:]) for r in rows}
    return [replace(m, file=refs[m.id]) if m.id in refs and not m.kind else m for m in page]


# -- reads (the reader connection) --


def readable(db: Any, uid: int, file_id: str) -> FileRef | None:
    """The file if `uid` may read it: its owner's, an avatar, or carried by
    a message `uid` may read that is not deleted."""
    row = db.execute(_REF + "WHERE f.file_id = ?", (file_id,)).fetchone()
    if row is None:
        return None
    allowed = db.execute(
        "SELECT 1 FROM files WHERE file_id = ?1 AND owner_uid = ?2 "
        "UNION ALL SELECT 1 FROM profiles WHERE avatar = ?1 "
        "UNION ALL SELECT 1 FROM message_files mf JOIN messages m ON m.id = mf.message_id "
        "WHERE mf.file_id = ?1 AND NOT EXISTS "
        "(SELECT 1 FROM message_state s WHERE s.id = m.id AND s.deleted) AND ("
        "(m.conv >= 0 AND ?2 IN (m.sender_uid, m.recipient_uid)) OR (m.conv < 0 AND EXISTS "
        "(SELECT 1 FROM room_members r WHERE r.room_id = -m.conv AND r.uid = ?2 "
        "AND r.joined = 1))) LIMIT 1",
        (file_id, uid),
    ).fetchone()
    return None if allowed is None else ref_of(row)


def chunks_from(
    db: Any, file_id: str, thumb: bool, offset: int, count: int
) -> list[tuple[int, bytes]]:
    """Up to `count` chunks (start, data) of a committed file (or its
    thumbnail) from the one that holds byte `offset` on."""
    rows = db.execute(
        "SELECT start, data FROM file_chunks WHERE file_id = ? AND thumb = ? "
        "AND start + length(data) > ? ORDER BY seq LIMIT ?",
        (file_id, int(thumb), offset, count),
    ).fetchall()
    return [(int(s), bytes(d)) for s, d in rows]


@dataclass(frozen=True, slots=True)
class Profile:
    username: str
    display_name: str
    avatar_file_id: str


def profiles_of(db: Any, uids: dict[int, str]) -> list[Profile]:
    """The profiles of the users `uids` (uid -> name) that have one."""
    rows = db.execute(
        "SELECT uid, display_name, avatar FROM profiles WHERE uid IN "
        "(SELECT value FROM json_each(?)) ORDER BY uid",
        (json.dumps(list(uids)),),
    ).fetchall()
    return [Profile(uids[int(u)], str(d), str(a)) for u, d, a in rows]


APPLY: dict[str, Callable[[Tables, Applied, log_pb2.Entry], Applied]] = {
    "file_chunk": apply_file_chunk,
    "file_commit": apply_file_commit,
    "set_profile": apply_set_profile,
}
