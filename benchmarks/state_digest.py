"""What the state digest costs at startup: a store filled with N messages
(Send entries through the store's own append, 64 users, a request id each,
batches of 1,000, synchronous=OFF), then, on the closed file: the full scan
that recomputes the digest (chatd.server.storage.statedigest.scan), SQLite's
`PRAGMA quick_check`, and the whole `Store(...)` open, which runs both.

    python benchmarks/state_digest.py [--messages 1000000] [--keep DIR]

The fill also gives the store's append rate with the digest's triggers on.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatd.proto import log_pb2  # noqa: E402
from chatd.server.storage import statedigest  # noqa: E402
from chatd.server.storage.store import Store  # noqa: E402

USERS = 64
BATCH = 1000


def fill(path: Path, messages: int) -> float:
    store = Store(path, synchronous="OFF")
    try:
        store.begin()
        for u in range(USERS):
            e = log_pb2.Entry(
                time_us=1, create_account=log_pb2.CreateAccount(username=f"u{u}", password_hash="h")
            )
            store.append(e, e.SerializeToString(deterministic=True), 1)
        store.commit()
        start = time.perf_counter()
        for first in range(0, messages, BATCH):
            store.begin()
            for i in range(first, min(first + BATCH, messages)):
                op = log_pb2.SendMessage(
                    sender=f"u{i % USERS}",
                    recipient=f"u{(i * 7 + 1) % USERS}",
                    body=f"message {i}: the quick brown fox jumps over the lazy dog",
                    request_id=uuid.uuid4().hex,
                )
                e = log_pb2.Entry(time_us=i + 2, send_message=op)
                store.append(e, e.SerializeToString(deterministic=True), 1)
            store.commit()
            store.truncate_log(10_000)
        return time.perf_counter() - start
    finally:
        store.close()


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--keep", type=Path, default=None, help="fill (or reuse) the store here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        path = base / "chatd.sqlite3"
        if not path.exists():
            took = fill(path, args.messages)
            print(f"filled {args.messages} messages in {took:.1f} s", end="")
            print(f" ({args.messages / took:,.0f} appends/s, triggers on)")
        con = sqlite3.connect(path)
        rows = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("users", "messages", "request_ids", "log")
        }
        print(f"rows: {rows}; file {path.stat().st_size / 1e6:.0f} MB")
        for _ in range(2):  # the second with the file in the page cache
            scan = timed(lambda: statedigest.scan(con))
            check = timed(lambda: con.execute("PRAGMA quick_check").fetchall())
            opened = timed(lambda: Store(path).close())
            print(
                f"full scan {scan:.2f} s, quick_check {check:.2f} s, "
                f"Store open (both and the rest) {opened:.2f} s"
            )
        con.close()


if __name__ == "__main__":
    main()
