"""What a user of the client library sees of a failover: a 3-node cluster
(real processes, default timing), a `ChatClient` sending; the master is
SIGKILLed K times, and each time the first `send` after the kill is timed
until it returns (retries and all).

    python benchmarks/client_failover.py [--kills 6]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.client import ChatClient
from chatd.tools.localcluster import PASSWORD, Cluster


async def run(kills: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="chatd-client-failover-") as tmp:
        c = await asyncio.to_thread(Cluster.start, Path(tmp))
        try:
            async with ChatClient(list(c.addresses.values())) as client:
                for name in ("alice", "bob"):
                    await client.create_account(name, PASSWORD)
                await client.login("alice", PASSWORD)
                gaps = []
                for _ in range(kills):
                    for _ in range(20):
                        await client.send("bob", "before")
                        await asyncio.sleep(0.01)
                    master = await asyncio.to_thread(c.master)
                    assert master is not None
                    t0 = time.monotonic()
                    c.kill(master)
                    await client.send("bob", "after")
                    gaps.append(time.monotonic() - t0)
                    c.restart(master)
                    await asyncio.to_thread(c.wait, lambda: c.in_sync_count() == 3, "3 in sync", 60)
                return gaps
        finally:
            c.stop_all()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kills", type=int, default=6)
    gaps = asyncio.run(run(p.parse_args().kills))
    print(
        f"first send after a master SIGKILL: median {statistics.median(gaps) * 1000:.0f} ms, "
        f"max {max(gaps) * 1000:.0f} ms (all: {[round(g * 1000) for g in gaps]})"
    )


if __name__ == "__main__":
    main()
