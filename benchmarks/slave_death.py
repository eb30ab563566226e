"""A slave killed under steady writes: how long the master's writes stall.

    python benchmarks/slave_death.py [--rounds 3] [--quorum majority in-sync] [--how kill stop]

Each round starts a fresh 3-node cluster (real `chatd serve` processes on
loopback, default timing flags) in the given quorum mode, has one writer
send to the master as fast as its writes are answered (pinned there, so a
client's own move off a dead node does not count), kills a slave with
SIGKILL (its connections close at once) or pauses it with SIGSTOP (they
stay open and silent, as a hung machine's) once 300 writes were answered,
and goes on for 3 s. Prints the
longest gap between two acknowledgements from 50 ms before the kill on,
the median gap, and the slowest single write after the kill.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.tools.localcluster import Cluster, Load


def one_round(quorum: str, how: str) -> tuple[float, float, float, int]:
    with tempfile.TemporaryDirectory(prefix="chatd-slave-death-") as tmp:
        c = Cluster.start(Path(tmp), 3, "--quorum", quorum)
        try:
            master = c.master()
            assert master is not None
            slave = next(n for n in c.nodes if n != master)
            load = Load([c.addresses[master]])
            loop = asyncio.new_event_loop()

            async def write() -> None:
                load.stop = asyncio.Event()
                await load.writer(await load.session("ann"), "ann", "w")

            thread = threading.Thread(target=lambda: loop.run_until_complete(write()))
            thread.start()
            try:
                c.wait(lambda: len(load.acked) > 300, "300 writes answered")
                before, killed_at = len(load.ack_log), time.monotonic()
                c.nodes[slave].kill(signal.SIGKILL if how == "kill" else signal.SIGSTOP)
                time.sleep(3)
            finally:
                loop.call_soon_threadsafe(load.stop.set)
                thread.join(30)
            acks = sorted(ack for _, ack in load.ack_log)
            gaps = [(b - a) * 1000 for a, b in itertools.pairwise(acks) if a > killed_at - 0.05]
            after = [(ack - sent) * 1000 for sent, ack in load.ack_log[before:]]
            return max(gaps), statistics.median(gaps), max(after), len(after)
        finally:
            c.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quorum", nargs="+", default=["majority", "in-sync"])
    parser.add_argument("--how", nargs="+", choices=("kill", "stop"), default=["kill", "stop"])
    args = parser.parse_args()
    for how in args.how:
        for quorum in args.quorum:
            for i in range(args.rounds):
                longest, median, slowest, n = one_round(quorum, how)
                print(
                    f"{quorum}, slave {how}: round {i + 1}: longest gap {longest:.0f} ms, median "
                    f"gap {median:.1f} ms, slowest write after it {slowest:.0f} ms ({n} writes)"
                )


if __name__ == "__main__":
    main()
