"""File upload and download throughput through a 3-node cluster.

    python benchmarks/files.py [--size-mib 8] [--files 4] [--rounds 3]

Each round starts a fresh 3-node cluster of real processes (default flags
but --upload-rate 0 and --max-user-file-bytes large enough), logs in one
user with the library's `ChatClient`, and uploads FILES files of SIZE MiB
of random bytes one after another (each goes to the master in chunks of
64 KiB, through the log in entries of 15 KiB, durable on every in-sync
node before it is answered), then downloads each (from the master), and
once more each from a slave (relayed from the master), checking every byte
against the upload's SHA-256. Prints MiB/s for each, with the medians of
the rounds, and the nodes' database files' sizes after (each file is held
in the log too until the log is truncated: --log-retention).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.client import ChatClient
from chatd.tools.localcluster import Cluster

PASSWORD = "bench-password"
MIB = 1024 * 1024


async def one_round(cluster: Cluster, size: int, files: int) -> dict[str, float]:
    master = str(cluster.master())
    slave = next(n for n in cluster.addresses if n != master)
    addresses = list(cluster.addresses.values())
    async with ChatClient(addresses, retry_for=60) as c:
        await c.create_account("ann", PASSWORD)
        await c.login("ann", PASSWORD)
        blobs = [os.urandom(size) for _ in range(files)]
        start = time.perf_counter()
        refs = [await c.upload_file(b, f"f{i}.bin") for i, b in enumerate(blobs)]
        upload_s = time.perf_counter() - start
        start = time.perf_counter()
        got = [await c.download_file(r.file_id) for r in refs]
        download_s = time.perf_counter() - start
        assert [hashlib.sha256(g).digest() for g in got] == [
            hashlib.sha256(b).digest() for b in blobs
        ]
        session = c.session_id
    async with ChatClient([cluster.addresses[slave]], retry_for=60) as at_slave:
        at_slave.session_id, at_slave.username = session, "ann"  # (it stays there: relayed)
        start = time.perf_counter()
        again = [await at_slave.download_file(r.file_id) for r in refs]
        slave_s = time.perf_counter() - start
        assert again == got
    total = size * files / MIB
    return {
        "upload": total / upload_s,
        "download": total / download_s,
        "download_at_slave": total / slave_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=float, default=8.0)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = int(args.size_mib * MIB)
    flags = (
        "--upload-rate",
        "0",
        "--max-file-bytes",
        str(max(size, 1024)),
        "--max-user-file-bytes",
        str(2 * size * args.files + MIB),
    )
    results = []
    for k in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            cluster = Cluster.start(Path(tmp), 3, *flags)
            try:
                r = asyncio.run(one_round(cluster, size, args.files))
                sizes = [
                    (Path(tmp) / name / "chatd.sqlite3").stat().st_size // MIB
                    for name in cluster.nodes
                ]
            finally:
                cluster.stop_all()
        results.append(r)
        print(
            f"round {k + 1}: upload {r['upload']:.1f} MiB/s, download {r['download']:.1f} MiB/s,"
            f" download at a slave {r['download_at_slave']:.1f} MiB/s;"
            f" database files {sizes} MiB",
            flush=True,
        )
    for key in ("upload", "download", "download_at_slave"):
        print(f"median {key}: {statistics.median(r[key] for r in results):.1f} MiB/s")


if __name__ == "__main__":
    main()
