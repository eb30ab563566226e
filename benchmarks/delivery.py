"""Delivery latency over Connect with the sessions' streams at the master
and spread over the three nodes, at a fixed send rate:

    python benchmarks/delivery.py [--rounds 3] [--rate 1500] [--duration 8]

Each round starts a fresh 3-node cluster (default flags, the Send and
sign-up limits off) and runs `chatd bench --users 32 --concurrency 32
--transport stream --rate RATE` twice: with `--server` naming the master
only (every stream there), then naming all three (a third of the streams on
each node: the slaves deliver from their own replicas and carry the sends
to the master). `--rate 0` sends as fast as it goes. Prints each run's
rate, sends and deliveries, and delivery p50/p99, then the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.tools.localcluster import Cluster

PY = sys.executable


def bench(server: str, rate: float, duration: float) -> dict[str, float]:
    args = [PY, "-m", "chatd", "bench", "--server", server, "--json", "--concurrency", "32",
            "--users", "32", "--duration", str(duration), "--rate", str(rate),
            "--transport", "stream"]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 120, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=1500.0)
    ap.add_argument("--duration", type=float, default=8.0)
    args = ap.parse_args()
    p50: dict[str, list[float]] = {}
    p99: dict[str, list[float]] = {}
    rates: dict[str, list[float]] = {}
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="chatd-delivery-") as tmp:
            c = Cluster.start(Path(tmp), 3)
            try:
                m = c.master()
                assert m is not None
                at = c.addresses[m]
                spread = ",".join([at, *(a for n, a in c.addresses.items() if n != m)])
                for name, server in (("master", at), ("spread", spread)):
                    v = bench(server, args.rate, args.duration)
                    rates.setdefault(name, []).append(v["sends_per_s"])
                    p50.setdefault(name, []).append(v["delivery_ms_p50"])
                    p99.setdefault(name, []).append(v["delivery_ms_p99"])
                    print(f"round {r + 1} {name}: {v['sends_per_s']}/s, {v['sends']} sent, "
                          f"{v['delivered']} delivered, delivery p50 {v['delivery_ms_p50']} ms, "
                          f"p99 {v['delivery_ms_p99']} ms", flush=True)  # fmt: skip
            finally:
                c.stop_all()
    for name in rates:
        print(f"median {name}: {statistics.median(rates[name]):.0f}/s, delivery p50 "
              f"{statistics.median(p50[name]):.2f} ms, p99 {statistics.median(p99[name]):.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
