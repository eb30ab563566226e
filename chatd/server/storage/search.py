"""The full-text index of messages: an SQLite FTS5 table every node keeps
of its own `messages`, by the store itself, so that any node answers a
search from its replica.

`search` is a contentless FTS5 table (content=''): it holds the index of
each message's body and who may read it, not the text (the text is read
from `messages` by id, its rowid). The store indexes a batch's new
messages when it commits the batch (`index_new`, in the same transaction:
the committed messages and the index never differ), in one statement: FTS5
writes a segment at each statement that changes it (a statement's
savepoint flushes its pending terms), so a trigger per inserted row would
write one segment per message: with one, a store applied 0.45 of the
entries a second it applies without the index, against 0.88 with the
batch's one statement (benchmarks/RESULTS.md, "Search"). Triggers on
`messages` keep the indexed rows in step: a delete (a deleted room, a
deleted account's undelivered messages) or an update of the body removes
the old terms with FTS5's 'delete' command, which needs the values
indexed, given again from the OLD row (and the update indexes the new
ones); a row not indexed yet (id above the meta key `search_upto`, the
newest id indexed or deleted) is left to `index_new`.

The `who` column holds access tokens: "u<sender uid> u<recipient uid>" for
a one-to-one message, "r<room id>" for a room message (its conv is the
room's negative id). A search matches the caller's words in `body` AND one
of the caller's tokens in `who` ("u<uid>", and "r<id>" of each room the
caller joined), so FTS5 intersects the doclists itself.

The index is derived data: not replicated, not in the state digest
(chatd.server.storage.statedigest skips virtual tables and their shadow
tables), rebuilt from `messages` by the migration that creates it
(schema.migrations), and carried whole by a snapshot or a backup, which
are copies of the file.

A query is never given to MATCH as the user wrote it (FTS5's own syntax:
quotes, NEAR, column filters, `*`, AND/OR/NOT): `query_words` cuts it into
words of letters, digits and marks, and `match_expression` quotes each as
an FTS5 string (the last one also as a prefix).
"""

from __future__ import annotations

import sqlite3
import unicodedata

from chatd.server.storage.messages import row_message
from chatd.server.storage.rows import StoredMessage

TABLE = "search"
# the tokens a message's `who` column holds (the same expression for
# indexing a NEW row and for deleting an OLD one)
_WHO = (
    "CASE WHEN {r}.conv < 0 THEN 'r' || (-{r}.conv) "
    "ELSE 'u' || {r}.sender_uid || ' u' || {r}.recipient_uid END"
)
UPTO_KEY = "search_upto"  # in meta (node-local): every message id <= it is indexed or gone
_INDEXED = f"OLD.id <= coalesce((SELECT value FROM meta WHERE key = '{UPTO_KEY}'), 0)"
_INSERT = (
    f"INSERT INTO {TABLE}(rowid, body, who) VALUES (NEW.id, NEW.body, {_WHO.format(r='NEW')});"
)
_DELETE = (
    f"INSERT INTO {TABLE}({TABLE}, rowid, body, who) "
    f"VALUES ('delete', OLD.id, OLD.body, {_WHO.format(r='OLD')});"
)
# detail=full: a quoted word the tokenizer cuts in two (a letter its Unicode
# tables do not know as one) is matched as a phrase; columnsize=0: no
# per-row sizes (nothing here ranks by them)
SCHEMA = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(body, who, content='', "
    "columnsize=0, tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_delete AFTER DELETE ON messages "
    f"WHEN {_INDEXED} BEGIN {_DELETE} END",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_update "
    "AFTER UPDATE OF body, conv, sender_uid, recipient_uid ON messages "
    f"WHEN {_INDEXED} BEGIN {_DELETE} {_INSERT} END",
)

MAX_QUERY_CHARS = 256
MAX_QUERY_WORDS = 8
# a shorter last word is matched whole: a prefix of one or two letters
# stands for most of the index's terms
MIN_PREFIX_CHARS = 3


def index_new(db: sqlite3.Connection, upto: int, newest: int) -> None:
    """Indexes the messages with upto < id <= newest (in the caller's
    transaction: the store's batch, before it commits) and records `newest`."""
    db.execute(
        f"INSERT INTO {TABLE}(rowid, body, who) SELECT m.id, m.body, {_WHO.format(r='m')} "
        "FROM messages m WHERE m.id > ? AND m.id <= ?",
        (upto, newest),
    )
    db.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (UPTO_KEY, newest),
    )


def indexed_upto(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (UPTO_KEY,)).fetchone()
    return 0 if row is None else int(row[0])


def create(db: sqlite3.Connection) -> None:
    """Creates the index and its triggers, and indexes every message there
    is (a migration step: inside its transaction)."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
    ).fetchone()
    for statement in SCHEMA:
        db.execute(statement)
    if exists is None:
        newest = db.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
        index_new(db, 0, int(newest))


def drop(db: sqlite3.Connection) -> None:
    """Removes the index and its triggers: a store as one of before the
    index was (for comparisons: the tests, the benchmark)."""
    for trigger in ("insert", "delete", "update"):
        db.execute(f"DROP TRIGGER IF EXISTS {TABLE}_{trigger}")
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")
    db.execute("DELETE FROM meta WHERE key = ?", (UPTO_KEY,))


def query_words(text: str) -> list[str]:
    """The words of a query: runs of letters, digits and combining marks;
    every other character (spaces, punctuation, quotes, `*`, `:`, control
    characters) only separates them."""
    words, current = [], []
    for c in text:
        if unicodedata.category(c)[0] in "LNM":
            current.append(c)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def _quoted(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def match_expression(words: list[str], tokens: list[str], every_token: bool = False) -> str:
    """The FTS5 query: every word in `body` (the last one also as a prefix
    when it has MIN_PREFIX_CHARS or more), and in `who` one of `tokens`
    (`every_token`: all of them). Words are quoted FTS5 strings; tokens are
    made here ("u12", "r3"), never from a request's text."""
    body = [_quoted(w) for w in words]
    if len(words[-1]) >= MIN_PREFIX_CHARS:
        body[-1] += "*"
    who = (" AND " if every_token else " OR ").join(_quoted(t) for t in tokens)
    return f"{{body}} : ({' AND '.join(body)}) AND {{who}} : ({who})"


def find(
    db: sqlite3.Connection, expression: str, before_id: int, conv: int | None, limit: int
) -> list[StoredMessage]:
    """The newest `limit` messages with id < before_id that the FTS5 query
    `expression` matches (in the conversation `conv`, when given), newest first."""
    sql = (
        f"SELECT m.id, m.sender, m.recipient, m.body, m.time_us, m.conv FROM {TABLE} s "
        "JOIN messages m ON m.id = s.rowid "
        f"WHERE {TABLE} MATCH ? AND s.rowid < ? {{conv}}ORDER BY s.rowid DESC LIMIT ?"
    )
    if conv is None:
        rows = db.execute(sql.format(conv=""), (expression, before_id, limit)).fetchall()
    else:
        rows = db.execute(
            sql.format(conv="AND m.conv = ? "), (expression, before_id, conv, limit)
        ).fetchall()
    return [row_message(r) for r in rows]
