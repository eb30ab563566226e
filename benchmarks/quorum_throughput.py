"""3-node Send throughput in each quorum mode, interleaved: for each round,
a fresh in-sync cluster and then a fresh majority cluster, each driven by
`chatd bench` against its master; the master's group-commit sizes beside.

    python benchmarks/quorum_throughput.py [--rounds 5] [--duration 8] [--json]

Majority mode answers a write once one slave of two has it; its 3-node
rate should be at least in-sync mode's (which waits for both). Real
`chatd serve` processes on loopback with default flags, in a temporary
directory; the ratio is per round, and the median counts.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.tools.localcluster import Cluster

MODES = ("in-sync", "majority")


def one(quorum: str, duration: float, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="chatd-quorum-") as tmp:
        c = Cluster.start(Path(tmp), 3, "--quorum", quorum, "--metrics-port", "0")
        try:
            m = c.master()
            assert m is not None, "no master"
            port = int(re.findall(r"metrics on http://[^:]+:(\d+)/", c.nodes[m].log())[0])
            out = subprocess.run(
                [
                    sys.executable, "-m", "chatd", "bench", "--server", c.addresses[m],
                    "--users", "64", "--concurrency", str(concurrency),
                    "--duration", str(duration), "--no-streams", "--json",
                ],
                capture_output=True, text=True, timeout=duration + 120, check=True,
            )  # fmt: skip
            rate = float(json.loads(out.stdout.strip().splitlines()[-1])["sends_per_s"])
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as r:
                text = r.read().decode()
            batches = float(re.findall(r"^chatd_group_commits (\S+)", text, re.M)[0])
            entries = float(re.findall(r"^chatd_group_commit_entries (\S+)", text, re.M)[0])
            return {"rate": rate, "entries_per_batch": round(entries / batches, 2)}
        finally:
            c.stop_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rounds: list[dict[str, dict[str, float]]] = []
    for r in range(args.rounds):
        got = {q: one(q, args.duration, args.concurrency) for q in MODES}
        got["ratio"] = {"rate": round(got["majority"]["rate"] / got["in-sync"]["rate"], 3)}
        rounds.append(got)
        print(
            f"round {r + 1}: in-sync {got['in-sync']['rate']:.0f}/s "
            f"({got['in-sync']['entries_per_batch']} a batch), majority "
            f"{got['majority']['rate']:.0f}/s ({got['majority']['entries_per_batch']} a batch), "
            f"ratio {got['ratio']['rate']}",
            flush=True,
        )
    ratios = [g["ratio"]["rate"] for g in rounds]
    print(f"median ratio majority / in-sync: {statistics.median(ratios):.3f} ({ratios})")
    if args.json:
        print(json.dumps({"rounds": rounds, "median_ratio": statistics.median(ratios)}))


if __name__ == "__main__":
    main()
