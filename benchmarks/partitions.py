"""Both quorum modes under the same partition schedules (chatd/tools/
partitions.py): the master cut off, a slave cut off, a bridge, the master
paused, 5 s each, a writer in each node's network namespace.

    python benchmarks/partitions.py [--runs 3] [--modes in-sync,majority]

Needs root and ip(8) (network namespaces on a bridge, FAULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from chatd.tools import faults, partitions


async def one(quorum: str) -> partitions.Report:
    with faults.network(3) as net, tempfile.TemporaryDirectory(prefix="chatd-part-") as tmp:
        return await partitions.run(net, Path(tmp), quorum)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--modes", default="in-sync,majority")
    args = p.parse_args()
    for run in range(1, args.runs + 1):
        for quorum in args.modes.split(","):
            report = asyncio.run(one(quorum))
            for line in report.lines():
                print(f"run {run}: {line}", flush=True)


if __name__ == "__main__":
    main()
