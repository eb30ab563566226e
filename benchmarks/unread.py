"""The cost of ListUnread's query: one-to-one unread counts from read markers.

    python benchmarks/unread.py [--received 100000] [--peers 50] [--calls 20]

Builds a store (the real schema, in a temp dir) where one user received
RECEIVED messages from PEERS others, the same number again passes between
two other users, and half of the user's conversations carry a read marker
100 messages short of the end; then times `Store.unread_from_peers` (what
ListUnread runs on the reader thread) CALLS times and prints the median.
The query reads the user's inbox index once: its cost grows with what the
user received, not with the store.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.server.storage.store import Store, conversation_key

INSERT = (
    "INSERT INTO messages(sender, sender_uid, recipient, recipient_uid, conv, body, "
    "time_us, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, 1)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--received", type=int, default=100_000)
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        store = Store(path)
        db = sqlite3.connect(path)
        me, others = 1, range(2, 2 + args.peers)
        mine = []
        for i in range(args.received):
            peer = rng.choice(others)
            mine.append((f"u{peer}", peer, "me", me, conversation_key(me, peer), "x" * 40, i))
        db.executemany(INSERT, mine)
        elsewhere = conversation_key(100_000, 100_001)
        db.executemany(
            INSERT,
            [("a", 100_000, "b", 100_001, elsewhere, "y" * 40, i) for i in range(args.received)],
        )
        for peer in list(others)[: args.peers // 2]:
            db.execute(
                "INSERT INTO read_markers(uid, conv, upto) VALUES (?, ?, ?)",
                (me, conversation_key(me, peer), args.received - 100),
            )
        db.commit()
        db.close()
        store.unread_from_peers(me, 2**31 - 1)  # warm the cache
        times = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            rows = store.unread_from_peers(me, 2**31 - 1)
            times.append(time.perf_counter() - t0)
        store.close()
    print(
        f"received {args.received:,} from {args.peers} peers: {len(rows)} conversations unread, "
        f"{sum(r[1] for r in rows):,} messages; median {statistics.median(times) * 1000:.1f} ms "
        f"a call (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; {args.calls} calls)"
    )


if __name__ == "__main__":
    main()
