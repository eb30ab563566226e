"""The store's reads of committed data: paged backlog and history, search,
unread counts, read markers, what an operator reads of an account, and the
log's committed entries. Each runs on the reader connection under its lock, from
a worker thread, and sees only what a batch committed.

`Reads` is a part of Store (chatd.server.storage.store), which holds the
connections and the directory these use.
"""

from __future__ import annotations

import json

from chatd.server.storage import accounts, delivery, edits, files, receipts, search
from chatd.server.storage.connections import Connections
from chatd.server.storage.messages import row_message
from chatd.server.storage.rows import FileRef, StoredMessage, conversation_key
from chatd.server.storage.users import Directory


class Reads:
    _conns: Connections
    directory: Directory

    def _read(self, sql: str, args: tuple[object, ...], state: bool = False) -> list[StoredMessage]:
        """`state`: with each message's state (edits.with_state)."""
        with self._conns.reader_lock:
            rows = self._conns.reader.execute(sql, args).fetchall()
            page = files.with_files(self._conns.reader, [row_message(r) for r in rows])
            return edits.with_state(self._conns.reader, page) if state else page

    # -- files and profiles (chatd.server.storage.files) --

    def readable_file(self, uid: int, file_id: str) -> FileRef | None:
        """The committed file `file_id` if the user `uid` may read it."""
        with self._conns.reader_lock:
            return files.readable(self._conns.reader, uid, file_id)

    def file_bytes_of(self, uid: int) -> int:
        """The bytes of the user's committed files."""
        with self._conns.reader_lock:
            row = self._conns.reader.execute(
                "SELECT coalesce(sum(size), 0) FROM files WHERE owner_uid = ?", (uid,)
            ).fetchone()
            return int(row[0])

    def own_file(self, uid: int, file_id: str) -> FileRef | None:
        with self._conns.reader_lock:
            return files.own_file(self._conns.reader, uid, file_id)

    def file_chunks(
        self, file_id: str, thumb: bool, offset: int, count: int
    ) -> list[tuple[int, bytes]]:
        with self._conns.reader_lock:
            return files.chunks_from(self._conns.reader, file_id, thumb, offset, count)

    def profiles(self, uids: dict[int, str]) -> list[files.Profile]:
        with self._conns.reader_lock:
            return files.profiles_of(self._conns.reader, uids)

    def inbox_after(
        self, uid: int, after_id: int, upto_id: int, limit: int, events: bool = False
    ) -> list[StoredMessage]:
        """Messages to `uid` with after_id < id <= upto_id, oldest first: to
        the user, and to the rooms the user joined, from the join on; with
        `events`, the events of those conversations among them
        (chatd.server.storage.edits), and each message's state."""
        messages = (
            "SELECT id, sender, recipient, body, time_us, conv{} FROM messages "
            "WHERE recipient_uid = ? AND id > ? AND id <= ? "
            "UNION ALL "
            "SELECT m.id, m.sender, m.recipient, m.body, m.time_us, m.conv{} "
            "FROM room_members r JOIN messages m ON m.conv = -r.room_id "
            "AND m.id > max(?, r.since_id) AND m.id <= ? WHERE r.uid = ? AND r.joined = 1 "
        )
        args: tuple[object, ...] = (uid, after_id, upto_id, after_id, upto_id, uid)
        if not events:
            return self._read(messages.format("", "") + "ORDER BY 1 LIMIT ?", (*args, limit))
        both = (
            messages.format(", 0, 0", ", 0, 0")
            + "UNION ALL "
            + edits.inbox_events_sql()
            + " ORDER BY 1 LIMIT ?"
        )
        more = (uid, after_id, upto_id, uid, uid, after_id, upto_id, after_id, upto_id, uid)
        return self._read(both, (*args, *more, limit), state=True)

    def read_marker(self, uid: int, conv: int) -> int:
        """The user's committed read marker of a conversation (0: none)."""
        with self._conns.reader_lock:
            row = self._conns.reader.execute(
                "SELECT upto FROM read_markers WHERE uid = ? AND conv = ?", (uid, conv)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def receipts(self, uid: int, conv: int, others: list[int]) -> list[tuple[int, int]]:
        """(uid, upto) of the read markers of `conv` held by those of
        `others` who share receipts; none when `uid` does not share."""
        with self._conns.reader_lock:
            reader = self._conns.reader
            if not receipts.sharing(reader, [uid]):
                return []
            return receipts.markers(reader, conv, others)

    def shares_receipts(self, uid: int) -> bool:
        with self._conns.reader_lock:
            return bool(receipts.sharing(self._conns.reader, [uid]))

    def room_before(self, room_id: int, before_id: int, limit: int) -> list[StoredMessage]:
        """The newest `limit` messages of a room with id < before_id, oldest first."""
        rows = self._read(
            "SELECT id, sender, recipient, body, time_us, conv FROM messages "
            "WHERE conv = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (-room_id, before_id, limit),
            state=True,
        )
        rows.reverse()
        return rows

    def unread_in_rooms(self, uid: int, rooms: list[tuple[int, int]], upto_id: int) -> list[int]:
        """For each (room id, since_id) the room's messages after the user's
        read marker and since_id (the join), up to `upto_id`, not the user's
        own: an index range each, in one hop to the reader thread."""
        with self._conns.reader_lock:
            return [
                int(
                    self._conns.reader.execute(
                        "SELECT count(*) FROM messages WHERE conv = ? AND id <= ? "
                        "AND sender_uid != ? AND id > max(?, coalesce((SELECT upto "
                        "FROM read_markers WHERE uid = ? AND conv = ?), 0))",
                        (-room_id, upto_id, uid, since_id, uid, -room_id),
                    ).fetchone()[0]
                )
                for room_id, since_id in rooms
            ]

    def unread_from_peers(self, uid: int, upto_id: int) -> list[tuple[str, int, int]]:
        """(sender, count, newest id) of the one-to-one messages to `uid`
        after its read marker in each conversation, up to `upto_id`: one
        scan of the user's inbox index (room messages are in no one's)."""
        with self._conns.reader_lock:
            rows = self._conns.reader.execute(
                "SELECT m.sender, count(*), max(m.id) FROM messages m "
                "LEFT JOIN read_markers r ON r.uid = m.recipient_uid AND r.conv = m.conv "
                "WHERE m.recipient_uid = ? AND m.id <= ? AND m.id > coalesce(r.upto, 0) "
                "GROUP BY m.sender_uid ORDER BY 3 DESC",
                (uid, upto_id),
            ).fetchall()
        return [(str(a), int(b), int(c)) for a, b, c in rows]

    def conversation_before(
        self, uid: int, peer_uid: int, before_id: int, limit: int
    ) -> list[StoredMessage]:
        """The newest `limit` messages of a conversation with id < before_id,
        returned oldest first."""
        rows = self._read(
            "SELECT id, sender, recipient, body, time_us FROM messages "
            "WHERE conv = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (conversation_key(uid, peer_uid), before_id, limit),
            state=True,
        )
        rows.reverse()
        return rows

    def search_messages(
        self, expression: str, before_id: int, conv: int | None, limit: int
    ) -> list[StoredMessage]:
        """The newest `limit` messages with id < before_id that the index's
        query `expression` matches (chatd.server.storage.search.find), newest first."""
        with self._conns.reader_lock:
            return search.find(self._conns.reader, expression, before_id, conv, limit)

    def undelivered_among(self, uid: int, ids: list[int]) -> list[int]:
        """Those of `ids` that are undelivered messages to `uid` (its own, or
        of the rooms it joined), in order."""
        with self._conns.reader_lock:
            reader = self._conns.reader
            rows = reader.execute(
                "SELECT id FROM messages WHERE recipient_uid = ? AND delivered = 0 "
                "AND id IN (SELECT value FROM json_each(?)) ORDER BY id",
                (uid, json.dumps(ids)),
            ).fetchall()
            in_rooms = delivery.undelivered_among(reader, uid, json.dumps(ids))
        return sorted([int(r[0]) for r in rows] + [mid for mid, _ in in_rooms])

    def has_undelivered(self, uid: int) -> bool:
        """Whether any message to `uid` waits, its own or of its rooms
        (committed data)."""
        with self._conns.reader_lock:
            reader = self._conns.reader
            row = reader.execute(
                "SELECT 1 FROM messages WHERE recipient_uid = ? AND delivered = 0 LIMIT 1", (uid,)
            ).fetchone()
            return row is not None or bool(delivery.undelivered(reader, uid, 1))

    def last_uid_named(self, username: str) -> int | None:
        """The uid of the live account with this name, else of the newest
        deleted one (whose conversations stay readable)."""
        user = self.directory.users.get(username)
        if user is not None:
            return user.uid
        with self._conns.reader_lock:
            row = self._conns.reader.execute(
                "SELECT max(uid) FROM users WHERE username = ?", (username,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def account_counts(self, username: str) -> accounts.AccountCounts | None:
        """An account's facts from the tables (reader connection)."""
        user = self.directory.users.get(username)
        if user is None:
            return None
        with self._conns.reader_lock:
            return accounts.account_counts(self._conns.reader, user.uid)

    def log_entries(self, first: int, last: int) -> list[bytes]:
        """The bytes of committed log entries first..last (all, or fewer if the
        log no longer holds them)."""
        return [data for _, data in self.log_rows(first, last)]

    def log_rows(self, first: int, last: int) -> list[tuple[int, bytes]]:
        """(index, bytes) of the committed log entries first..last it holds."""
        with self._conns.reader_lock:
            rows = self._conns.reader.execute(
                "SELECT idx, entry FROM log WHERE idx >= ? AND idx <= ? ORDER BY idx", (first, last)
            ).fetchall()
        return [(int(i), bytes(e)) for i, e in rows]

    def newest_message_ids(self, count: int) -> dict[tuple[str, int, str], int]:
        """(sender, time, body) -> id of the newest `count` messages: the
        ids the entries of a log's tail gave their messages here."""
        with self._conns.reader_lock:
            rows = self._conns.reader.execute(
                "SELECT sender, time_us, body, id FROM messages ORDER BY id DESC LIMIT ?", (count,)
            ).fetchall()
        return {(str(a), int(t), str(b)): int(i) for a, t, b, i in rows}
