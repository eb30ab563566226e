"""What one node's store pays to write a Send: SQL per entry, the commit per
batch (wall and CPU time, write-ahead-log pages), and the commit's tail with
SQLite's own checkpoints in the commit or with the node's background
checkpoint (`Store.checkpoint` every CHECKPOINT_EVERY_S, 100 ms, in a thread
of its own).

    python benchmarks/store_write.py [--batches 2000] [--batch 13] [--sync full]

Batches of send_message entries (64 users, random request ids) go to a real
SQLite file in a temp dir, one every 4 ms (about the rate of a cluster at
concurrency 32); 13 entries is the mean batch measured there.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatd.proto import log_pb2  # noqa: E402
from chatd.server.node import CHECKPOINT_EVERY_S  # noqa: E402
from chatd.server.storage.store import Store  # noqa: E402

USERS = 64
WAL_FRAME_HEADER = 24


def batches(n: int, size: int) -> list[list[tuple[log_pb2.Entry, bytes]]]:
    out = []
    for k in range(n):
        batch = []
        for j in range(size):
            op = log_pb2.SendMessage(
                sender=f"u{(j + k) % USERS}",
                recipient=f"u{(7 * j + k + 1) % USERS}",
                body="hello, this is a chat message of sixty bytes or so....",
                request_id=uuid.uuid4().hex,
            )
            e = log_pb2.Entry(send_message=op, time_us=time.time_ns() // 1000)
            batch.append((e, e.SerializeToString(deterministic=True)))
        out.append(batch)
    return out


class Timed:
    """Wraps the store's write connection: time spent per kind of statement."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.time: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.count: collections.Counter[str] = collections.Counter()

    def _timed(self, fn: Any, sql: str, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(sql, *args)
        finally:
            key = " ".join(sql.split()[:3])
            self.time[key] += time.perf_counter() - t
            self.count[key] += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed(self.db.execute, sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed(self.db.executemany, sql, *args)


def store_with_users(path: Path, sync: str) -> Store:
    store = Store(path, synchronous=sync)
    store.begin()
    for i in range(USERS):
        op = log_pb2.CreateAccount(username=f"u{i}", password_hash="x")
        store.append(log_pb2.Entry(create_account=op, time_us=1), b"", 1)
    store.commit()
    return store


def append_all(store: Store, batch: list[tuple[log_pb2.Entry, bytes]]) -> None:
    store.begin()
    for entry, data in batch:
        store.append(entry, data, 1)


def run(mode: str, args: argparse.Namespace, base: Path) -> None:
    store = store_with_users(base / f"{mode}.sqlite3", args.sync.upper())
    work = batches(args.batches, args.batch)
    stop = threading.Event()

    def checkpoints() -> None:  # as the node does it
        while not stop.wait(CHECKPOINT_EVERY_S):
            store.checkpoint()

    if mode == "background":
        threading.Thread(target=checkpoints, daemon=True).start()
    timed = Timed(store.db)
    store.db = timed  # type: ignore[assignment]
    wall, cpu = [], []
    for batch in work:
        append_all(store, batch)
        t, c = time.perf_counter(), time.thread_time()
        store.commit()
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
        time.sleep(0.004)
    stop.set()
    store.close()
    wall.sort()
    n = len(wall)

    def q(p: float) -> float:
        return 1e6 * wall[min(n - 1, int(p * n))]

    print(f"checkpoints {mode}: commit wall p50 {q(0.5):.0f} us, p99 {q(0.99):.0f} us, ", end="")
    print(f"max {1e6 * wall[-1]:.0f} us; commit CPU median {1e6 * statistics.median(cpu):.0f} us")
    if mode == "in-commit":
        per_entry = n * args.batch
        print(f"  SQL per entry ({per_entry} entries):")
        for key, spent in sorted(timed.time.items(), key=lambda kv: -kv[1]):
            if timed.count[key] >= per_entry:
                print(f"    {1e6 * spent / timed.count[key]:5.1f} us  {key}")
        commits = timed.count["COMMIT"]
        print(f"  COMMIT: {1e6 * timed.time['COMMIT'] / commits:.0f} us a batch")


def pages_per_commit(args: argparse.Namespace, base: Path) -> None:
    """Log pages one commit writes, with checkpoints off (the log only grows)."""
    path = base / "pages.sqlite3"
    store = store_with_users(path, "OFF")
    store.db.execute("PRAGMA wal_autocheckpoint=0")
    page = store.db.execute("PRAGMA page_size").fetchone()[0]
    wal = path.with_name(path.name + "-wal")
    work = batches(args.batches, args.batch)
    half = len(work) // 2
    size0 = 0
    for i, batch in enumerate(work):
        if i == half:
            size0 = wal.stat().st_size
        append_all(store, batch)
        store.commit()
    grown = wal.stat().st_size - size0
    store.close()
    per = grown / (page + WAL_FRAME_HEADER) / (len(work) - half)
    print(f"pages written a commit of {args.batch} entries: {per:.1f} ({page}-byte pages)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--batch", type=int, default=13)
    p.add_argument("--sync", default="full", choices=["full", "normal", "off"])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        pages_per_commit(args, base)
        for mode in ("in-commit", "background"):
            run(mode, args, base)


if __name__ == "__main__":
    main()
