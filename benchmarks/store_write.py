"""What one node's store pays to write a Send: the CPU per entry of a batch
(append and commit), SQL per entry, the commit per batch (wall and CPU
time, write-ahead-log pages), and the commit's tail with SQLite's own
checkpoints in the commit or with the node's background checkpoint
(`Store.checkpoint` every CHECKPOINT_EVERY_S, 100 ms, in a thread of its own).

    python benchmarks/store_write.py [--batches 2000] [--batch 13] [--sync full] [--cpu-only]

Every node (the master and each slave) pays the CPU per entry for every
Send. It is measured twice: with the store's connection as it is, and with
it wrapped to time each kind of statement (the breakdown; the wrapper's own
cost is in its total, the Python between statements is the rest).

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
from chatd.server.storage.recent import RECENT_ENTRIES  # noqa: E402
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
    """Wraps the store's write connection: time spent per kind of statement
    (by `clock`: wall time, or the thread's CPU time)."""

    def __init__(self, db: Any, clock: Any = time.perf_counter) -> None:
        self.db = db
        self.clock = clock
        self.time: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.count: collections.Counter[str] = collections.Counter()

    def _timed(self, fn: Any, sql: str, *args: Any) -> Any:
        t = self.clock()
        try:
            return fn(sql, *args)
        finally:
            key = " ".join(sql.split()[:3])
            self.time[key] += self.clock() - t
            self.count[key] += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed(self.db.execute, sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed(self.db.executemany, sql, *args)


def wrap(store: Store, clock: Any = time.perf_counter) -> Timed:
    """Puts a Timed wrapper in place of the store's writer connection (the
    one its `db` property returns)."""
    timed = Timed(store.db, clock)
    store._conns.db = timed  # type: ignore[assignment]
    return timed


def store_with_users(path: Path, sync: str) -> Store:
    """A store with USERS accounts, whose cache of recent entries is full,
    as a node's is after its first RECENT_ENTRIES entries."""
    store = Store(path, synchronous=sync)
    for i in range(-RECENT_ENTRIES, 0):  # (indexes of no entry: the oldest, dropped first)
        store.recent.keep(i, b"")
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
    timed = wrap(store)
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


def cpu_per_entry(args: argparse.Namespace, base: Path, timed_sql: bool) -> None:
    """The thread CPU of append (apply) and commit, per entry, over batches
    of send_message entries; with `timed_sql`, its split by statement (CPU
    in each kind of statement: the state digest's trigger callbacks are in
    their statement's, the rest is the Python between statements)."""
    store = store_with_users(base / f"cpu-{timed_sql}.sqlite3", args.sync.upper())
    work = batches(args.batches, args.batch)
    timed = wrap(store, time.thread_time) if timed_sql else None
    per: list[float] = []
    appends = commits = 0.0
    for batch in work:
        c = time.thread_time()
        append_all(store, batch)
        a = time.thread_time()
        store.commit()
        e = time.thread_time()
        appends += a - c
        commits += e - a
        per.append((e - c) / len(batch))
        time.sleep(0.004)
    store.close()
    n = len(work) * args.batch
    label = "with the statements timed" if timed_sql else "as it is"
    print(
        f"CPU per entry, {label}: median {1e6 * statistics.median(per):.1f} us "
        f"(mean {1e6 * (appends + commits) / n:.1f}: append {1e6 * appends / n:.1f}, "
        f"commit {1e6 * commits / n:.1f}; batches of {args.batch})"
    )
    if timed is None:
        return
    in_sql = 0.0
    for key, spent in sorted(timed.time.items(), key=lambda kv: -kv[1]):
        in_sql += spent
        print(f"    {1e6 * spent / n:5.1f} us an entry  {key} (x{timed.count[key] / n:.2f})")
    print(f"    {1e6 * (appends + commits - in_sql) / n:5.1f} us an entry  the rest (Python)")


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
    p.add_argument("--cpu-only", action="store_true", help="only the CPU per entry")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cpu_per_entry(args, base, False)
        cpu_per_entry(args, base, True)
        cpu_per_entry(args, base, False)
        if args.cpu_only:
            return
        pages_per_commit(args, base)
        for mode in ("in-commit", "background"):
            run(mode, args, base)


if __name__ == "__main__":
    main()
