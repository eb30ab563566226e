"""The search index at a million messages: SearchMessages' query latency,
what the index costs a Send, the migration that builds it, its size.

    python benchmarks/search.py [--messages 1000000] [--queries 200] [--rounds 6]

1. Fill: a real store file in a temp dir. The accounts (10,000) go in
   through the store's apply path (create_account entries); rooms (1,000,
   2 to 60 members who joined, a user in at most 100) and the messages by
   direct INSERTs into the same tables of the same file, in batches of
   10,000, each indexed as the store's commit indexes a batch's new
   messages (search.index_new). Senders are Zipf-distributed (a few users
   write much, most little), 30% of the messages go to rooms, bodies are
   3 to 24 words drawn Zipf-like from a vocabulary of 30,000 made-up words. The store is then opened as a node
   opens it (the state digest recomputed from the tables).
2. Queries: the store's read (Store.search_messages, on the reader
   connection) of the expression SearchOps builds for the caller (their
   user token and each room they joined), first page of 20 (21 asked, as
   SearchOps asks one more to know whether there is a next page); each
   kind of query with --queries different callers or words: p50, p99, max.
3. Send cost: batches of 13 send_message entries applied and committed
   (synchronous=FULL, as a node; and OFF, the CPU alone) on a store of
   64 users, bodies as above, with the index and without it (search.drop:
   nothing to index at commit), interleaved rounds; entries per second.
4. Migration: the filled store with the index dropped and its schema
   version set back to the one before (the index is the last migration),
   opened by Store (the migration rebuilds the index from every message,
   then the open's checks); and the index's size on disk (dbstat: pages of
   the FTS5 shadow tables).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatd.proto import log_pb2  # noqa: E402
from chatd.server.chat.search_ops import words_of  # noqa: E402
from chatd.server.storage import schema, search  # noqa: E402
from chatd.server.storage.store import Store, conversation_key  # noqa: E402

USERS = 10_000
ROOMS = 1_000
VOCABULARY = 30_000
ROOM_SHARE = 0.3
BEFORE = len(schema.migrations("")) - 1  # the schema version before the index
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "st", "qu"]


def vocabulary(rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words, key=lambda w: (len(w), w))  # short words the common ones


def zipf_weights(n: int, s: float = 1.0) -> list[float]:
    total, out = 0.0, []
    for k in range(1, n + 1):
        total += 1.0 / k**s
        out.append(total)
    return out  # cumulative


class Corpus:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng)
        self.word_cum = zipf_weights(len(self.words))
        self.user_cum = zipf_weights(USERS, 0.8)
        self.uids = list(range(1, USERS + 1))

    def body(self) -> str:
        n = self.rng.randint(3, 24)
        return " ".join(self.rng.choices(self.words, cum_weights=self.word_cum, k=n))

    def sender(self) -> int:
        return self.rng.choices(self.uids, cum_weights=self.user_cum)[0]


def add_users(store: Store, n: int) -> None:
    store.begin()
    for i in range(n):
        op = log_pb2.CreateAccount(username=f"user{i}", password_hash="x")
        e = log_pb2.Entry(create_account=op, time_us=1)
        store.append(e, e.SerializeToString(deterministic=True), 1)
    store.commit()


def fill(path: Path, messages: int, seed: int) -> dict[int, list[int]]:
    """A store of `messages` messages; returns each room's members."""
    corpus = Corpus(seed)
    rng = corpus.rng
    store = Store(path, synchronous="OFF")
    add_users(store, USERS)
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    rooms: dict[int, list[int]] = {}
    in_rooms: dict[int, int] = {}
    db.execute("BEGIN")
    for rid in range(1, ROOMS + 1):
        size = min(60, 2 + int(rng.paretovariate(1.2)))
        members: set[int] = set()
        while len(members) < size:
            uid = corpus.sender()  # the busy users are in more rooms
            if in_rooms.get(uid, 0) < 100:
                members.add(uid)
        for uid in members:
            in_rooms[uid] = in_rooms.get(uid, 0) + 1
        rooms[rid] = sorted(members)
        creator = rooms[rid][0]
        db.execute(
            "INSERT INTO rooms(id, name, topic, creator_uid, created_us) VALUES (?, ?, '', ?, 1)",
            (rid, f"room{rid}", creator),
        )
        db.executemany(
            "INSERT INTO room_members(room_id, uid, joined, admin, since_id) "
            "VALUES (?, ?, 1, ?, 0)",
            [(rid, uid, int(uid == creator)) for uid in rooms[rid]],
        )
    db.execute("COMMIT")
    room_ids = list(rooms)
    t0 = time.perf_counter()
    batch = 10_000
    for start in range(0, messages, batch):
        rows = []
        for i in range(start, min(messages, start + batch)):
            sender = corpus.sender()
            if rng.random() < ROOM_SHARE:
                rid = rng.choice(room_ids)
                sender = rng.choice(rooms[rid])
                rows.append(
                    (f"user{sender - 1}", sender, f"room{rid}", 0, -rid, corpus.body(), i, 1)
                )
            else:
                to = corpus.sender() if rng.random() < 0.5 else rng.randint(1, USERS)
                conv = conversation_key(sender, to)
                rows.append(
                    (f"user{sender - 1}", sender, f"user{to - 1}", to, conv, corpus.body(), i, 1)
                )
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO messages(sender, sender_uid, recipient, recipient_uid, conv, body, "
            "time_us, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        search.index_new(db, start, start + len(rows))  # as the store's commit does
        db.execute("COMMIT")
    took = time.perf_counter() - t0
    db.execute("DELETE FROM meta WHERE key = 'state_digest'")  # recorded again on opening
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(f"fill: {messages:,} messages (indexed a batch at a time) in {took:.1f} s")
    return rooms


def quantiles(samples: list[float]) -> str:
    s = sorted(samples)
    n = len(s)
    return (
        f"p50 {1e3 * s[n // 2]:6.2f} ms  p99 {1e3 * s[min(n - 1, int(0.99 * n))]:6.2f} ms  "
        f"max {1e3 * s[-1]:6.2f} ms"
    )


def bench_queries(path: Path, rooms: dict[int, list[int]], queries: int, seed: int) -> None:
    t = time.perf_counter()
    store = Store(path)
    print(f"open (state digest of the filled store recomputed): {time.perf_counter() - t:.1f} s")
    rng = random.Random(seed + 1)
    words = vocabulary(random.Random(seed))
    db = store._conns.reader
    counts = dict(
        db.execute("SELECT sender_uid, count(*) FROM messages GROUP BY sender_uid").fetchall()
    )
    by_count = sorted(counts, key=lambda u: -counts[u])
    heavy, light = by_count[:50], [u for u in by_count if counts[u] <= 20][:2000]
    of_user: dict[int, list[int]] = {}
    for rid, members in rooms.items():
        for uid in members:
            of_user.setdefault(uid, []).append(rid)
    print(
        f"callers: heavy {counts[heavy[0]]:,} to {counts[heavy[-1]]:,} messages sent, "
        f"{len(of_user.get(heavy[0], []))} rooms; light <= 20 messages sent"
    )

    def tokens(uid: int) -> list[str]:
        return [f"u{uid}", *(f"r{r}" for r in sorted(of_user.get(uid, [])))]

    def run(name: str, make: object) -> None:
        samples, hits = [], 0
        for _ in range(queries):
            text, toks, every, conv = make()  # type: ignore[operator]
            expression = search.match_expression(words_of(text), toks, every)
            t0 = time.perf_counter()
            found = store.search_messages(expression, 2**31 - 1, conv, 21)
            samples.append(time.perf_counter() - t0)
            hits += len(found)
        print(f"  {name:44s} {quantiles(samples)}  (mean {hits / queries:.1f} found)")

    common, medium = words[:20], words[200:2000]
    rare = words[20000:]
    print(f"queries ({queries} each, first page of 20, store.search_messages on the reader):")
    run(
        "common word, heavy user",
        lambda: (rng.choice(common), tokens(rng.choice(heavy)), False, None),
    )
    run(
        "common word, light user",
        lambda: (rng.choice(common), tokens(rng.choice(light)), False, None),
    )
    run("rare word, heavy user", lambda: (rng.choice(rare), tokens(rng.choice(heavy)), False, None))
    run("rare word, light user", lambda: (rng.choice(rare), tokens(rng.choice(light)), False, None))
    run(
        "medium word, heavy user",
        lambda: (rng.choice(medium), tokens(rng.choice(heavy)), False, None),
    )
    run(
        "two words (common + medium), heavy user",
        lambda: (
            f"{rng.choice(common)} {rng.choice(medium)}",
            tokens(rng.choice(heavy)),
            False,
            None,
        ),
    )
    run(
        "prefix of 3 letters, heavy user",
        lambda: (
            rng.choice([w for w in medium if len(w) >= 4])[:3],
            tokens(rng.choice(heavy)),
            False,
            None,
        ),
    )
    run(
        "prefix of 3 letters, light user",
        lambda: (
            rng.choice([w for w in medium if len(w) >= 4])[:3],
            tokens(rng.choice(light)),
            False,
            None,
        ),
    )
    frequent = [w for w in words[:400] if len(w) >= 4]
    run(
        "prefix of 3 letters of a frequent word, heavy",
        lambda: (rng.choice(frequent)[:3], tokens(rng.choice(heavy)), False, None),
    )
    run(
        "word in no message, heavy user",
        lambda: ("zzzq" + str(rng.randint(0, 10**6)), tokens(rng.choice(heavy)), False, None),
    )

    def in_conversation() -> tuple[str, list[str], bool, int]:
        a, b = db.execute(
            "SELECT sender_uid, recipient_uid FROM messages WHERE conv > 0 AND id = ?",
            (rng.randint(1, store.last_message_id),),
        ).fetchone() or (heavy[0], heavy[1])
        return rng.choice(common), sorted({f"u{a}", f"u{b}"}), True, conversation_key(a, b)

    def in_room() -> tuple[str, list[str], bool, None]:
        return rng.choice(common + medium), [f"r{rng.randint(1, ROOMS)}"], False, None

    run("common word, one conversation (peer)", in_conversation)
    run("common or medium word, one room", in_room)
    store.close()


def send_round(with_index: bool, sync: str, batches: int, base: Path, n: int) -> float:
    path = base / f"send-{n}.sqlite3"
    store = Store(path, synchronous=sync)
    if not with_index:  # a store as one before the index: nothing to index at commit
        search.drop(store.db)
        store._indexed_upto = 2**62
    add_users(store, 64)
    corpus = Corpus(n)
    work = []
    for _ in range(batches):
        batch = []
        for _ in range(13):
            op = log_pb2.SendMessage(
                sender=f"user{corpus.rng.randrange(64)}",
                recipient=f"user{corpus.rng.randrange(64)}",
                body=corpus.body(),
                request_id=uuid.uuid4().hex,
            )
            e = log_pb2.Entry(send_message=op, time_us=time.time_ns() // 1000)
            batch.append((e, e.SerializeToString(deterministic=True)))
        work.append(batch)
    t0 = time.perf_counter()
    for batch in work:
        store.begin()
        for e, data in batch:
            store.append(e, data, 1)
        store.commit()
    took = time.perf_counter() - t0
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return batches * 13 / took


def bench_sends(base: Path, rounds: int, batches: int) -> None:
    for sync in ("FULL", "OFF"):
        rates: dict[bool, list[float]] = {True: [], False: []}
        for r in range(rounds):
            for with_index in (True, False) if r % 2 == 0 else (False, True):
                rates[with_index].append(send_round(with_index, sync, batches, base, r))
        on, off = statistics.median(rates[True]), statistics.median(rates[False])
        print(
            f"send, synchronous={sync}, {batches} batches of 13 a round, {rounds} rounds each: "
            f"with the index {on:,.0f} entries/s, without {off:,.0f} (median; "
            f"ratio {on / off:.2f}); rounds with {[round(x) for x in rates[True]]}, "
            f"without {[round(x) for x in rates[False]]}"
        )


def index_bytes(path: Path) -> tuple[int, int]:
    db = sqlite3.connect(path)
    try:
        size = db.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'search%' AND name != 'search'"
        ).fetchone()[0]
        total = db.execute("SELECT sum(pgsize) FROM dbstat").fetchone()[0]
        return int(size or 0), int(total)
    finally:
        db.close()


def bench_migration(path: Path) -> None:
    size, total = index_bytes(path)
    messages = sqlite3.connect(path).execute("SELECT count(*) FROM messages").fetchone()[0]
    print(
        f"index on disk (built a batch at a time): {size / 2**20:.1f} MiB of the file's "
        f"{total / 2**20:.1f} MiB, {size / 2**20 / (messages / 1e6):.1f} MiB a million messages"
    )
    db = sqlite3.connect(path, isolation_level=None)
    search.drop(db)
    db.execute(f"PRAGMA user_version = {BEFORE}")
    db.execute("VACUUM")
    db.close()
    print(f"file without the index (vacuumed): {path.stat().st_size / 2**20:.1f} MiB")
    db = sqlite3.connect(path, isolation_level=None)
    t0 = time.perf_counter()
    schema.upgrade(db, "", str(path))  # the index's step alone
    took = time.perf_counter() - t0
    db.close()
    size, _ = index_bytes(path)
    print(
        f"migration {BEFORE} -> {BEFORE + 1} (the index built from {messages:,} messages): "
        f"{took:.1f} s; "
        f"index {size / 2**20:.1f} MiB"
    )
    db = sqlite3.connect(path, isolation_level=None)
    search.drop(db)
    db.execute(f"PRAGMA user_version = {BEFORE}")
    db.close()
    t0 = time.perf_counter()
    Store(path).close()
    print(f"a node's open of that store, migration and checks: {time.perf_counter() - t0:.1f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--seed", type=int, default=27)
    p.add_argument("--only", choices=["queries", "sends"], default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        if args.only != "sends":
            path = base / "chatd.sqlite3"
            rooms = fill(path, args.messages, args.seed)
            bench_queries(path, rooms, args.queries, args.seed)
            bench_migration(path)
        if args.only != "queries":
            bench_sends(base, args.rounds, args.batches)


if __name__ == "__main__":
    main()
