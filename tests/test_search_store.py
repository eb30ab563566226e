"""The search index in the store (chatd/server/storage/search.py): it
follows every change of `messages` (insert, update of the body, delete) so
that it is always the index a rebuild from the messages would give; it is
outside the state digest (a store with it has the digest of one without
it); the migration builds it from the messages a store of the previous
schema holds; a snapshot installed and a backup restored carry it; and a
query's text is only ever quoted words. Real SQLite files in temp dirs."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.build import DB_FILE
from chatd.server.chat.search_ops import words_of
from chatd.server.errors import RequestRefused
from chatd.server.storage import backup, schema, search, statedigest
from chatd.server.storage.store import Store
from tests.test_rooms_store import A, World

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "datadirs"
MADE_BY = sorted(p.name for p in FIXTURES.iterdir() if (p / "manifest.json").exists())
E = log_pb2.Entry
BEFORE = len(schema.migrations("")) - 1  # the schema before the index (the last step)


def found(store: Store, words: str, tokens: list[str], before: int = 2**31) -> list[int]:
    expression = search.match_expression(search.query_words(words), tokens)
    return [m.id for m in store.search_messages(expression, before, None, 100)]


def index_rows(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    """Every (term, rowid, column, offset) the index holds."""
    db.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.terms USING fts5vocab(main, search, 'instance')"
    )
    return sorted(db.execute("SELECT term, doc, col, offset FROM temp.terms").fetchall())


def rebuilt_rows(store: Store, into: Path) -> list[tuple[object, ...]]:
    """The index a rebuild from the messages of `store` gives."""
    store.snapshot_to(into)
    db = sqlite3.connect(into)
    try:
        search.drop(db)
        search.create(db)
        return index_rows(db)
    finally:
        db.close()


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = World(tmp_path / DB_FILE)
    world.users("ann", "bob", "cat", "dan")
    return world


def send(w: World, sender: str, to: str, body: str) -> int:
    op = log_pb2.SendMessage(sender=sender, recipient=to, body=body)
    out = w.apply(E(send_message=op))
    assert out.code == Code.OK
    return out.message_id


def uid(w: World, name: str) -> int:
    return w.store.users[name].uid


def test_the_index_follows_inserts_updates_and_deletes(w: World, tmp_path: Path) -> None:
    ann, bob, cat = uid(w, "ann"), uid(w, "bob"), uid(w, "cat")
    first = send(w, "ann", "bob", "Apples and pears, café au lait")
    second = send(w, "bob", "ann", "apple pie at 3.14")
    to_cat = send(w, "ann", "cat", "an apple for cat")
    w.create("ann", "team")
    in_room = w.post("ann", "team", "apple in the room").message_id
    assert found(w.store, "APPL", [f"u{ann}"]) == [to_cat, second, first]  # the last: a prefix
    assert found(w.store, "Apple AN", [f"u{ann}"]) == [to_cat]  # the others: whole words
    assert found(w.store, "cafe", [f"u{bob}"]) == [first]  # diacritics folded
    assert found(w.store, "3.14", [f"u{bob}"]) == [second]  # two words: "3" and "14"
    room_id = w.store.rooms.find("team").id  # type: ignore[union-attr]
    assert found(w.store, "apple", [f"r{room_id}"]) == [in_room]
    assert found(w.store, "apple pie", [f"u{bob}"]) == [second]  # not cat's, not the room's
    # an edit (another step's UPDATE of the body) and the deletions the store makes
    w.store.db.execute("UPDATE messages SET body = 'plums now' WHERE id = ?", (second,))
    assert found(w.store, "pie", [f"u{bob}"]) == []
    assert found(w.store, "plums", [f"u{bob}"]) == [second]
    w.apply(E(delete_room=log_pb2.DeleteRoom(actor="ann", room="team")))
    assert found(w.store, "apple", [f"r{room_id}"]) == []
    w.apply(E(delete_account=log_pb2.DeleteAccount(username="cat")))  # its undelivered go
    assert found(w.store, "cat", [f"u{ann}", f"u{cat}"]) == []
    w.store.db.execute("UPDATE messages SET delivered = 1")  # no body: no work for the index
    # what the triggers did is exactly what a rebuild from the rows gives
    rows = index_rows(w.store.db)
    assert rows == rebuilt_rows(w.store, tmp_path / "rebuilt")
    assert {r[1] for r in rows} == {first, second}


def test_a_batch_indexes_its_messages_at_commit_and_a_rollback_leaves_none(
    w: World, tmp_path: Path
) -> None:
    """Messages deleted or edited in the batch that wrote them (not indexed
    yet) leave the index as a rebuild gives it; a rolled-back batch indexes
    nothing, and the next one all of its own."""
    ann = uid(w, "ann")
    store = w.store
    store.begin()
    for n, (to, body) in enumerate([("cat", "fig one"), ("bob", "fig two"), ("bob", "fig 3")]):
        op = log_pb2.SendMessage(sender="ann", recipient=to, body=body)
        e = E(send_message=op, time_us=10 + n)
        store.append(e, e.SerializeToString(), 1)
    store.db.execute("UPDATE messages SET body = 'date two' WHERE body = 'fig two'")
    e = E(delete_account=log_pb2.DeleteAccount(username="cat"), time_us=20)
    store.append(e, e.SerializeToString(), 1)  # ann's "fig one" to cat goes
    assert found(store, "fig", [f"u{ann}"]) == []  # the reader sees committed data only
    store.commit()
    [fig3] = found(store, "fig", [f"u{ann}"])
    assert found(store, "date", [f"u{ann}"]) == [fig3 - 1]
    assert index_rows(store.db) == rebuilt_rows(store, tmp_path / "rebuilt")
    store.begin()
    op = log_pb2.SendMessage(sender="ann", recipient="bob", body="fig rolled back")
    e = E(send_message=op, time_us=30)
    store.append(e, e.SerializeToString(), 1)
    store.rollback()
    assert found(store, "fig", [f"u{ann}"]) == [fig3]
    later = send(w, "ann", "bob", "fig later")
    assert found(store, "fig", [f"u{ann}"]) == [later, fig3]
    assert index_rows(store.db) == rebuilt_rows(store, tmp_path / "rebuilt2")


def test_the_state_digest_is_the_same_with_and_without_the_index(w: World) -> None:
    send(w, "ann", "bob", "apples")
    w.create("ann", "team")
    w.post("ann", "team", "pears")
    db = w.store.db
    shadow = {r[1] for r in db.execute("PRAGMA table_list") if r[2] in ("shadow", "virtual")}
    assert "search" in shadow and shadow.isdisjoint(statedigest.replicated_tables(db))
    with_index = statedigest.scan(db)
    assert statedigest.to_bytes(with_index) == w.store.state_digest
    search.drop(db)
    assert statedigest.scan(db) == with_index
    w.store.close()
    # a store of the schema before the index opens, migrates, keeps its digest
    old = sqlite3.connect(w.path)
    old.execute(f"PRAGMA user_version = {BEFORE}")
    old.close()
    again = Store(w.path)
    try:
        assert again.state_digest == statedigest.to_bytes(with_index)
        assert found(again, "apples", [f"u{again.users['bob'].uid}"]) != []
    finally:
        again.close()


@pytest.mark.parametrize("commit", MADE_BY)
def test_a_store_of_an_older_schema_finds_its_old_messages(commit: str, tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    shutil.copyfile(FIXTURES / commit / DB_FILE, path)
    before = sqlite3.connect(path)
    assert schema.version_of(before) < len(schema.migrations(""))
    before.close()
    store = Store(path)
    try:
        alice = store.users["alice"].uid
        rows = store.db.execute(
            "SELECT id, body FROM messages WHERE ? IN (sender_uid, recipient_uid) ORDER BY id DESC",
            (alice,),
        ).fetchall()
        numbered = [mid for mid, body in rows if body.startswith("message ")]
        assert len(numbered) == 12
        assert found(store, "message", [f"u{alice}"]) == numbered
        assert found(store, "message 7", [f"u{alice}"]) == [
            mid for mid, body in rows if body.startswith("message 7 ")
        ]
        carol = [mid for mid, body in rows if body == "carol was here"]
        assert len(carol) == 1 and found(store, "carol was", [f"u{alice}"]) == carol
    finally:
        store.close()


def test_a_snapshot_and_a_backup_carry_the_index(w: World, tmp_path: Path) -> None:
    mid = send(w, "ann", "bob", "snapshots keep apples")
    bob = uid(w, "bob")
    snap = tmp_path / "snapshot.sqlite3"
    w.store.snapshot_to(snap)
    other = Store(tmp_path / "other.sqlite3")
    try:
        other.install_snapshot(snap, backup.NODE_META)
        assert found(other, "apples", [f"u{bob}"]) == [mid]
        assert other.state_digest == w.store.state_digest
        # it goes on indexing: its batches' new messages from the snapshot's mark on
        other.begin()
        op = log_pb2.SendMessage(sender="bob", recipient="ann", body="more apples")
        e = E(send_message=op, time_us=99)
        other.append(e, e.SerializeToString(), 1)
        other.commit()
        assert len(found(other, "apples", [f"u{bob}"])) == 2
    finally:
        other.close()
    w.store.snapshot_to(snap)
    restored = tmp_path / "restored" / DB_FILE
    assert backup.place_for_restore(snap, restored) is not None
    store = Store(restored)
    try:
        assert found(store, "apples", [f"u{bob}"]) == [mid]
    finally:
        store.close()


def test_a_snapshot_of_a_store_without_the_index_is_indexed_when_installed(
    w: World, tmp_path: Path
) -> None:
    mid = send(w, "ann", "bob", "older masters have no index")
    snap = tmp_path / "snapshot.sqlite3"
    w.store.snapshot_to(snap)
    db = sqlite3.connect(snap)
    search.drop(db)  # as a master of the schema before wrote it
    db.execute(f"PRAGMA user_version = {BEFORE}")
    db.commit()
    db.close()
    other = Store(tmp_path / "other.sqlite3")
    try:
        other.install_snapshot(snap, backup.NODE_META)
        assert found(other, "masters", [f"u{uid(w, 'ann')}"]) == [mid]
    finally:
        other.close()


HOSTILE = [
    "who:u1",
    "{who}: u1",
    "body : apple OR who : u1",
    '"',
    '"apple',
    'apple"*',
    "*",
    "apple*",
    "NEAR(apple u1, 1)",
    "apple OR u1",
    "NOT apple",
    "apple AND NOT pear",
    "^apple",
    "(apple",
    "search",
    "rank:bm25",
    "apple\x00u1",
    "\x01\x02apple\x7f",
    "apple\u200b\u202e",
    "'; DROP TABLE messages; --",
]


def test_a_query_is_quoted_words_only(w: World) -> None:
    """Nothing of a query's text is FTS5 syntax: what reaches MATCH is the
    fixed frame with quoted words, and it runs (or the query is refused as
    having no word) for every hostile text, finding only bob's."""
    send(w, "ann", "bob", "apple u1 who search near")
    hidden = send(w, "cat", "dan", "apple u1 who search near pear")
    bob = uid(w, "bob")
    for text in HOSTILE:
        try:
            words = words_of(text)
        except RequestRefused as exc:
            assert exc.code == Code.INVALID_ARGUMENT and "word" in exc.message, text
            continue
        assert all(c.isalnum() for word in words for c in word), (text, words)
        expression = search.match_expression(words, [f"u{bob}"])
        assert expression.startswith("{body} : (") and expression.endswith(f'{{who}} : ("u{bob}")')
        ids = [m.id for m in w.store.search_messages(expression, 2**31, None, 100)]
        assert hidden not in ids, text
    with pytest.raises(RequestRefused, match="at most 256 characters"):
        words_of("apple " * 2000)
    with pytest.raises(RequestRefused, match="at most 8 words"):
        words_of("a b c d e f g h i")
    with pytest.raises(RequestRefused, match="needs a word"):
        words_of(" \"*:()'-- ")


def test_a_member_who_left_finds_nothing_of_the_room_by_its_token(w: World) -> None:
    """The index holds who may read by room, not by member: what keeps a
    former member out is the caller's tokens (search_ops), checked in the
    API tests; here, a room's token finds the room's messages whoever joined."""
    w.create("ann", "team")
    w.member(A.INVITE, "ann", "team", "bob")
    w.member(A.JOIN, "bob", "team", "bob")
    mid = w.post("bob", "team", "room words").message_id
    room_id = w.store.rooms.find("team").id  # type: ignore[union-attr]
    assert found(w.store, "words", [f"r{room_id}"]) == [mid]
    assert found(w.store, "words", [f"u{uid(w, 'bob')}"]) == []  # a room message is no one's own
