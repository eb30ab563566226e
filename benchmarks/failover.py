"""Failover under steady load: SIGKILL the master K times; for each, the time
from the kill to the first acknowledged write; and the acknowledged writes
lost at the end (must be 0).

    python benchmarks/failover.py --kills 20 [--writers 4] [--quorum majority] [--json]

Runs real `chatd serve` processes on loopback (default timing flags) in a
temporary directory; each killed master is restarted with its own command
line and the cluster must be back in sync before the next kill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.tools.localcluster import Cluster, Load, check_no_loss


async def run(kills: int, writers: int, quorum: str = "in-sync") -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="chatd-failover-") as tmp:
        c = await asyncio.to_thread(Cluster.start, Path(tmp), 3, "--quorum", quorum)
        try:
            load = Load(list(c.addresses.values()))
            alice = await load.session("alice")
            await load.session("bob")
            tasks = [
                asyncio.create_task(load.writer(alice, "bob", f"w{i}")) for i in range(writers)
            ]
            gaps: list[float] = []
            for k in range(kills):
                await asyncio.sleep(0.5)
                master = await asyncio.to_thread(c.master)
                assert master is not None
                t0 = time.monotonic()
                c.kill(master)
                # the first write both sent and acknowledged after the kill
                # (answers the dead master sent just before dying do not count)
                async with asyncio.timeout(30):
                    while not any(s > t0 for s, _ in load.ack_log[-50:]):
                        await asyncio.sleep(0.001)
                first = min(e for s, e in load.ack_log if s > t0)
                gaps.append(first - t0)
                print(
                    f"kill {k + 1}: {master} -> writes again after {gaps[-1] * 1000:.0f} ms",
                    file=sys.stderr,
                )
                c.restart(master)
                await asyncio.to_thread(c.wait, lambda: c.in_sync_count() == 3, "3 in sync", 60)
            load.stop.set()
            await asyncio.gather(*tasks)
            await asyncio.to_thread(c.converged)
            master = await asyncio.to_thread(c.master)
            lost = 0
            try:
                await check_no_loss(c.addresses[master], alice, "bob", load)  # type: ignore[index]
            except AssertionError as exc:
                print(exc, file=sys.stderr)
                lost = -1  # see stderr
            return {
                "kills": kills,
                "failover_ms_median": round(statistics.median(gaps) * 1000),
                "failover_ms_max": round(max(gaps) * 1000),
                "failover_ms_all": [round(g * 1000) for g in gaps],
                "acknowledged_writes": len(load.acked),
                "acknowledged_lost": lost,
                "client_errors_retried": load.errors,
            }
        finally:
            c.stop_all()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--quorum", choices=("in-sync", "majority"), default="in-sync")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = asyncio.run(run(args.kills, args.writers, args.quorum))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
